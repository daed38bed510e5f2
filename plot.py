"""The paper's Figure 1, Figure 2, Table 1 and the M. Ant directions, from what the scripts write.

    python plot.py fig1 --sac runs/<sac run>/sac_continuous.pt --mede runs/<mede run>/mede_continuous.pt
    python plot.py fig2 --mede runs/Hopper-v4__mede_continuous__* --diayn runs/Hopper-v4__diayn_continuous__*
    python plot.py table1 runs/*/eval*.json
    python plot.py ant --runs runs/MultiDirectionAnt-v0__mede_continuous__* --sac runs/MultiDirectionAnt-v0__sac*

fig1   Multigoal paths of SAC (black) and of every MEDE z (one colour each), goals as red dots,
       from `--save-model` files; below, contours over the 2-D action space at three states of
       Q_soft (SAC), Q_z (MEDE, one z) and S_z = Q_soft - Q_z (paper Theorem 2).
fig2   Mean ± std over seeds of log q(z|s,a) and log q(z|s) of the true z, MEDE against DIAYN
       (and DIAYN with a matched weight), from the TensorBoard logs of the run directories:
       the held-out measure (measure/..., fresh transitions no discriminator was trained on;
       the default) or the paper's replay-batch measure (charts/...). Chance level log(1/|Z|).
table1 Average and max return (mean ± std over seeds) per algorithm, environment, |Z| and
       diversity weight, from eval.json files (the latest of each run directory), as Markdown
       (printed and written) and CSV.
ant    M. Ant: the deterministic torso path of every z in the xy-plane (one colour per z, SAC
       in black) with an arrow along each z's mean heading, one panel per run, from eval.json.
goals  Multigoal: how often each policy (SAC, or every MEDE z) reaches each goal over N
       stochastic (or deterministic) episodes, from a `--save-model` file.
"""

import argparse
import csv
import glob
import json
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

Z_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
             "tab:cyan", "tab:gray", "gold"]
STATE_COLOURS = ["gold", "hotpink", "saddlebrown"]  # the paper's yellow, pink and brown dots
ALGORITHM_COLOURS = {"MEDE": "tab:blue", "DIAYN": "tab:red", "DIAYN, matched weight": "tab:orange"}
MEASURES = {"held-out": ("measure", "held-out transitions"), "replay": ("charts", "replay batches")}


class PlotError(Exception):
    """Bad input from the user: one line on stderr, exit code 2."""


# ------------------------------------------------------------------------------------ Figure 1
def rollouts(act, env_id: str, episodes: int, seed: int) -> list[np.ndarray]:
    """Paths [T+1, 2] of `episodes` episodes of the policy `act(obs [2]) -> action [2]`."""
    import gymnasium as gym

    import multigoal_env  # noqa: F401

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


def load_sac(path: str):
    import sac_continuous

    try:
        actor, qf, args = sac_continuous.load_model(path)
    except sac_continuous.UsageError as error:
        raise PlotError(str(error)) from None
    obs = lambda s: torch.as_tensor(np.asarray(s), dtype=torch.float32).view(-1, 2)  # noqa: E731

    def act(s, deterministic):
        with torch.no_grad():
            a = actor.deterministic(obs(s)) if deterministic else actor.sample(obs(s))[0]
        return a[0].numpy()

    def q_values(s, actions):  # min_j Q_j(s, a) for a batch of actions [N, 2]
        with torch.no_grad():
            return qf(obs(s).expand(len(actions), -1), actions).min(0).values.numpy()

    return act, q_values, args


