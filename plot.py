"""The paper's figures and tables, from what the runs write: the runs and model files of the three
scripts, or of your copies of them (`cp mede_continuous.py my_mede.py`).

    python plot.py fig1 --sac RUN/sac_continuous.pt --mede RUN/mede_continuous.pt
    python plot.py fig2 --runs 'runs/*__mede_continuous__*' --runs 'runs/*__my_mede__*'
    python plot.py table1 'runs/*/eval*.json'
    python plot.py goals RUN/my_mede.pt
    python plot.py goal-table 'runs/*/eval*.json'
    python plot.py goals-over-training RUN_DIR
    python plot.py ant 'runs/MultiDirectionAnt-v0__*'
    python plot.py ant-training --runs RUN_DIR

fig1                 Multigoal paths of a one-policy run (SAC, black) and of every z of a MEDE-shaped
                     run (one colour each), goals as red dots with their compass names; below, contours
                     over the action space at three states of Q_soft, Q_z (one z) and S_z = Q_soft - Q_z
                     (Theorem 2). From model files (--save-model).
fig2                 Mean ± std over seeds of log q(z|s,a) and log q(z|s) of the true z, one series per
                     --runs (the held-out measure by default, the probe, or the replay batches), chance log(1/|Z|).
table1               Average and max return, mean ± std over seeds, from eval.json files. Runs whose
                     settings differ are never pooled: a row per script, experiment name and setting.
goals                How often each policy of a Multigoal model file reaches each goal.
goal-table           Multigoal: the distinct goals of each run's z, per seed, and on how many seeds all goals;
                     below, each run's held-out log q(z|s,a) and log q(z|s) at its evaluation's step.
goals-over-training  Multigoal: for every z, the goals its held-out episodes reached, over training.
ant                  M. Ant: every z's torso path, one panel per run (rows: seeds; columns: experiments),
                     all on the same axes in metres, with each z's heading and net speed.
ant-training         M. Ant over training: each z's return, the held-out discriminator accuracy, and each
                     z's heading (from the replay buffer of the checkpoint).

Every series is labelled by its experiment name (the run's --exp-name, by default its script's
name) unless --label says otherwise, and counts its distinct seeds. Quoted patterns (with ~) are
expanded here. Figures go to plots/ unless --out says where.
"""

import argparse
import csv
import glob
import importlib.util
import json
import math
import os
import sys
from collections import Counter, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = os.path.dirname(os.path.abspath(__file__))
Z_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
             "tab:cyan", "tab:gray", "gold"]
