"""How a policy is scored, for all three scripts: the evaluation after training (eval.json, Table 1)
and the held-out discriminability measure during training (Figure 2).

This is part of the method, not plumbing. Change it here (a new metric, another way to score
discriminability) and every script follows. run_utils calls it; the algorithm scripts never do.

The interface it expects:

- a policy is a function `act(obs, z) -> actions`: obs a float32 tensor [N, obs_dim], z an int64
  tensor [N] (the latent of each row; SAC ignores it), actions a tensor [N, act_dim]. It is called
  under `torch.inference_mode()`. MEDE and DIAYN pass `agent.act`, SAC `agent.actor`'s.
- a discriminator has `loss(x, z) -> (loss, mean log q(z|x), accuracy)`, x [B, in_dim], z [B]:
  `disc_sa` is q(z|s, a) and scores x = [s, a]; `disc_s` is q(z|s) and scores x = s.
- `make_envs(env_id, num_envs)` is the script's own: a vector env with SAME_STEP autoreset and
  RecordEpisodeStatistics.

What it records, by environment:

- every env: each z's returns over deterministic episodes, their mean and std; over z, the
  average and the max (Table 1's two columns);
- the held-out measure (Figure 2), every --measure-every steps: fresh transitions of every z scored by
  both discriminators, and the probe, classifiers of their shape fitted on other fresh transitions
  (no algorithm trains against them), scored on the same held-out ones, with the chance level;
- an env with `goal_names` (Multigoal): the goal each episode ends at (info["goal_index"], -1 for
  none) and the goals' compass names; the number of distinct goals; in the held-out measure, the
  fraction of each z's episodes that end at each goal;
- an env whose info has `x_position` and `y_position` (M. Ant): each episode's displacement,
  heading, net speed (displacement over duration, m/s) and path speed (distance travelled over
  duration: an Ant that jitters on the spot has a high path speed and a net speed near 0), the
  first episode's path; each z's mean heading and speed; the number of distinct running directions.
"""

import copy
import itertools
import math

import gymnasium as gym
import numpy as np
import torch

EVAL_SEED_OFFSET = 10_000  # evaluation episodes use seed + 10000: never the training env's seeds
RUNNING_SPEED = 0.3  # m/s: a z "runs" when its net speed is at least this (an Ant standing still drifts < 0.05)
DISTINCT_DIRECTION = 45.0  # degrees: two running z go in distinct directions when their headings are this far apart


def env_attribute(envs, name: str):
    """An attribute of the vector env's first sub-env (e.g. `goal_names`, `dt`), or None."""
    try:
        return envs.unwrapped.get_attr(name)[0]
    except AttributeError:
        return None


# ----------------------------------------------------------------------- the evaluation
def evaluate(act, make_envs, env_id: str, num_z: int, episodes: int, seed: int, device: torch.device) -> list[dict]:
    """`episodes` deterministic episodes of every z, side by side in one vector env (env i runs
    z = i // episodes), the episode of env i seeded with seed + i. Returns the per_z entries of
    eval.json (see the module's docstring for what they hold)."""
    num_envs = num_z * episodes
    envs = make_envs(env_id, num_envs)
    goal_names = env_attribute(envs, "goal_names")
    z = torch.arange(num_z, device=device).repeat_interleave(episodes)
    obs, infos = envs.reset(seed=seed)
    planar = {"x_position", "y_position"} <= infos.keys()  # M. Ant (Hopper-v5 reports x alone)
    start = np.stack([infos["x_position"], infos["y_position"]], -1) if planar else None
    paths = [[start[i].tolist()] for i in range(num_envs)] if planar else None
    returns, lengths, goals, ends = [None] * num_envs, [None] * num_envs, [-1] * num_envs, [None] * num_envs
    while any(r is None for r in returns):
        with torch.inference_mode():
            actions = act(torch.as_tensor(obs, dtype=torch.float32, device=device), z)
        obs, _, terminations, truncations, infos = envs.step(actions.cpu().numpy())
        done = terminations | truncations
        if planar:  # the position after this step: of the finished episode where one ended
            final = infos.get("final_info", {})
            for i in range(num_envs):
                if returns[i] is None:
                    source = final if done[i] else infos
                    ends[i] = [float(source["x_position"][i]), float(source["y_position"][i])]
                    paths[i].append(ends[i])
        for i in np.flatnonzero(infos.get("_episode", [])):
            if returns[i] is None:
                returns[i] = float(infos["episode"]["r"][i])
                lengths[i] = int(infos["episode"]["l"][i])
                if goal_names is not None:
                    goals[i] = int(infos["final_info"]["goal_index"][i])
    dt = env_attribute(envs, "dt") if planar else None  # seconds per environment step
    envs.close()
    per_z = []
    for k in range(num_z):
        mine = slice(k * episodes, (k + 1) * episodes)
        entry = {"z": k, "returns": returns[mine], "mean": float(np.mean(returns[mine])),
                 "std": float(np.std(returns[mine]))}
        if goal_names is not None:
            entry["goals"] = goals[mine]
            entry["goal"] = goal_name(most_common_goal(goals[mine]), goal_names)
        if planar:
            displacement = np.asarray(ends[mine]) - start[mine]
            entry["displacements"] = displacement.tolist()
            entry["headings"] = np.degrees(np.arctan2(displacement[:, 1], displacement[:, 0])).tolist()
            unit = displacement / np.maximum(np.linalg.norm(displacement, axis=1, keepdims=True), 1e-12)
            entry["mean_heading"] = float(np.degrees(np.arctan2(unit[:, 1].mean(), unit[:, 0].mean())))
            # net speed: how far the torso got, over the episode's duration (running in circles scores 0);
            # path speed: the distance it travelled, over the duration (what the reward pays, about)
            duration = np.asarray(lengths[mine]) * dt
            entry["speeds"] = (np.linalg.norm(displacement, axis=1) / duration).tolist()
            entry["mean_speed"] = float(np.mean(entry["speeds"]))
            travelled = [np.linalg.norm(np.diff(np.asarray(paths[i]), axis=0), axis=1).sum() for i in
                         range(k * episodes, (k + 1) * episodes)]
            entry["path_speeds"] = (np.asarray(travelled) / duration).tolist()
            entry["path"] = paths[k * episodes][::10] + [paths[k * episodes][-1]]  # every 10th position
        per_z.append(entry)
    if goal_names is not None:
        per_z[0]["goal_names"] = goal_names  # read by `summarize`, which moves it to the top level
    return per_z