def load_mede(path: str):
    import mede_continuous as mede

    try:
        agent, args = mede.load_model(path)
    except mede.UsageError as error:
        raise PlotError(str(error)) from None
    members = args.num_z if args.separate_networks else 1

    def act(s, z, deterministic):
        # Every member acts on this observation; keep the one of policy z.
        obs = torch.as_tensor(np.asarray(s), dtype=torch.float32).view(1, 2).expand(members, 2)
        zs = torch.arange(members) if args.separate_networks else torch.full((1,), z)
        with torch.no_grad():
            a = agent.act(obs, zs, deterministic)
        return a[z if args.separate_networks else 0].numpy()

    def q_values(s, z, actions):  # min_j Q_j(s, a, z) for a batch of actions [N, 2]
        n = len(actions)
        obs = torch.as_tensor(np.asarray(s), dtype=torch.float32).view(1, 1, 2).expand(members, n, 2)
        zs = torch.full((members, n), z)
        policy_in = mede.policy_input(obs, zs, args.num_z, args.separate_networks)
        with torch.no_grad():
            q = agent.qf(policy_in, actions.expand(members, n, 2)).min(0).values
        return q[z if args.separate_networks else 0].numpy()

    return act, q_values, args


def draw_paths(ax, env_id, paths_by_colour, states, title):
    from multigoal_env import BOUND, MultiGoalEnv

    import gymnasium as gym

    goals = gym.spec(env_id).kwargs["goals"]
    threshold = MultiGoalEnv().goal_threshold
    for colour, (stochastic, deterministic) in paths_by_colour:
        for path in stochastic:
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.6, alpha=0.5)
        for path in deterministic:
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=2.2)
    for gx, gy in goals:
        ax.add_patch(plt.Circle((gx, gy), threshold, color="red", alpha=0.15))
        ax.plot(gx, gy, "o", color="red", ms=7)
    for (sx, sy), colour in zip(states, STATE_COLOURS):
        ax.plot(sx, sy, "o", color=colour, ms=9, mec="black", zorder=5)
    ax.set(xlim=(-BOUND, BOUND), ylim=(-BOUND, BOUND), aspect="equal", title=title, xlabel="x", ylabel="y")