SERIES_COLOURS = ["tab:blue", "tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
GOAL_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
STATE_COLOURS = ["gold", "hotpink", "saddlebrown"]  # the paper's yellow, pink and brown dots
MEASURES = {"held-out": ("measure/", "held-out transitions"), "replay": ("charts/", "replay batches"),
            "probe": ("measure/probe_", "held-out transitions, fresh classifiers (the probe)")}
OUR_SCRIPTS = ("sac_continuous", "mede_continuous", "diayn_continuous")
LEGACY_SCRIPTS = {"SAC": "sac_continuous", "MEDE": "mede_continuous", "DIAYN": "diayn_continuous"}

# Flags that say where and how a run was made, not what it learns: Table 1 does not tell runs apart by them
# (--bf16 is what was asked; the precision the run actually trained in is what counts, and is compared).
BOOKKEEPING = {"bf16", "seed", "exp_name", "run_dir", "resume", "threads", "checkpoint_every", "track", "wandb_project_name",
               "wandb_entity", "capture_video", "save_model", "cuda", "measure_every", "measure_steps",
               "torch_deterministic"}


def experiment(result: dict) -> tuple[str, str]:
    """(script, experiment name) of an eval.json; one from before 2026-12 records neither: its algorithm's script."""
    script = result.get("script") or LEGACY_SCRIPTS.get(result.get("algorithm"), result.get("algorithm", "?"))
    return script, result.get("exp_name") or script


class PlotError(Exception):
    """Bad input from the user: one line on stderr, exit code 2."""


# ------------------------------------------------------------------------- runs and models
def expand(patterns: list[str]) -> list[str]:
    """Paths from patterns (quoted globs, ~ included), in order, each at least once."""
    paths = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        found = sorted(glob.glob(pattern))
        if not found and not os.path.exists(pattern):
            raise PlotError(f"no such file or directory: {pattern}")
        paths += found or [pattern]
    return list(dict.fromkeys(paths))


def import_script(name: str, recorded_path: str | None, model_path: str):
    """The module of the script (or copy) that wrote a file: where the file says it ran, or next to plot.py."""
    if name in sys.modules:
        return sys.modules[name]
    for path in (recorded_path, os.path.join(REPO, f"{name}.py")):
        if path and os.path.isfile(path):
            sys.path.insert(0, os.path.dirname(path))  # its own imports (run_utils, ...)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
    raise PlotError(f"{model_path} was written by {name}.py, which is not at {recorded_path or 'its recorded path'} "
                    f"nor next to plot.py: put it back there")


def load_agent(path: str):
    """(agent, args, module) from a --save-model file or a checkpoint of any of the scripts or of a copy,
    rebuilt by the `load_model` of the script that wrote it."""
    if not os.path.exists(path):
        raise PlotError(f"no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a directory, a truncated or foreign file
        state = None
    if not isinstance(state, dict) or "script" not in state:
        raise PlotError(f"{path} is not a model file (--save-model) or checkpoint of this project's scripts")
    module = import_script(state["script"], state.get("script_path"), path)
    try:
        agent, args = module.load_model(path)
    except module.UsageError as error:
        raise PlotError(str(error)) from None
    return agent, args, module


def latent(args) -> bool:
    """A MEDE-shaped run (|Z| policies π(a|s, z)), as opposed to a one-policy run (SAC-shaped)."""
    return hasattr(args, "num_z")


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise PlotError(f"cannot read {path} ({error})") from None


def latest_evaluation(run_dir: str) -> dict | None:
    """The run's latest eval.json (eval.json itself; an extended run keeps eval.step{N}.json too)."""
    files = sorted(glob.glob(os.path.join(run_dir, "eval*.json")))
    if not files:
        return None
    results = [(read_json(f), f) for f in files]  # the highest step; at a tie, eval.json, then by name
    return max(results, key=lambda r: (r[0].get("global_step", -1), os.path.basename(r[1]) == "eval.json",
                                       r[1]))[0]


def run_info(run_dir: str) -> dict:
    """What a run directory is: script, experiment name, seed, |Z| and env, from its eval.json or
    checkpoint, and a label (the experiment name)."""
    if not os.path.isdir(run_dir):
        raise PlotError(f"not a run directory: {run_dir}")
    result = latest_evaluation(run_dir)
    if result is not None:
        info = {"script": result.get("script", result.get("algorithm", "?")),
                "exp_name": result.get("exp_name", result.get("algorithm", "?")), "seed": result["seed"],
                "num_z": result["num_z"], "env_id": result["env_id"], "steps": result["global_step"]}
    elif os.path.exists(os.path.join(run_dir, "checkpoint.pt")):
        state = torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False, mmap=True)
        saved = state["args"]
        info = {"script": state["script"], "exp_name": saved["exp_name"], "seed": saved["seed"],
                "num_z": saved.get("num_z", 1), "env_id": saved["env_id"], "steps": state["global_step"]}
    else:
        raise PlotError(f"{run_dir} holds neither eval.json nor checkpoint.pt: not a run directory, or a run that "
                        "wrote nothing yet")
    return {**info, "dir": run_dir}


def series_of(groups: list[list[str]], labels: list[str]) -> list[tuple[str, list[dict]]]:
    """Labelled series of runs: each group of run directories (one --runs) is split by script and
    experiment name; a group's --label names it (then it must be one experiment)."""
    if len(labels) > len(groups):
        raise PlotError(f"{len(labels)} --label for {len(groups)} --runs: give one label per --runs")
    series = []
    for i, group in enumerate(groups):
        by_experiment = defaultdict(list)
        for run_dir in expand(group):
            info = run_info(run_dir)
            by_experiment[info["script"], info["exp_name"]].append(info)
        if i < len(labels) and len(by_experiment) > 1:
            raise PlotError(f"--label {labels[i]!r} names a --runs with several experiments "
                            f"({', '.join(name for _, name in by_experiment)}): give each its own --runs")
        for (script, exp_name), runs in by_experiment.items():
            series.append((labels[i] if i < len(labels) else exp_name, runs, script))
    names = Counter(name for name, _, _ in series)  # one name for two scripts: say which is which
    return [(f"{name} [{script}]" if names[name] > 1 else name, runs) for name, runs, script in series]


def seeds_label(runs: list[dict]) -> str:
    """'3 seeds', or '2 seeds; seed 1 twice' when a seed repeats (then said on stderr too)."""
    counts = Counter(run["seed"] for run in runs)
    text = f"{len(counts)} seed{'s' if len(counts) > 1 else ''}"
    twice = [f"seed {seed} {'twice' if n == 2 else f'{n} times'}" for seed, n in sorted(counts.items()) if n > 1]
    if twice:
        print(f"note: {', '.join(twice)} among the runs of one series: {', '.join(run['dir'] for run in runs)}",
              file=sys.stderr)
    return text + ("; " + ", ".join(twice) if twice else "")


def multigoal(env_id: str):
    """The Multigoal env of `env_id` (its goals, names and threshold), or one line saying it is not one."""
    import gymnasium as gym

    import multigoal_env  # noqa: F401  (registers the ids)

    try:
        env = gym.make(env_id).unwrapped
    except gym.error.Error as error:
        raise PlotError(f"cannot make {env_id}: {error}") from None
    if not hasattr(env, "goal_names"):
        raise PlotError(f"{env_id} is not a Multigoal environment (it has no goals)")
    return env


# ------------------------------------------------------------------------------------ Figure 1
def rollouts(act, env_id: str, episodes: int, seed: int) -> list[np.ndarray]:
    """Paths [T+1, 2] of `episodes` episodes of the policy `act(obs [2]) -> action [2]`."""
    import gymnasium as gym

    env = gym.make(env_id)
    paths = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        path, done = [obs], False
        while not done:
            obs, _, terminated, truncated, _ = env.step(act(obs))
            path.append(obs)
            done = terminated or truncated
        paths.append(np.array(path))
    env.close()
    return paths


def q_function(agent, args):
    """q(state, z, actions [N, 2]) -> min_j Q_j(s, a, z) [N] of a loaded agent (z ignored with one policy)."""
    def q_values(state, z, actions):
        n = len(actions)
        with torch.no_grad():
            if not latent(args):
                return agent.qf(torch.tensor(state, dtype=torch.float32).view(1, 2).expand(n, 2), actions).min(0).values.numpy()
            members = args.num_z if args.separate_networks else 1
            obs = torch.tensor(state, dtype=torch.float32).view(1, 1, 2).expand(members, n, 2)
            q = agent.qf(obs, torch.full((members, n), z), actions.expand(members, n, 2)).min(0).values
        return q[z if args.separate_networks else 0].numpy()
    return q_values


def draw_paths(ax, env, paths_by_colour, states, title):
    from multigoal_env import BOUND

    for colour, (stochastic, deterministic) in paths_by_colour:
        for path in stochastic:
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.6, alpha=0.5)
        for path in deterministic:
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=2.2)
    for (gx, gy), name in zip(env.goals, env.goal_names):
        ax.add_patch(plt.Circle((gx, gy), env.goal_threshold, color="red", alpha=0.15))
        ax.plot(gx, gy, "o", color="red", ms=7)
        ax.annotate(name, (gx, gy), xytext=(0, 9), textcoords="offset points", ha="center", color="red", fontsize=9)
    for (sx, sy), colour in zip(states, STATE_COLOURS):
        ax.plot(sx, sy, "o", color=colour, ms=9, mec="black", zorder=5)
    ax.set(xlim=(-BOUND, BOUND), ylim=(-BOUND, BOUND), aspect="equal", title=title, xlabel="x", ylabel="y")