def summarize(per_z: list[dict]) -> dict:
    """What eval.json holds besides per_z: Table 1's average and max over z, and, where the env
    has them, the distinct goals and the directions."""
    means = [entry["mean"] for entry in per_z]
    result = {"num_z": len(per_z), "avg": float(np.mean(means)), "max": float(np.max(means))}
    if "goals" in per_z[0]:
        result["goal_names"] = per_z[0].pop("goal_names")
        result["distinct_goals"] = len({most_common_goal(entry["goals"]) for entry in per_z} - {-1})
    if "headings" in per_z[0]:
        result.update(direction_diversity([entry["mean_heading"] for entry in per_z],
                                          [entry["mean_speed"] for entry in per_z]))
    return result


def goal_name(goal: int, goal_names: list[str]) -> str:
    return "none" if goal < 0 else goal_names[goal]


def most_common_goal(goals: list[int]) -> int:
    """The goal this z reaches most often (-1 when it reaches none)."""
    reached = [g for g in goals if g >= 0]
    return max(set(reached), key=reached.count) if reached else -1


def angle_between(a: float, b: float) -> float:
    """The angle (degrees, 0..180) between two headings in degrees."""
    return abs((a - b + 180) % 360 - 180)


def direction_diversity(headings: list[float], speeds: list[float] | None = None) -> dict:
    """How far apart the z's mean headings (degrees) are: the smallest angle between any two, how
    many of the four 90° quadrants [0, 90), [90, 180), ... they fall in, and (given each z's mean
    speed in m/s) the number of distinct running directions: the largest set of z that run (at
    least RUNNING_SPEED) with headings pairwise at least DISTINCT_DIRECTION apart."""
    smallest = min((angle_between(a, b) for i, a in enumerate(headings) for b in headings[i + 1:]), default=None)
    quadrants = len({int((h % 360) // 90) for h in headings})
    result = {"min_heading_gap": smallest, "quadrants": quadrants}
    if speeds is not None:
        running = [h for h, v in zip(headings, speeds) if v >= RUNNING_SPEED]
        result["running_z"] = len(running)
        result["distinct_running_directions"] = max(
            (size for size in range(len(running), 0, -1) for subset in itertools.combinations(running, size)
             if all(angle_between(a, b) >= DISTINCT_DIRECTION for a, b in itertools.combinations(subset, 2))),
            default=0)
    return result


def print_table(result: dict) -> None:
    """The evaluation as a table on stdout: one row per z (SAC: one policy)."""
    per_z, one = result["per_z"], result["num_z"] == 1
    multigoal, planar = "goals" in per_z[0], "headings" in per_z[0]
    episodes = len(per_z[0]["returns"])
    print(f"\n{'policy' if one else '  z'} | return (mean ± std over {episodes} episode{'s' * (episodes > 1)})" +
          (" | goal reached (episodes)" if multigoal else "") +
          (" | heading (mean, degrees) | net speed (mean, m/s)" if planar else ""))
    for entry in per_z:
        line = f"{result.get('exp_name', '') if one else entry['z']:>{6 if one else 3}} | {entry['mean']:10.1f} ± {entry['std']:.1f}"
        if multigoal:
            goal = most_common_goal(entry["goals"])
            line += f" | {entry['goal']:>4} ({entry['goals'].count(goal) if goal >= 0 else 0}/{len(entry['goals'])})"
        if planar:
            line += f" | {entry['mean_heading']:7.1f} | {entry['mean_speed']:.2f}"
        print(line)
    summary = f"avg {result['avg']:.1f} | max {result['max']:.1f}" if not one else f"return {result['avg']:.1f}"
    if multigoal and not one:
        summary += f" | distinct goals {result['distinct_goals']} of {result['num_z']} z"
    if planar and not one:
        summary += (f" | smallest heading gap {result['min_heading_gap']:.0f}° | quadrants {result['quadrants']} of 4"
                    f" | distinct running directions {result['distinct_running_directions']} "
                    f"(z at >= {RUNNING_SPEED} m/s, >= {DISTINCT_DIRECTION:.0f}° apart)")
    print(summary)


def record_videos(act, env_id: str, seeds: list[int], paths: list[str], device: torch.device) -> None:
    """One episode of every z (z = k starting from seeds[k]: the seed of its first evaluation
    episode), side by side in one vector env, rendered to animated GIFs at `paths`."""
    from PIL import Image

    num_z = len(seeds)
    envs = gym.make_vec(env_id, num_envs=num_z, vectorization_mode="sync", render_mode="rgb_array",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP})  # last frame kept
    z = torch.arange(num_z, device=device)
    obs, _ = envs.reset(seed=seeds)
    frames, recording = [[frame] for frame in envs.render()], np.ones(num_z, dtype=bool)
    while recording.any():
        with torch.inference_mode():
            actions = act(torch.as_tensor(obs, dtype=torch.float32, device=device), z)
        obs, _, terminations, truncations, _ = envs.step(actions.cpu().numpy())
        for k, frame in enumerate(envs.render()):
            if recording[k]:
                frames[k].append(frame)
        recording &= ~(terminations | truncations)
    envs.close()
    duration = max(20, 1000 // envs.metadata.get("render_fps", 30))  # ms per frame
    for path, episode in zip(paths, frames):
        images = [Image.fromarray(frame) for frame in episode]
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)


# ------------------------------------------------------------------ the held-out measure
def collect_transitions(act, make_envs, env_id: str, num_z: int, steps_per_z: int, seed: int,
                        device: torch.device):
    """Fresh transitions of every z's current stochastic policy, for a held-out measure:
    `steps_per_z` steps of each z side by side in a separate vector env (env k runs z = k),
    its episodes and its action noise seeded from `seed` alone. Every random generator of the
    training run is left as it was, so training continues exactly as without this.
    Returns (obs, actions, z) as [num_z * steps_per_z, ...] tensors on `device`, and, where the env
    has `goal_names`, those names and the goal index every finished episode of each z ended at
    ([num_z] lists; else None, None)."""
    envs = make_envs(env_id, num_z)
    goal_names = env_attribute(envs, "goal_names")
    z = torch.arange(num_z, device=device)
    observations, actions_taken, goals = [], [], [[] for _ in range(num_z)]
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())), torch.inference_mode():
        torch.manual_seed(seed)
        obs, _ = envs.reset(seed=seed)
        for _ in range(steps_per_z):
            obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
            actions = act(obs_tensor, z)
            observations.append(obs_tensor)
            actions_taken.append(actions)
            obs, _, _, _, infos = envs.step(actions.cpu().numpy())
            if goal_names is not None:
                for k in np.flatnonzero(infos.get("_final_info", [])):
                    goals[k].append(int(infos["final_info"]["goal_index"][k]))
    envs.close()
    if goal_names is None:
        goals = None
    return torch.cat(observations), torch.cat(actions_taken), z.repeat(steps_per_z), goal_names, goals