def figure1(args) -> str:
    sac_act, sac_q, sac_args = load_sac(args.sac)
    mede_act, mede_q, mede_args = load_mede(args.mede)
    env_id = mede_args.env_id
    if not env_id.startswith("MultiGoal") or sac_args.env_id != env_id:
        raise PlotError(f"fig1 needs a SAC and a MEDE model of the same Multigoal env "
                        f"(got {sac_args.env_id} and {env_id})")
    if not 0 <= args.z < mede_args.num_z:
        raise PlotError(f"--z must be in [0, {mede_args.num_z - 1}]")
    seed = args.seed

    sac_paths = (rollouts(lambda s: sac_act(s, False), env_id, args.episodes, seed),
                 rollouts(lambda s: sac_act(s, True), env_id, 1, seed))
    mede_paths = [(Z_COLOURS[z % len(Z_COLOURS)],
                   (rollouts(lambda s, z=z: mede_act(s, z, False), env_id, args.episodes, seed),
                    rollouts(lambda s, z=z: mede_act(s, z, True), env_id, 1, seed)))
                  for z in range(mede_args.num_z)]
    states = args.states or [(0.0, 0.0), tuple(mede_paths[args.z][1][1][0][2]), (-2.0, 2.0)]

    fig = plt.figure(figsize=(12, 14))
    grid = fig.add_gridspec(4, 3, height_ratios=[1.1, 1, 1, 1], hspace=0.45, wspace=0.35)
    ax_sac, ax_mede, top_right = (fig.add_subplot(grid[0, col]) for col in range(3))
    draw_paths(ax_sac, env_id, [("black", sac_paths)], states, "SAC")
    draw_paths(ax_mede, env_id, mede_paths, states, f"MEDE, |Z| = {mede_args.num_z}")
    top_right.axis("off")
    handles = [plt.Line2D([], [], color="black", lw=2, label="SAC")]
    handles += [plt.Line2D([], [], color=colour, lw=2, label=f"MEDE z = {z}") for z, (colour, _) in enumerate(mede_paths)]
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
        q_soft = sac_q(state, actions).reshape(ax_x.shape)
        q_z = mede_q(state, args.z, actions).reshape(ax_x.shape)
        for col, (values, name) in enumerate([(q_soft, r"$Q_{soft}$ (SAC)"), (q_z, rf"$Q_z$ (MEDE, z = {args.z})"),
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
    fig.suptitle(f"Figure 1 on {env_id}: SAC and MEDE paths (top); soft Q-values over the action space "
                 "at the three marked states (below)", fontsize=12, y=0.93)
    return save(fig, args.out)


def goal_counts(args) -> str:
    """How often each policy reaches each goal over `--episodes` episodes (stochastic by default)."""
    script = torch.load(args.model, map_location="cpu", weights_only=False, mmap=True).get("script", "?") \
        if os.path.isfile(args.model) else "?"
    if script == "sac_continuous":
        act, _, model_args = load_sac(args.model)
        policies = {"SAC": lambda s: act(s, args.deterministic)}
    elif script == "mede_continuous":
        act, _, model_args = load_mede(args.model)
        policies = {f"z = {z}": (lambda s, z=z: act(s, z, args.deterministic)) for z in range(model_args.num_z)}
    else:
        raise PlotError(f"{args.model} is not a --save-model file of sac_continuous.py or mede_continuous.py")
    if not model_args.env_id.startswith("MultiGoal"):
        raise PlotError(f"goals needs a Multigoal model, got one of {model_args.env_id}")
    import gymnasium as gym

    import multigoal_env  # noqa: F401

    torch.manual_seed(args.seed)  # the policies' action noise
    num_goals = len(gym.spec(model_args.env_id).kwargs["goals"])
    kind = "deterministic" if args.deterministic else "stochastic"
    lines = [f"{args.model}: goals reached in {args.episodes} {kind} episodes per policy",
             "| policy | " + " | ".join(f"goal {g}" for g in range(num_goals)) + " | none |",
             "|---|" + "---|" * (num_goals + 1)]
    env = gym.make(model_args.env_id)
    for name, policy in policies.items():
        counts = [0] * (num_goals + 1)
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            done, goal = False, -1
            while not done:
                obs, _, terminated, truncated, info = env.step(policy(obs))
                done, goal = terminated or truncated, info["goal_index"]
            counts[goal] += 1  # goal -1 (none) is the last column
        lines.append(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")
    env.close()
    print("\n".join(lines))
    return "the table above"


# ------------------------------------------------------------------------------------ Figure 2
def read_scalars(run_dir: str, tag: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    if tag not in events.Tags()["scalars"]:
        raise PlotError(f"{run_dir} has no '{tag}' in its TensorBoard log")
    points = {e.step: e.value for e in events.Scalars(tag)}  # a resumed run may repeat steps: keep the last
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def run_num_z(run_dir: str) -> int:
    """|Z| of a run, from its eval.json or checkpoint (both hold it)."""
    eval_path = os.path.join(run_dir, "eval.json")
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            return json.load(f)["num_z"]
    for path in glob.glob(os.path.join(run_dir, "*.pt")):
        return torch.load(path, map_location="cpu", weights_only=False)["args"]["num_z"]
    raise PlotError(f"cannot tell |Z| of {run_dir}: it has neither eval.json nor a .pt file")


def mean_std_over_runs(run_dirs: list[str], tag: str, points: int = 200):
    """Mean and std over runs on a common step grid (each run linearly interpolated)."""
    curves = [read_scalars(d, tag) for d in run_dirs]
    end = min(steps[-1] for steps, _ in curves)
    start = max(steps[0] for steps, _ in curves)
    grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, steps, v) for steps, v in curves])
    return grid, values.mean(0), values.std(0)


def figure2(args) -> str:
    groups = {name: dirs for name, dirs in (("MEDE", args.mede), ("DIAYN", args.diayn),
                                            ("DIAYN, matched weight", args.diayn_matched)) if dirs}
    if not groups:
        raise PlotError("fig2 needs --mede, --diayn and/or --diayn-matched run directories")
    for dirs in groups.values():
        for d in dirs:
            if not os.path.isdir(d):
                raise PlotError(f"not a run directory: {d}")
    num_z = {run_num_z(d) for dirs in groups.values() for d in dirs}
    if len(num_z) != 1:
        raise PlotError(f"the runs have different |Z| ({sorted(num_z)}); plot one |Z| at a time")
    chance = math.log(1 / num_z.pop())
    prefix, measured_on = MEASURES[args.measure]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, tag, label in zip(axes, (f"{prefix}/log_q_z_given_sa", f"{prefix}/log_q_z_given_s"),
                              (r"$\log q(z\,|\,s, a)$", r"$\log q(z\,|\,s)$")):
        for name, dirs in groups.items():
            steps, mean, std = mean_std_over_runs(dirs, tag, args.points)
            colour = ALGORITHM_COLOURS[name]
            ax.plot(steps, mean, color=colour, label=f"{name} ({len(dirs)} seed{'s' if len(dirs) > 1 else ''})")
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
def table1(args) -> str:
    paths = [p for pattern in args.eval_files for p in (glob.glob(pattern) or [pattern])]
    latest = {}  # one result per run directory: the latest (a resumed, extended run adds eval.1.json)
    for path in paths:
        try:
            with open(path) as f:
                result = json.load(f)
            key = (result["env_id"], result.get("algorithm", "?"), result["num_z"], result.get("separate_networks", False),
                   result.get("disc_coef", 1.0))
            step = result["global_step"]
        except (OSError, ValueError, KeyError) as error:
            raise PlotError(f"{path} is not an eval.json written by the scripts ({error})") from None
        run_dir = os.path.dirname(os.path.abspath(path))
        if run_dir not in latest or step > latest[run_dir][1]["global_step"]:
            latest[run_dir] = (key, result)
    rows = defaultdict(list)
    for key, result in latest.values():
        rows[key].append(result)
    if not rows:
        raise PlotError("no eval.json files given")
    header = ["env", "algorithm", "|Z|", "seeds", "steps", "avg mean", "avg std", "max mean", "max std"]
    table = []
    for (env_id, algorithm, num_z, separate, beta), results in sorted(rows.items()):
        avg = np.array([r["avg"] for r in results])
        best = np.array([r["max"] for r in results])
        steps = sorted({r["global_step"] for r in results})
        name = algorithm + (" (separate)" if separate else "") + (f" β = {beta:g}" if beta != 1.0 else "")
        table.append([env_id, name, num_z, len(results), "/".join(map(str, steps)),
                      avg.mean(), avg.std(), best.mean(), best.std()])
    markdown = ["| env | algorithm | \\|Z\\| | seeds | steps | average | max |", "|---|---|---|---|---|---|---|"]
    for env_id, name, num_z, seeds, steps, am, asd, bm, bsd in table:
        max_cell = "" if num_z == 1 else f"{bm:.1f} ± {bsd:.1f}"  # one policy: max = average
        markdown.append(f"| {env_id} | {name} | {num_z} | {seeds} | {steps} | {am:.1f} ± {asd:.1f} | {max_cell} |")
    text = "\n".join(markdown) + "\n"
    print(text, end="")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_atomically(f"{args.out}.md", lambda f: f.write(text))
    write_atomically(f"{args.out}.csv", lambda f: csv.writer(f).writerows([header, *table]), newline="")
    return f"{args.out}.md and {args.out}.csv"


# ------------------------------------------------------------------------------- M. Ant directions
def read_eval(path: str) -> dict:
    """The latest eval.json of a run directory (or the file itself)."""
    if os.path.isdir(path):
        files = glob.glob(os.path.join(path, "eval*.json"))
        if not files:
            raise PlotError(f"{path} holds no eval.json (the run has not finished)")
        results = [json.load(open(f)) for f in files]
        return max(results, key=lambda r: r["global_step"])
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise PlotError(f"cannot read {path} ({error})") from None


def figure_ant(args) -> str:
    runs = [read_eval(p) for p in args.runs]
    sacs = {r["seed"]: r for r in (read_eval(p) for p in args.sac)}
    for r in [*runs, *sacs.values()]:
        if "path" not in r["per_z"][0]:
            raise PlotError(f"the eval.json of {r['algorithm']} seed {r['seed']} on {r['env_id']} has no torso paths "
                            "(only MultiDirectionAnt-v0 runs record them)")
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5.2), squeeze=False)
    for ax, run in zip(axes[0], runs):
        sac = sacs.get(run["seed"]) or next(iter(sacs.values()), None)
        drawn = [("black", "SAC", sac["per_z"][0])] if sac else []
        drawn += [(Z_COLOURS[e["z"] % len(Z_COLOURS)], f"z = {e['z']}", e) for e in run["per_z"]]
        reach = 1.0
        for colour, label, entry in drawn:
            path = np.asarray(entry["path"])
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=1.8, label=f"{label}: {entry['mean_heading']:.0f}°")
            length = float(np.mean(np.linalg.norm(entry["displacements"], axis=1)))
            angle = math.radians(entry["mean_heading"])
            ax.annotate("", xy=(path[0, 0] + length * math.cos(angle), path[0, 1] + length * math.sin(angle)),
                        xytext=tuple(path[0]), arrowprops=dict(arrowstyle="->", color=colour, lw=1.2, ls="--"))
            reach = max(reach, np.abs(path).max(), length)
        ax.plot(0, 0, "o", color="gray", ms=5)
        ax.set(xlim=(-1.1 * reach, 1.1 * reach), ylim=(-1.1 * reach, 1.1 * reach), aspect="equal", xlabel="x",
               ylabel="y", title=f"{run['algorithm']}{' (separate)' if run.get('separate_networks') else ''}, "
                                 f"seed {run['seed']}, {run['global_step']} steps\n"
                                 f"{run.get('quadrants', '?')} of 4 quadrants, smallest gap "
                                 f"{run.get('min_heading_gap') or 0:.0f}°")
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", title="deterministic path, mean heading", title_fontsize=8)
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
    fig, axes = plt.subplots(len(args.runs), 3, figsize=(16, 3.6 * len(args.runs)), squeeze=False)
    for row, run_dir in zip(axes, args.runs):
        name = os.path.basename(os.path.normpath(run_dir))
        steps, headings, speeds = buffer_headings(os.path.join(run_dir, "checkpoint.pt"), args.window)
        members = headings.shape[1]
        colours = ["black"] if members == 1 else [Z_COLOURS[k % len(Z_COLOURS)] for k in range(members)]
        tags = ["charts/episodic_return"] if members == 1 else [f"charts/episodic_return_z{k}" for k in range(members)]
        for k, (tag, colour) in enumerate(zip(tags, colours)):
            x, y = read_scalars(run_dir, tag)
            smooth = np.convolve(y, np.ones(args.smooth) / args.smooth, mode="valid") if len(y) >= args.smooth else y
            row[0].plot(x[len(x) - len(smooth):] / members, smooth, color=colour, lw=1.2,
                        label="SAC" if members == 1 else f"z = {k}")
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter  # every option's --help shows its default
    p1 = sub.add_parser("fig1", help="Multigoal paths and Q contours (from --save-model files)", formatter_class=defaults)
    p1.add_argument("--sac", required=True, help="sac_continuous.pt of a SAC run on MultiGoal-v0 / MultiGoalTwo-v0")
    p1.add_argument("--mede", required=True, help="mede_continuous.pt of a MEDE run on the same env")
    p1.add_argument("--z", type=int, default=0, help="the MEDE policy whose Q_z is drawn (0 is blue)")
    p1.add_argument("--states", type=three_states, help="the three states of the contour rows, e.g. "
                    "--states='0,0 2,2 -2,2' (default: the origin, the third state of z's deterministic path, "
                    "and (-2, 2))")
    p1.add_argument("--episodes", type=int, default=10, help="stochastic episodes drawn per policy")
    p1.add_argument("--resolution", type=int, default=61, help="grid points per action dimension")
    p1.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    p1.add_argument("--out", default="docs/figure1.png", help="output PNG")
    p6 = sub.add_parser("ant-training", help="M. Ant over training: returns, discriminator accuracy, headings per z",
                        formatter_class=defaults)
    p6.add_argument("--runs", nargs="+", required=True, help="run directories (with checkpoint.pt and TensorBoard logs)")
    p6.add_argument("--window", type=int, default=5000, help="steps per agent in one heading window")
    p6.add_argument("--smooth", type=int, default=10, help="episodes in the return's moving average")
    p6.add_argument("--min-speed", type=float, default=0.1, help="windows slower than this (m/s) get no heading dot")
    p6.add_argument("--out", default="docs/ant_training.png", help="output PNG")
    p5 = sub.add_parser("goals", help="how often each Multigoal policy reaches each goal (from a --save-model file)",
                        formatter_class=defaults)
    p5.add_argument("model", help="sac_continuous.pt or mede_continuous.pt of a Multigoal run")
    p5.add_argument("--episodes", type=int, default=100, help="episodes per policy")
    p5.add_argument("--deterministic", action="store_true", help="the mean action instead of sampling")
    p5.add_argument("--seed", type=int, default=0, help="seed of the first episode's start (then +1, +2, ...)")
    p2 = sub.add_parser("fig2", help="discriminability curves, MEDE against DIAYN (from TensorBoard logs)",
                        formatter_class=defaults)
    p2.add_argument("--mede", nargs="*", default=[], help="MEDE run directories (one per seed)")
    p2.add_argument("--diayn", nargs="*", default=[], help="DIAYN run directories, the paper's beta = 1")
    p2.add_argument("--diayn-matched", nargs="*", default=[],
                    help="DIAYN run directories with MEDE's diversity weight (--disc-coef 0.3 at alpha 0.3)")
    p2.add_argument("--measure", choices=list(MEASURES), default="held-out",
                    help="held-out: fresh transitions no discriminator trained on; replay: the paper's replay batches")
    p2.add_argument("--points", type=int, default=200, help="points of the common step grid")
    p2.add_argument("--title", help="figure title")
    p2.add_argument("--out", default="docs/figure2.png", help="output PNG")
    p3 = sub.add_parser("table1", help="average and max return per algorithm (from eval.json files)",
                        formatter_class=defaults)
    p3.add_argument("eval_files", nargs="+", help="eval.json files (shell globs are expanded)")
    p3.add_argument("--out", default="docs/table1", help="output path without extension (.md and .csv)")
    p4 = sub.add_parser("ant", help="M. Ant torso paths and headings per z (from eval.json)", formatter_class=defaults)
    p4.add_argument("--runs", nargs="+", required=True, help="MEDE or DIAYN run directories (or eval.json), one panel each")
    p4.add_argument("--sac", nargs="*", default=[], help="SAC run directories, drawn in black (the same seed's if any)")
    p4.add_argument("--title", help="figure title")
    p4.add_argument("--out", default="docs/ant_directions.png", help="output PNG")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    return {"fig1": figure1, "fig2": figure2, "table1": table1, "ant": figure_ant, "goals": goal_counts,
            "ant-training": figure_ant_training}[args.command](args)


if __name__ == "__main__":
    try:
        print(f"wrote {main()}")
    except PlotError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        sys.exit(2)