def figure1(args) -> str:
    sac_agent, sac_args, _ = load_agent(args.sac)
    mede_agent, mede_args, _ = load_agent(args.mede)
    if latent(sac_args):
        raise PlotError(f"--sac needs a model of a one-policy script (sac_continuous.py or a copy); {args.sac} "
                        f"has |Z| = {sac_args.num_z}")
    if not latent(mede_args):
        raise PlotError(f"--mede needs a model of a script with |Z| policies (mede_continuous.py, diayn_continuous.py "
                        f"or a copy); {args.mede} has one policy")
    env_id = mede_args.env_id
    if sac_args.env_id != env_id:
        raise PlotError(f"fig1 needs two models of the same env (got {sac_args.env_id} and {env_id})")
    env = multigoal(env_id)
    if not 0 <= args.z < mede_args.num_z:
        raise PlotError(f"--z must be in [0, {mede_args.num_z - 1}]")
    sac_label, mede_label = args.sac_label or sac_args.exp_name, args.mede_label or mede_args.exp_name
    torch.manual_seed(args.seed)  # the stochastic policies' noise
    sac_paths = (rollouts(lambda s: sac_agent.policy(s, 0, False), env_id, args.episodes, args.seed),
                 rollouts(lambda s: sac_agent.policy(s, 0, True), env_id, 1, args.seed))
    mede_paths = [(Z_COLOURS[z % len(Z_COLOURS)],
                   (rollouts(lambda s, z=z: mede_agent.policy(s, z, False), env_id, args.episodes, args.seed),
                    rollouts(lambda s, z=z: mede_agent.policy(s, z, True), env_id, 1, args.seed)))
                  for z in range(mede_args.num_z)]
    states = args.states or [(0.0, 0.0), tuple(mede_paths[args.z][1][1][0][2]), (-2.0, 2.0)]
    sac_q, mede_q = q_function(sac_agent, sac_args), q_function(mede_agent, mede_args)

    fig = plt.figure(figsize=(12, 14))
    grid = fig.add_gridspec(4, 3, height_ratios=[1.1, 1, 1, 1], hspace=0.45, wspace=0.35)
    ax_sac, ax_mede, top_right = (fig.add_subplot(grid[0, col]) for col in range(3))
    draw_paths(ax_sac, env, [("black", sac_paths)], states, sac_label)
    draw_paths(ax_mede, env, mede_paths, states, f"{mede_label}, |Z| = {mede_args.num_z}")
    top_right.axis("off")
    handles = [plt.Line2D([], [], color="black", lw=2, label=sac_label)]
    handles += [plt.Line2D([], [], color=colour, lw=2, label=f"{mede_label} z = {z}")
                for z, (colour, _) in enumerate(mede_paths)]
    handles += [plt.Line2D([], [], color="red", marker="o", ls="", label="goal")]
    handles += [plt.Line2D([], [], color=c, marker="o", mec="black", ls="", label=f"state {i + 1}")
                for i, c in enumerate(STATE_COLOURS)]
    top_right.legend(handles=handles, loc="center", frameon=False,
                     title="thick: deterministic policy\nthin: stochastic policy")

    grid_1d = np.linspace(-1, 1, args.resolution)
    ax_x, ax_y = np.meshgrid(grid_1d, grid_1d)
    actions = torch.as_tensor(np.stack([ax_x.ravel(), ax_y.ravel()], -1), dtype=torch.float32)
    z_colour = Z_COLOURS[args.z % len(Z_COLOURS)]
    for row, (state, dot) in enumerate(zip(states, STATE_COLOURS)):
        q_soft = sac_q(state, 0, actions).reshape(ax_x.shape)
        q_z = mede_q(state, args.z, actions).reshape(ax_x.shape)
        for col, (values, name) in enumerate([(q_soft, rf"$Q_{{soft}}$ ({sac_label})"),
                                              (q_z, rf"$Q_z$ ({mede_label}, z = {args.z})"),
                                              (q_soft - q_z, r"$S_z = Q_{soft} - Q_z$")]):
            ax = fig.add_subplot(grid[row + 1, col])
            filled = ax.contourf(ax_x, ax_y, values, levels=15, cmap="viridis")
            ax.contour(ax_x, ax_y, values, levels=15, colors="k", linewidths=0.3)
            fig.colorbar(filled, ax=ax, fraction=0.046, pad=0.04)
            ax.set(aspect="equal", xlabel="action x", ylabel="action y",
                   title=f"{name}\nstate {row + 1}: ({state[0]:.1f}, {state[1]:.1f})")
            ax.title.set_fontsize(9)
            for spine in ax.spines.values():
                spine.set_edgecolor(z_colour if col == 1 else dot)
                spine.set_linewidth(2.5 if col == 1 else 1.5)
    fig.suptitle(f"Figure 1 on {env_id}: paths (top); soft Q-values over the action space at the three marked "
                 "states (below)", fontsize=12, y=0.93)
    return save(fig, args.out)