def held_out_measure(act, make_envs, env_id: str, num_z: int, steps_per_z: int, seed: int, device: torch.device,
                     *, disc_sa, disc_s) -> dict:
    """Discriminability on data no discriminator has seen (Figure 2): fresh transitions of every z's
    current stochastic policy `act`, scored by q(z|s,a) (`disc_sa`) and q(z|s) (`disc_s`) without
    training. Replay batches can be memorised; these cannot. Then the probe (`probe`): classifiers
    that no algorithm trains against, fitted on other fresh transitions and scored on the same
    held-out ones; and the chance level of both. On Multigoal also the fraction of each z's
    episodes that ended at each goal g (`goal_fraction/z{k}/goal{g}`, or `.../none`)."""
    obs, actions, z, goal_names, goals = collect_transitions(act, make_envs, env_id, num_z, steps_per_z, seed, device)
    with torch.no_grad():
        _, log_q_sa, accuracy_sa = disc_sa.loss(torch.cat([obs, actions], -1), z)
        _, log_q_s, accuracy_s = disc_s.loss(obs, z)
    measured = {"measure/log_q_z_given_sa": log_q_sa, "measure/log_q_z_given_s": log_q_s,
                "measure/accuracy_z_given_sa": accuracy_sa, "measure/accuracy_z_given_s": accuracy_s,
                "measure/chance_log_q": -math.log(num_z), "measure/chance_accuracy": 1 / num_z}
    fit_obs, fit_actions, fit_z, _, _ = collect_transitions(act, make_envs, env_id, num_z, steps_per_z,
                                                            seed_from(seed, 1), device)
    probes = (("sa", disc_sa, torch.cat([fit_obs, fit_actions], -1), torch.cat([obs, actions], -1)),
              ("s", disc_s, fit_obs, obs))
    for given, like, fit_x, test_x in probes:
        log_q, accuracy = probe(like, fit_x, fit_z, test_x, z, seed_from(seed, 2))
        measured[f"measure/probe_log_q_z_given_{given}"] = log_q
        measured[f"measure/probe_accuracy_z_given_{given}"] = accuracy
    for k, ended in enumerate(goals or []):
        for g in range(-1, len(goal_names)):
            name = f"goal{g}" if g >= 0 else "none"
            measured[f"measure/goal_fraction/z{k}/{name}"] = ended.count(g) / len(ended) if ended else 0.0
    return measured