def goal_counts(args) -> str:
    """How often each policy reaches each goal over `--episodes` episodes (stochastic by default),
    and, for a model with discriminators, how surely each tells that policy's z from its states and
    actions: the mean of q(z|s) and of q(z|s,a) of the true z along its episodes."""
    agent, model_args, _ = load_agent(args.model)
    env_id = model_args.env_id
    names = multigoal(env_id).goal_names
    discriminating = latent(model_args) and hasattr(agent, "disc_s") and hasattr(agent, "disc_sa")
    policies = ({f"z = {z}": z for z in range(model_args.num_z)} if latent(model_args)
                else {model_args.exp_name: 0})
    import gymnasium as gym

    torch.manual_seed(args.seed)  # the policies' action noise
    kind = "deterministic" if args.deterministic else "stochastic"
    columns = [*names, "none", *(["mean q(z\\|s)", "mean q(z\\|s,a)"] if discriminating else [])]
    lines = [f"{args.model}: goals reached in {args.episodes} {kind} episodes per policy",
             "| policy | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    env = gym.make(env_id)
    for label, z in policies.items():
        counts, states, actions = [0] * (len(names) + 1), [], []
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            done, goal = False, -1
            while not done:
                action = agent.policy(obs, z, args.deterministic)
                states.append(obs)
                actions.append(action)
                obs, _, terminated, truncated, info = env.step(action)
                done, goal = terminated or truncated, info["goal_index"]
            counts[goal] += 1  # goal -1 (none) is the last column
        cells = [str(c) for c in counts]
        if discriminating:
            s, a = torch.as_tensor(np.array(states), dtype=torch.float32), torch.as_tensor(np.array(actions))
            true_z = torch.full((len(s),), z)
            with torch.no_grad():
                cells += [f"{agent.disc_s.log_prob(s, true_z).exp().mean():.2f}",
                          f"{agent.disc_sa.log_prob(torch.cat([s, a], -1), true_z).exp().mean():.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    env.close()
    print("\n".join(lines))
    return "the table above"


# ------------------------------------------------------------------------------------ Figure 2
def read_scalars(run_dir: str, tag: str, why_missing: str = ""):
    import logging
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A resumed run's log hides what the interrupted run logged after its checkpoint (purge_step);
    # TensorBoard's warning about it ("... a TensorFlow restart") is expected here, not news.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    if tag not in events.Tags()["scalars"]:
        raise PlotError(f"{run_dir} has no '{tag}' in its TensorBoard log{why_missing}")
    points = {e.step: e.value for e in events.Scalars(tag)}  # a resumed run may repeat steps: keep the last
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def why_no_measure(run: dict) -> str:
    """Why a run may lack the held-out measure: it ran fewer steps than --measure-every."""
    config = (latest_evaluation(run["dir"]) or {}).get("config", {})
    every = config.get("measure_every")
    if every == 0:
        return ": it ran with --measure-every 0 (use --measure replay)"
    if every and run["steps"] < every:
        return (f": it ran {run['steps']} steps, fewer than --measure-every {every}, the measure's first point "
                "(use --measure replay, or a longer run)")
    return ""


def mean_std_over_runs(runs: list[dict], tag: str, points: int = 200):
    """Mean and std over runs on a common step grid (each run linearly interpolated)."""
    curves = [read_scalars(run["dir"], tag, why_no_measure(run) if tag.startswith("measure/") else "") for run in runs]
    end = min(steps[-1] for steps, _ in curves)
    start = max(steps[0] for steps, _ in curves)
    grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, steps, v) for steps, v in curves])
    return grid, values.mean(0), values.std(0)


def figure2(args) -> str:
    series = series_of(args.runs, args.label)
    num_z = {run["num_z"] for _, runs in series for run in runs}
    if len(num_z) != 1:
        raise PlotError(f"the runs have different |Z| ({sorted(num_z)}); plot one |Z| at a time")
    chance = math.log(1 / num_z.pop())
    labels = [seeds_label(runs) for _, runs in series]
    prefix, measured_on = MEASURES[args.measure]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, tag, label in zip(axes, (f"{prefix}log_q_z_given_sa", f"{prefix}log_q_z_given_s"),
                              (r"$\log q(z\,|\,s, a)$", r"$\log q(z\,|\,s)$")):
        for i, (name, runs) in enumerate(series):
            steps, mean, std = mean_std_over_runs(runs, tag, args.points)
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            ax.plot(steps, mean, color=colour, label=f"{name} ({labels[i]})")
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
        ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance, log(1/|Z|) = {chance:.2f}")
        ax.set(title=label + " of the true z", xlabel="environment steps", ylabel=f"mean log-probability, {measured_on}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    title = args.title or f"Figure 2: discriminability of the policies on {measured_on}, mean ± std over seeds"
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, args.out)


# ------------------------------------------------------------------------------------- Table 1
def evaluations_by_row(patterns: list[str]) -> dict:
    """The latest eval.json of every run directory among `patterns`, grouped into Table 1's rows:
    {(env, label, |Z|, steps, script): [results]}. Runs whose settings differ are never pooled: the
    label names the algorithm, the experiment (and the script of a copy), and every flag whose value
    differs between runs of one env and algorithm."""
    latest = {}  # one result per run directory: its latest evaluation (deterministic at a tie)
    for path in expand(patterns):
        result = read_json(path)
        if not all(key in result for key in ("env_id", "num_z", "avg", "max", "global_step", "seed")):
            raise PlotError(f"{path} is not an eval.json written by the scripts")
        run_dir = os.path.dirname(os.path.abspath(path))
        rank = (result["global_step"], os.path.basename(path) == "eval.json", path)
        if run_dir not in latest or rank > latest[run_dir][0]:
            latest[run_dir] = (rank, {**result, "dir": run_dir})
    if not latest:
        raise PlotError("no eval.json files given")
    results = [result for _, result in latest.values()]
    settings = [{**{name: value for name, value in result.get("config", {}).items() if name not in BOOKKEEPING},
                 "precision": result.get("precision", "float32")} if "config" in result else {} for result in results]
    differing = {}  # per env and algorithm: the flags whose values differ between its runs
    for result, setting in zip(results, settings):
        family = (result["env_id"], result.get("algorithm"))
        others = [t for r, t in zip(results, settings) if (r["env_id"], r.get("algorithm")) == family and t]
        differing[family] = sorted({name for t in others for name in t if len({repr(u.get(name)) for u in others}) > 1}
                                   - {"env_id", "num_z", "total_timesteps"})  # those have their own columns
    unrecorded = [result["dir"] for result, setting in zip(results, settings) if not setting]
    if unrecorded:
        print(f"note: {len(unrecorded)} eval.json file(s) from before 2026-12 record no settings; they are grouped by "
              f"algorithm, |Z|, separate networks and β only: {', '.join(sorted(unrecorded))}", file=sys.stderr)
    rows = defaultdict(list)
    for result, setting in zip(results, settings):
        name, script, exp_name = result.get("algorithm", "?"), result.get("script"), result.get("exp_name")
        if not setting and script is None:  # from before 2026-12: the script of its algorithm
            script = experiment(result)[0]
        named = [exp_name] if exp_name and exp_name != script else []
        if script and script not in OUR_SCRIPTS:  # a copy: its script's name, always
            named.append(f"{script}.py" if named else script)
        if named:
            name += f" [{', '.join(named)}]"
        if setting:
            name += "".join(f", {flag}={setting.get(flag)!r}" for flag in differing[result["env_id"], result.get("algorithm")]
                            if flag in setting)
        else:  # an eval.json without its config (written before 2026-12): what it recorded
            name += (" (separate)" if result.get("separate_networks") else "") + \
                    (f" β = {result['disc_coef']:g}" if result.get("disc_coef", 1.0) != 1.0 else "")
        rows[result["env_id"], name, result["num_z"], result["global_step"], script].append(result)
    return dict(sorted(rows.items(), key=lambda row: tuple(map(str, row[0]))))