# The probe's fitting: Adam on minibatches of the first half of the fitting steps; every PROBE_CHECK_EVERY
# steps it is scored on the second half, and it stops after PROBE_PATIENCE checks without a gain. Chosen on
# MultiGoal-v0 with |Z| = 4 and 500 steps per z, seeds 0-7: z that act alike gave chance on all eight, z
# with disjoint action ranges an accuracy of q(z|s,a) of 0.998-1.0 (tests/test_run_utils.py).
PROBE_BATCH, PROBE_LR, PROBE_ASIDE = 256, 1e-3, 0.5
PROBE_CHECK_EVERY, PROBE_PATIENCE, PROBE_MAX_STEPS = 25, 4, 3000


def probe(like, fit_x: torch.Tensor, fit_z: torch.Tensor, test_x: torch.Tensor, test_z: torch.Tensor,
          seed: int) -> tuple[float, float]:
    """A classifier that no algorithm trains against: a fresh network of the shape of the
    discriminator `like` (re-initialised, its own optimizer), fitted to tell z from x on
    (fit_x, fit_z) by maximum likelihood and scored on (test_x, test_z), transitions of other
    episodes. Rows are in time order (as `collect_transitions` returns them): the later half of the
    fitting steps is kept aside, and the classifier is scored with the weights that did best there.
    Its first candidate is the uniform guess q(z|x) = 1/|Z|, so it reports chance (log q = -log |Z|,
    accuracy 1/|Z|) unless fitting generalises to the episodes kept aside; training stops after
    PROBE_PATIENCE checks without a gain. Returns the mean log q(z|x) of the true z on the test
    transitions, and the accuracy. Every random generator of the run is left as it was."""
    num_z = like.logits(test_x[:1]).shape[-1]
    classifier = copy.deepcopy(like)
    aside = len(fit_z) - int(len(fit_z) * PROBE_ASIDE)
    best_loss, best_state, checks_without_gain = math.log(num_z), None, 0  # the uniform guess
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        for module in classifier.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = torch.optim.Adam(classifier.parameters(), lr=PROBE_LR)
        for step in range(1, PROBE_MAX_STEPS + 1):
            rows = torch.randint(aside, (PROBE_BATCH,), device=fit_z.device)
            loss = classifier.loss(fit_x[rows], fit_z[rows])[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % PROBE_CHECK_EVERY == 0:
                with torch.no_grad():
                    loss_aside = classifier.loss(fit_x[aside:], fit_z[aside:])[0].item()
                if loss_aside < best_loss:
                    best_loss, best_state, checks_without_gain = loss_aside, copy.deepcopy(classifier.state_dict()), 0
                elif (checks_without_gain := checks_without_gain + 1) == PROBE_PATIENCE:
                    break
    if best_state is None:
        return -math.log(num_z), 1 / num_z
    classifier.load_state_dict(best_state)
    with torch.no_grad():
        _, log_q, accuracy = classifier.loss(test_x, test_z)
    return log_q.item(), accuracy.item()


def seed_from(*numbers: int) -> int:
    """A 32-bit seed derived from several integers (e.g. the run's seed and a step)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(1)[0])