def table1(args) -> str:
    rows = evaluations_by_row(args.eval_files)
    header = ["env", "algorithm", "|Z|", "seeds", "steps", "avg mean", "avg std", "max mean", "max std"]
    table = []
    for (env_id, name, num_z, steps, _), group in rows.items():
        avg, best = np.array([r["avg"] for r in group]), np.array([r["max"] for r in group])
        table.append([env_id, name, num_z, seeds_label(group), steps, avg.mean(), avg.std(), best.mean(), best.std()])
    markdown = ["| env | algorithm | \\|Z\\| | seeds | steps | average | max |", "|---|---|---|---|---|---|---|"]
    for env_id, name, num_z, seeds, steps, am, asd, bm, bsd in table:
        max_cell = "" if num_z == 1 else f"{bm:.1f} ± {bsd:.1f}"  # one policy: max = average
        markdown.append(f"| {env_id} | {name} | {num_z} | {seeds} | {steps} | {am:.1f} ± {asd:.1f} | {max_cell} |")
    text = "\n".join(markdown) + "\n"
    print(text, end="")
    out = os.path.expanduser(args.out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomically(f"{out}.md", lambda f: f.write(text))
    write_atomically(f"{out}.csv", lambda f: csv.writer(f).writerows([header, *table]), newline="")
    return f"{out}.md and {out}.csv"


def measure_at(run_dir: str, tag: str, step: int):
    """A held-out measure's last value at or before `step` in a run's TensorBoard log (a run extended
    later has measures past its earlier evaluations), or None if it has none."""
    try:
        steps, values = read_scalars(run_dir, f"measure/{tag}")
    except PlotError:
        return None
    return values[steps <= step][-1] if (steps <= step).any() else None


def goal_table(args) -> str:
    """Figure 1's robustness: for every row (as in Table 1), the number of distinct goals its z reach
    (each z's most common goal over its deterministic evaluation episodes), per seed; below, each
    run's held-out measure (log q(z|s,a), log q(z|s) of the true z) at that evaluation's step, when
    its TensorBoard log has one."""
    rows = evaluations_by_row(args.eval_files)
    seeds = sorted({r["seed"] for group in rows.values() for r in group})
    markdown = ["| env | algorithm | \\|Z\\| | steps | " + " | ".join(f"seed {s}" for s in seeds) + " | all goals on |",
                "|---|---|---|---|" + "---|" * (len(seeds) + 1)]
    measured = ["", "The held-out measure at each run's evaluation step (chance: log 1/|Z|; bound: 0):", "",
                "| env | algorithm | \\|Z\\| | steps | measure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                "|---|---|---|---|---|" + "---|" * (len(seeds) + 1)]
    any_measured = False
    for (env_id, name, num_z, steps, _), group in rows.items():
        if "distinct_goals" not in group[0]:
            raise PlotError(f"{group[0]['dir']} is not a Multigoal run (its eval.json has no goals)")
        goals = len(group[0]["goal_names"]) if "goal_names" in group[0] else None
        by_seed = defaultdict(list)
        for r in group:
            by_seed[r["seed"]].append(r["distinct_goals"])
        cells = [",".join(map(str, by_seed[s])) if s in by_seed else "" for s in seeds]
        every = min(num_z, goals) if goals else num_z  # all goals the z can take
        hits = sum(r["distinct_goals"] >= every for r in group)
        markdown.append(f"| {env_id} | {name} | {num_z} | {steps} | " + " | ".join(cells) + f" | {hits} of {len(group)} |")
        for tag, label in (("log_q_z_given_sa", "log q(z\\|s,a)"), ("log_q_z_given_s", "log q(z\\|s)")):
            values = defaultdict(list)
            for r in group:
                value = measure_at(r["dir"], tag, r["global_step"])
                if value is not None:
                    values[r["seed"]].append(value)
            if values:
                any_measured = True
                every_value = [v for vs in values.values() for v in vs]
                cells = [",".join(f"{v:.2f}" for v in values[s]) if s in values else "" for s in seeds]
                measured.append(f"| {env_id} | {name} | {num_z} | {steps} | {label} | " + " | ".join(cells)
                                + f" | {np.mean(every_value):.2f} |")
    text = "\n".join(markdown + (measured if any_measured else [])) + "\n"
    print(text, end="")
    out = os.path.expanduser(args.out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomically(f"{out}.md", lambda f: f.write(text))
    return f"{out}.md"


# ----------------------------------------------------------------------- goals over training
def goals_over_training(args) -> str:
    """For every z, the fraction of its held-out episodes that ended at each goal, against the step."""
    run = run_info(os.path.expanduser(args.run))
    if run["num_z"] < 2:
        raise PlotError(f"{args.run} is a one-policy run: goals-over-training needs |Z| policies (MEDE, DIAYN)")
    names = multigoal(run["env_id"]).goal_names
    fig, axes = plt.subplots(run["num_z"], 1, figsize=(9, 1.8 * run["num_z"] + 0.8), sharex=True, squeeze=False)
    why = why_no_measure(run)
    print(f"{run['dir']}: the goal most of each z's held-out episodes reached, at every measure ('-': none)")
    for z, ax in enumerate(axes[:, 0]):
        curves = [read_scalars(run["dir"], f"measure/goal_fraction/z{z}/goal{g}", why) for g in range(len(names))]
        none = read_scalars(run["dir"], f"measure/goal_fraction/z{z}/none", why)
        steps = curves[0][0]
        fractions = np.stack([values for _, values in curves] + [none[1]])  # [goals + 1, steps]
        if z == 0:
            print(f"steps {steps[0]}, {steps[1] if len(steps) > 1 else ''}, ... {steps[-1]}")
        print(f"z = {z}: " + " ".join(([*names, "-"])[i] for i in fractions.argmax(0)))
        ax.stackplot(steps, *[values for _, values in curves], none[1],
                     colors=[GOAL_COLOURS[g % len(GOAL_COLOURS)] for g in range(len(names))] + ["lightgray"],
                     labels=[*names, "none"], alpha=0.85)
        ax.set(ylim=(0, 1), ylabel=f"z = {z}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="goal reached", fontsize=8)
    axes[-1, 0].set_xlabel("environment steps")
    fig.suptitle(args.title or f"{run['exp_name']}, seed {run['seed']}, {run['env_id']}: the goals each z's held-out "
                 "episodes reached")
    fig.tight_layout()
    return save(fig, args.out)


# ------------------------------------------------------------------------------- M. Ant directions
def figure_ant(args) -> str:
    """Rows: seeds; columns: experiments (script and name); every z's deterministic torso path, the same
    axes in metres everywhere."""
    evaluations, panels = [], {}
    for run_dir in dict.fromkeys(path if os.path.isdir(path) else os.path.dirname(path) for path in expand(args.runs)):
        result = latest_evaluation(run_dir)  # a run's latest, also when its eval.step*.json were named too
        if result is None:
            raise PlotError(f"{run_dir} holds no eval.json (the run has not finished)")
        if "path" not in result["per_z"][0]:
            raise PlotError(f"the eval.json of {run_dir} has no torso paths (only MultiDirectionAnt-v0 runs record them)")
        key = (result["seed"], *experiment(result))
        if key in panels:
            raise PlotError(f"{panels[key]} and {run_dir} are both seed {key[0]} of {key[2]}: give one of them")
        panels[key] = run_dir
        evaluations.append(result)
    columns = list(dict.fromkeys(experiment(r) for r in evaluations))
    seeds = sorted({r["seed"] for r in evaluations})
    panel = {(r["seed"], experiment(r)): r for r in evaluations}
    reach = max(1.0, *(np.abs(np.asarray(e["path"])).max() for r in evaluations for e in r["per_z"]))
    fig, axes = plt.subplots(len(seeds), len(columns), figsize=(5 * len(columns), 5.2 * len(seeds)), squeeze=False)
    for row, seed in enumerate(seeds):
        for col, column in enumerate(columns):
            ax, run = axes[row, col], panel.get((seed, column))
            if run is None:
                ax.axis("off")
                continue
            one = run["num_z"] == 1
            for entry in run["per_z"]:
                colour = "black" if one else Z_COLOURS[entry["z"] % len(Z_COLOURS)]
                path = np.asarray(entry["path"])
                speed = f", {entry['mean_speed']:.2f} m/s" if "mean_speed" in entry else ""
                who = "" if one else f"z = {entry['z']}: "
                ax.plot(path[:, 0], path[:, 1], color=colour, lw=1.8, label=f"{who}{entry['mean_heading']:.0f}°{speed}")
                length = float(np.mean(np.linalg.norm(entry["displacements"], axis=1)))
                angle = math.radians(entry["mean_heading"])
                ax.annotate("", xy=(path[0, 0] + length * math.cos(angle), path[0, 1] + length * math.sin(angle)),
                            xytext=tuple(path[0]), arrowprops=dict(arrowstyle="->", color=colour, lw=1.2, ls="--"))
            ax.plot(0, 0, "o", color="gray", ms=5)
            running = (f"{run['distinct_running_directions']} distinct running direction(s)"
                       if "distinct_running_directions" in run else f"{run.get('quadrants', '?')} of 4 quadrants")
            ax.set(xlim=(-1.1 * reach, 1.1 * reach), ylim=(-1.1 * reach, 1.1 * reach), aspect="equal", xlabel="x (m)",
                   ylabel="y (m)", title=f"{column[1]}, seed {seed}, {run['global_step']} steps\n{running}")
            ax.title.set_fontsize(10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="best", title="heading, net speed", title_fontsize=8)
    fig.suptitle(args.title or "Multidirection Ant: torso paths of the deterministic policies (arrows: mean heading)")
    fig.tight_layout()
    return save(fig, args.out)


ANT_VELOCITY = slice(13, 15)  # the torso's (ẋ, ẏ) in MultiDirectionAnt-v0's observation: qpos[2:] (13), then qvel


def buffer_headings(checkpoint_path: str, window: int):
    """From a run's checkpoint.pt (its replay buffer holds every step, in order): for every window
    of `window` steps of each agent, the heading (degrees) and speed of the mean torso velocity.
    Returns (steps per agent at the windows' ends, headings [windows, M], speeds [windows, M])."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False, mmap=True)
    obs = state["buffer"]["obs"]
    if state["buffer"]["pos"] != state["buffer"]["size"]:  # a full ring buffer: the oldest steps are gone
        raise PlotError(f"{checkpoint_path}: the replay buffer has wrapped around; the headings need every step")
    if obs.dim() == 3 and not state.get("args", {}).get("separate_networks", True):
        raise PlotError(f"{checkpoint_path}: a run with shared networks mixes every z in one buffer column; "
                        "ant-training needs --separate-networks (one agent per column) or SAC")
    obs = obs if obs.dim() == 3 else obs.unsqueeze(1)  # SAC: one agent
    if obs.shape[-1] != 27:
        raise PlotError(f"{checkpoint_path} is not a MultiDirectionAnt-v0 run (observation size {obs.shape[-1]})")
    windows = len(obs) // window
    velocity = obs[: windows * window, :, ANT_VELOCITY].double().view(windows, window, obs.shape[1], 2).mean(1)
    headings = torch.rad2deg(torch.atan2(velocity[..., 1], velocity[..., 0]))
    return (np.arange(1, windows + 1) * window, headings.numpy(), velocity.norm(dim=-1).numpy())


def figure_ant_training(args) -> str:
    """Per run (a row): each z's episodic return, the held-out accuracy of both discriminators, and
    each z's heading over training (from the replay buffer of its checkpoint)."""
    runs = expand(args.runs)
    fig, axes = plt.subplots(len(runs), 3, figsize=(16, 3.6 * len(runs)), squeeze=False)
    for row, run_dir in zip(axes, runs):
        name = os.path.basename(os.path.normpath(run_dir))
        steps, headings, speeds = buffer_headings(os.path.join(run_dir, "checkpoint.pt"), args.window)
        members = headings.shape[1]
        colours = ["black"] if members == 1 else [Z_COLOURS[k % len(Z_COLOURS)] for k in range(members)]
        tags = ["charts/episodic_return"] if members == 1 else [f"charts/episodic_return_z{k}" for k in range(members)]
        for k, (tag, colour) in enumerate(zip(tags, colours)):
            x, y = read_scalars(run_dir, tag)
            smooth = np.convolve(y, np.ones(args.smooth) / args.smooth, mode="valid") if len(y) >= args.smooth else y
            row[0].plot(x[len(x) - len(smooth):] / members, smooth, color=colour, lw=1.2,
                        label="one policy" if members == 1 else f"z = {k}")
        row[0].set(title=f"{name}: episodic return (mean of {args.smooth})", xlabel="steps per agent")
        if members > 1:
            for tag, style in (("measure/accuracy_z_given_sa", "-"), ("measure/accuracy_z_given_s", "--")):
                x, y = read_scalars(run_dir, tag)
                row[1].plot(x / members, y, style, color="tab:blue", label=tag.split("/")[1])
            row[1].axhline(1 / members, color="gray", ls=":", label=f"chance 1/{members}")
            row[1].set(title="held-out discriminator accuracy", xlabel="steps per agent", ylim=(0, 1.02))
        else:
            row[1].axis("off")
        for k, colour in enumerate(colours):
            moving = speeds[:, k] > args.min_speed  # a heading means little while the ant stands still
            row[2].scatter(steps[moving], headings[moving, k], s=8 + 30 * np.minimum(speeds[moving, k], 1.5), color=colour)
            row[2].plot(steps, headings[:, k], color=colour, lw=0.4, alpha=0.5)
        row[2].set(title=f"heading of the mean torso velocity, windows of {args.window} steps (dot size: speed)",
                   xlabel="steps per agent", ylabel="degrees", ylim=(-185, 185), yticks=[-180, -90, 0, 90, 180])
        for ax in row:
            ax.grid(alpha=0.3)
            ax.title.set_fontsize(9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, args.out)


# ----------------------------------------------------------------------------------- plumbing
def write_atomically(path: str, write, newline=None) -> None:
    with open(f"{path}.tmp", "w", newline=newline) as f:
        write(f)
    os.replace(f"{path}.tmp", path)


def save(fig, out: str) -> str:
    out = os.path.expanduser(out)
    out = out if out.endswith(".png") else f"{out}.png"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(f"{out}.tmp.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(f"{out}.tmp.png", out)
    return out


def three_states(text: str) -> list[tuple[float, float]]:
    """'x,y x,y x,y' -> three (x, y) states."""
    try:
        states = [tuple(float(v) for v in point.split(",")) for point in text.split()]
    except ValueError:
        states = []
    if len(states) != 3 or any(len(s) != 2 for s in states):
        raise argparse.ArgumentTypeError(f"expected three states 'x,y x,y x,y', got {text!r}")
    return states


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """Bad input is one line on stderr (argparse's usage would make it two)."""
        print(f"plot.py: error: {message}", file=sys.stderr)
        sys.exit(2)


class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's --help shows its default, unless its help already says it or there is none."""

    def _get_help_string(self, action):
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    defaults = ShowDefaults
    p1 = sub.add_parser("fig1", help="Multigoal paths and Q contours (from --save-model files)", formatter_class=defaults)
    p1.add_argument("--sac", required=True, help="model file of a one-policy run (sac_continuous.py or a copy) on a "
                    "Multigoal env")
    p1.add_argument("--mede", required=True, help="model file of a run with |Z| policies (mede_continuous.py, "
                    "diayn_continuous.py or a copy) on the same env")
    p1.add_argument("--sac-label", help="name of the one-policy run (default: its experiment name)")
    p1.add_argument("--mede-label", help="name of the |Z|-policy run (default: its experiment name)")
    p1.add_argument("--z", type=int, default=0, help="the policy whose Q_z is drawn (0 is blue)")
    p1.add_argument("--states", type=three_states, help="the three states of the contour rows, e.g. "
                    "--states='0,0 2,2 -2,2' (default: the origin, the third state of z's deterministic path, "
                    "and (-2, 2))")
    p1.add_argument("--episodes", type=int, default=10, help="stochastic episodes drawn per policy")
    p1.add_argument("--resolution", type=int, default=61, help="grid points per action dimension")
    p1.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    p1.add_argument("--out", default="plots/figure1.png", help="output PNG")
    p2 = sub.add_parser("fig2", help="discriminability curves over training, one series per --runs (TensorBoard "
                        "logs)", formatter_class=defaults)
    p2.add_argument("--runs", nargs="+", action="append", required=True, metavar="RUN_DIR",
                    help="run directories (quoted patterns are expanded) of one series; give --runs once per series")
    p2.add_argument("--label", action="append", default=[], help="the name of a series, one per --runs, in order "
                    "(default: the runs' experiment name)")
    p2.add_argument("--measure", choices=list(MEASURES), default="held-out",
                    help="held-out: fresh transitions no discriminator trained on; replay: the paper's replay batches; "
                         "probe: fresh classifiers that no algorithm trains against, on held-out transitions")
    p2.add_argument("--points", type=int, default=200, help="points of the common step grid")
    p2.add_argument("--title", help="figure title")
    p2.add_argument("--out", default="plots/figure2.png", help="output PNG")
    p3 = sub.add_parser("table1", help="average and max return (from eval.json files)", formatter_class=defaults)
    p3.add_argument("eval_files", nargs="+", help="eval.json files (quoted patterns are expanded)")
    p3.add_argument("--out", default="plots/table1", help="output path without extension (.md and .csv)")
    p8 = sub.add_parser("goal-table", help="Multigoal: distinct goals per seed, a row per experiment (from eval.json), "
                                           "and each run's held-out measure",
                        formatter_class=defaults)
    p8.add_argument("eval_files", nargs="+", help="eval.json files of Multigoal runs (quoted patterns are expanded)")
    p8.add_argument("--out", default="plots/goal_table", help="output path without extension (.md)")
    p5 = sub.add_parser("goals", help="how often each Multigoal policy reaches each goal (from a --save-model file)",
                        formatter_class=defaults)
    p5.add_argument("model", help="model file of a run on a Multigoal env, of any of the scripts or a copy")
    p5.add_argument("--episodes", type=int, default=100, help="episodes per policy")
    p5.add_argument("--deterministic", action="store_true", help="the mean action instead of sampling")
    p5.add_argument("--seed", type=int, default=0, help="seed of the first episode's start (then +1, +2, ...)")
    p7 = sub.add_parser("goals-over-training", help="Multigoal: the goals each z's held-out episodes reached, over "
                        "training", formatter_class=defaults)
    p7.add_argument("run", help="run directory of a MEDE or DIAYN run (or a copy) on a Multigoal env")
    p7.add_argument("--title", help="figure title")
    p7.add_argument("--out", default="plots/goals_over_training.png", help="output PNG")
    p4 = sub.add_parser("ant", help="M. Ant torso paths per z, rows seeds, columns experiments (from eval.json)",
                        formatter_class=defaults)
    p4.add_argument("runs", nargs="+", help="run directories or eval.json files (quoted patterns are expanded)")
    p4.add_argument("--title", help="figure title")
    p4.add_argument("--out", default="plots/ant_directions.png", help="output PNG")
    p6 = sub.add_parser("ant-training", help="M. Ant over training: returns, discriminator accuracy, headings per z",
                        formatter_class=defaults)
    p6.add_argument("--runs", nargs="+", required=True, help="run directories (with checkpoint.pt and TensorBoard logs)")
    p6.add_argument("--window", type=int, default=5000, help="steps per agent in one heading window")
    p6.add_argument("--smooth", type=int, default=10, help="episodes in the return's moving average")
    p6.add_argument("--min-speed", type=float, default=0.1, help="windows slower than this (m/s) get no heading dot")
    p6.add_argument("--out", default="plots/ant_training.png", help="output PNG")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    return {"fig1": figure1, "fig2": figure2, "table1": table1, "ant": figure_ant, "goals": goal_counts,
            "goals-over-training": goals_over_training, "goal-table": goal_table,
            "ant-training": figure_ant_training}[args.command](args)


if __name__ == "__main__":
    try:
        print(f"wrote {main()}")
    except PlotError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        sys.exit(2)
