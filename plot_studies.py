"""The tools of our own studies, not figures or tables of the paper: Multigoal's goals (per model,
per run, over training) and Multidirection Ant's directions (per run, over training). They run as
subcommands of plot.py, which adds them with `add_commands`:

    python plot.py goals RUN/my_mede.pt
    python plot.py goal-table 'runs/*/eval*.json'
    python plot.py goals-over-training RUN_DIR
    python plot.py ant 'runs/MultiDirectionAnt-v0__*'
    python plot.py ant-training --runs RUN_DIR

goals                How often each policy of a Multigoal model file reaches each goal.
goal-table           Multigoal: the distinct goals of each run's z, of the environment's goals, per seed, and
                     on how many runs the z reach all of them; below, each run's held-out log q(z|s,a) and
                     log q(z|s) at its evaluation's step.
goals-over-training  Multigoal: for every z, the goals its held-out episodes reached, over training.
ant                  M. Ant: every z's torso path, one panel per run (rows: seeds; columns: experiments),
                     all on the same axes in metres, with each z's heading and net speed.
ant-training         M. Ant over training: each z's return, the held-out discriminator accuracy, and each
                     z's heading (from the replay buffer of the checkpoint).
"""

import math
import os
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

import plot_runs
from plot_runs import Z_COLOURS, latent
from run_utils.cli import UsageError

GOAL_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
ANT_VELOCITY = slice(13, 15)  # the torso's (ẋ, ẏ) in MultiDirectionAnt-v0's observation: qpos[2:] (13), then qvel


# ---------------------------------------------------------------------------------- Multigoal
def episodes_of(agent, env, z: int, args) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(the goal index each episode ends at, -1 for none; the states; the actions) of `args.episodes`."""
    goals, states, actions = [], [], []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + episode)
        done, goal = False, -1
        while not done:
            action = agent.policy(obs, z, args.deterministic)
            states.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            done, goal = terminated or truncated, info["goal_index"]
        goals.append(goal)
    return goals, np.array(states), np.array(actions)


def goal_counts(args) -> str:
    """How often each policy reaches each goal over `--episodes` episodes (stochastic by default),
    and, for a model with discriminators, how surely each tells that policy's z from its states and
    actions: the mean of q(z|s) and of q(z|s,a) of the true z along its episodes."""
    import gymnasium as gym
    import torch

    agent, model_args, _ = plot_runs.load_agent(args.model)
    names = plot_runs.multigoal(model_args.env_id).goal_names
    discriminating = latent(model_args) and hasattr(agent, "disc_s") and hasattr(agent, "disc_sa")
    policies = ({f"z = {z}": z for z in range(model_args.num_z)} if latent(model_args)
                else {model_args.exp_name: 0})
    torch.manual_seed(args.seed)  # the policies' action noise
    kind = "deterministic" if args.deterministic else "stochastic"
    columns = [*names, "none", *(["mean q(z\\|s)", "mean q(z\\|s,a)"] if discriminating else [])]
    lines = [f"{args.model}: goals reached in {args.episodes} {kind} episodes per policy",
             "| policy | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    env = gym.make(model_args.env_id)
    for label, z in policies.items():
        goals, states, actions = episodes_of(agent, env, z, args)
        cells = [str(goals.count(g)) for g in [*range(len(names)), -1]]  # none (-1) is the last column
        if discriminating:
            s, a = torch.as_tensor(states, dtype=torch.float32), torch.as_tensor(actions)
            true_z = torch.full((len(s),), z)
            with torch.no_grad():
                cells += [f"{agent.disc_s.log_prob(s, true_z).exp().mean():.2f}",
                          f"{agent.disc_sa.log_prob(torch.cat([s, a], -1), true_z).exp().mean():.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    env.close()
    print("\n".join(lines))
    return "the table above"


def environment_goals(result: dict) -> int:
    """How many goals the run's environment has."""
    if "distinct_goals" not in result:
        raise UsageError(f"{result['dir']} is not a Multigoal run (its eval.json has no goals)")
    return len(result["goal_names"]) if "goal_names" in result else len(plot_runs.multigoal(result["env_id"]).goals)


def measure_at(run_dir: str, tag: str, step: int):
    """A held-out measure's last value at or before `step` in a run's TensorBoard log (a run extended
    later has measures past its earlier evaluations), or None if it has none."""
    try:
        steps, values = plot_runs.read_scalars(run_dir, f"measure/{tag}")
    except UsageError:
        return None
    return values[steps <= step][-1] if (steps <= step).any() else None


def measure_rows(row: str, group: list[dict], seeds: list[int]) -> list[str]:
    """The held-out measure's two lines of a row: each run's value at its evaluation's step, and their mean."""
    lines = []
    for tag, label in (("log_q_z_given_sa", "log q(z\\|s,a)"), ("log_q_z_given_s", "log q(z\\|s)")):
        values = defaultdict(list)
        for r in group:
            if (value := measure_at(r["dir"], tag, r["global_step"])) is not None:
                values[r["seed"]].append(value)
        if values:
            cells = [",".join(f"{v:.2f}" for v in values[s]) if s in values else "" for s in seeds]
            mean = np.mean([v for vs in values.values() for v in vs])
            lines.append(f"| {row} | {label} | " + " | ".join(cells) + f" | {mean:.2f} |")
    return lines


def goal_table(args) -> str:
    """Figure 1's robustness: for every row (as in Table 1), the distinct goals its z reach (each z's
    most common goal over its deterministic evaluation episodes) of the environment's goals, per seed,
    and the runs whose z reach every goal of the environment (one policy reaches one goal: never all
    of several); below, each run's held-out measure (log q(z|s,a), log q(z|s) of the true z) at that
    evaluation's step, when its TensorBoard log has one."""
    rows = plot_runs.rows(plot_runs.evaluations(args.eval_files))
    seeds = sorted({r["seed"] for group in rows.values() for r in group})
    columns = " | ".join(f"seed {s}" for s in seeds)
    markdown = [f"| env | algorithm | \\|Z\\| | steps | {columns} | runs reaching every goal |",
                "|---|---|---|---|" + "---|" * (len(seeds) + 1)]
    measured = []
    for (env_id, name, num_z, steps, _), group in rows.items():
        goals = environment_goals(group[0])
        by_seed = defaultdict(list)
        for r in group:
            by_seed[r["seed"]].append(r["distinct_goals"])
        cells = [",".join(map(str, by_seed[s])) + f" of {goals}" if s in by_seed else "" for s in seeds]
        hits = sum(r["distinct_goals"] >= goals for r in group)
        row = f"{env_id} | {name} | {num_z} | {steps}"
        markdown.append(f"| {row} | " + " | ".join(cells) + f" | {hits} of {len(group)} |")
        measured += measure_rows(row, group, seeds)
    if measured:
        markdown += ["", "The held-out measure at each run's evaluation step (chance: log 1/|Z|; bound: 0):", "",
                     f"| env | algorithm | \\|Z\\| | steps | measure | {columns} | mean |",
                     "|---|---|---|---|---|" + "---|" * (len(seeds) + 1), *measured]
    text = "\n".join(markdown) + "\n"
    print(text, end="")
    out = plot_runs.output(args.out, ".md")
    plot_runs.write_text(out, text)
    return out


def goals_over_training(args) -> str:
    """For every z, the fraction of its held-out episodes that ended at each goal, against the step."""
    run = plot_runs.run_record(os.path.expanduser(args.run))
    if run["num_z"] < 2:
        raise UsageError(f"{args.run} is a one-policy run: goals-over-training needs |Z| policies (MEDE, DIAYN)")
    names = plot_runs.multigoal(run["env_id"]).goal_names
    fig, axes = plt.subplots(run["num_z"], 1, figsize=(9, 1.8 * run["num_z"] + 0.8), sharex=True, squeeze=False)
    why = plot_runs.why_no_measure(run)
    print(f"{run['dir']}: the goal most of each z's held-out episodes reached, at every measure ('-': none)")
    for z, ax in enumerate(axes[:, 0]):
        tags = [*(f"goal{g}" for g in range(len(names))), "none"]
        curves = [plot_runs.read_scalars(run["dir"], f"measure/goal_fraction/z{z}/{tag}", why) for tag in tags]
        steps = curves[0][0]
        fractions = np.stack([values for _, values in curves])  # [goals + 1, steps]
        if z == 0:
            print(f"steps {steps[0]}, {steps[1] if len(steps) > 1 else ''}, ... {steps[-1]}")
        print(f"z = {z}: " + " ".join(([*names, "-"])[i] for i in fractions.argmax(0)))
        ax.stackplot(steps, *fractions, labels=[*names, "none"], alpha=0.85,
                     colors=[GOAL_COLOURS[g % len(GOAL_COLOURS)] for g in range(len(names))] + ["lightgray"])
        ax.set(ylim=(0, 1), ylabel=f"z = {z}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="goal reached", fontsize=8)
    axes[-1, 0].set_xlabel("environment steps")
    fig.suptitle(args.title or f"{run['exp_name']}, seed {run['seed']}, {run['env_id']}: the goals each z's held-out "
                 "episodes reached")
    fig.tight_layout()
    return plot_runs.save(fig, args.out)


# ---------------------------------------------------------------------------- M. Ant directions
def ant_panels(patterns: list[str]) -> dict:
    """{(seed, (script, experiment name)): the run's latest evaluation}, one run per panel."""
    panels = {}
    for result in plot_runs.evaluations(patterns):
        if "path" not in result["per_z"][0]:
            raise UsageError(f"the eval.json of {result['dir']} has no torso paths (only MultiDirectionAnt-v0 runs "
                             "record them)")
        key = (result["seed"], (result["script"], result["exp_name"]))
        if key in panels:
            raise UsageError(f"{panels[key]['dir']} and {result['dir']} are both seed {key[0]} of {key[1][1]}: "
                             "give one of them")
        panels[key] = result
    return panels


def draw_ant_panel(ax, run: dict, title: str, reach: float) -> None:
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
           ylabel="y (m)", title=f"{title}, {run['global_step']} steps\n{running}")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="heading, net speed", title_fontsize=8)


def figure_ant(args) -> str:
    """Rows: seeds; columns: experiments (script and name); every z's deterministic torso path, the same
    axes in metres everywhere."""
    panels = ant_panels(args.runs)
    columns = list(dict.fromkeys(experiment for _, experiment in panels))
    seeds = sorted({seed for seed, _ in panels})
    reach = max(1.0, *(np.abs(np.asarray(e["path"])).max() for r in panels.values() for e in r["per_z"]))
    fig, axes = plt.subplots(len(seeds), len(columns), figsize=(5 * len(columns), 5.2 * len(seeds)), squeeze=False)
    for row, seed in enumerate(seeds):
        for col, column in enumerate(columns):
            if (seed, column) in panels:
                draw_ant_panel(axes[row, col], panels[seed, column], f"{column[1]}, seed {seed}", reach)
            else:
                axes[row, col].axis("off")
    fig.suptitle(args.title or "Multidirection Ant: torso paths of the deterministic policies (arrows: mean heading)")
    fig.tight_layout()
    return plot_runs.save(fig, args.out)


def buffer_headings(checkpoint_path: str, window: int):
    """From a run's checkpoint.pt (its replay buffer holds every step, in order): for every window
    of `window` steps of each agent, the heading (degrees) and speed of the mean torso velocity.
    Returns (steps per agent at the windows' ends, headings [windows, M], speeds [windows, M])."""
    import torch

    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False, mmap=True)
    obs = state["buffer"]["obs"]
    if state["buffer"]["pos"] != state["buffer"]["size"]:  # a full ring buffer: the oldest steps are gone
        raise UsageError(f"{checkpoint_path}: the replay buffer has wrapped around; the headings need every step")
    if obs.dim() == 3 and not state.get("args", {}).get("separate_networks", True):
        raise UsageError(f"{checkpoint_path}: a run with shared networks mixes every z in one buffer column; "
                         "ant-training needs --separate-networks (one agent per column) or SAC")
    obs = obs if obs.dim() == 3 else obs.unsqueeze(1)  # SAC: one agent
    if obs.shape[-1] != 27:
        raise UsageError(f"{checkpoint_path} is not a MultiDirectionAnt-v0 run (observation size {obs.shape[-1]})")
    windows = len(obs) // window
    velocity = obs[: windows * window, :, ANT_VELOCITY].double().view(windows, window, obs.shape[1], 2).mean(1)
    headings = torch.rad2deg(torch.atan2(velocity[..., 1], velocity[..., 0]))
    return np.arange(1, windows + 1) * window, headings.numpy(), velocity.norm(dim=-1).numpy()


def draw_ant_training(row, run_dir: str, args) -> None:
    """One run's row: each z's episodic return, the held-out accuracy of both discriminators, each z's heading."""
    name = os.path.basename(os.path.normpath(run_dir))
    steps, headings, speeds = buffer_headings(os.path.join(run_dir, "checkpoint.pt"), args.window)
    members = headings.shape[1]
    colours = ["black"] if members == 1 else [Z_COLOURS[k % len(Z_COLOURS)] for k in range(members)]
    tags = ["charts/episodic_return"] if members == 1 else [f"charts/episodic_return_z{k}" for k in range(members)]
    for k, (tag, colour) in enumerate(zip(tags, colours)):
        x, y = plot_runs.read_scalars(run_dir, tag)
        smooth = np.convolve(y, np.ones(args.smooth) / args.smooth, mode="valid") if len(y) >= args.smooth else y
        row[0].plot(x[len(x) - len(smooth):] / members, smooth, color=colour, lw=1.2,
                    label="one policy" if members == 1 else f"z = {k}")
    row[0].set(title=f"{name}: episodic return (mean of {args.smooth})", xlabel="steps per agent")
    if members > 1:
        for tag, style in (("measure/accuracy_z_given_sa", "-"), ("measure/accuracy_z_given_s", "--")):
            x, y = plot_runs.read_scalars(run_dir, tag)
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


def figure_ant_training(args) -> str:
    """Per run (a row): each z's episodic return, the held-out accuracy of both discriminators, and
    each z's heading over training (from the replay buffer of its checkpoint)."""
    runs = plot_runs.expand(args.runs)
    fig, axes = plt.subplots(len(runs), 3, figsize=(16, 3.6 * len(runs)), squeeze=False)
    for row, run_dir in zip(axes, runs):
        draw_ant_training(row, run_dir, args)
        for ax in row:
            ax.grid(alpha=0.3)
            ax.title.set_fontsize(9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return plot_runs.save(fig, args.out)


# ----------------------------------------------------------------------------- command line
COMMANDS = {"goals": goal_counts, "goal-table": goal_table, "goals-over-training": goals_over_training,
            "ant": figure_ant, "ant-training": figure_ant_training}


def add_commands(sub, formatter) -> None:
    """The study tools' subcommands, on plot.py's parser."""
    p = sub.add_parser("goal-table", help="Multigoal: distinct goals per seed, a row per experiment (from eval.json), "
                       "and each run's held-out measure", formatter_class=formatter)
    p.add_argument("eval_files", nargs="+", help="eval.json files of Multigoal runs (quoted patterns are expanded)")
    p.add_argument("--out", default="plots/goal_table", help="output path without extension (.md)")
    p = sub.add_parser("goals", help="how often each Multigoal policy reaches each goal (from a --save-model file)",
                       formatter_class=formatter)
    p.add_argument("model", help="model file of a run on a Multigoal env, of any of the scripts or a copy")
    p.add_argument("--episodes", type=int, default=100, help="episodes per policy")
    p.add_argument("--deterministic", action="store_true", help="the mean action instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode's start (then +1, +2, ...)")
    p = sub.add_parser("goals-over-training", help="Multigoal: the goals each z's held-out episodes reached, over "
                       "training", formatter_class=formatter)
    p.add_argument("run", help="run directory of a MEDE or DIAYN run (or a copy) on a Multigoal env")
    p.add_argument("--title", help="figure title")
    p.add_argument("--out", default="plots/goals_over_training.png", help="output PNG")
    p = sub.add_parser("ant", help="M. Ant torso paths per z, rows seeds, columns experiments (from eval.json)",
                       formatter_class=formatter)
    p.add_argument("runs", nargs="+", help="run directories or eval.json files (quoted patterns are expanded)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--out", default="plots/ant_directions.png", help="output PNG")
    p = sub.add_parser("ant-training", help="M. Ant over training: returns, discriminator accuracy, headings per z",
                       formatter_class=formatter)
    p.add_argument("--runs", nargs="+", required=True, help="run directories (with checkpoint.pt and TensorBoard logs)")
    p.add_argument("--window", type=int, default=5000, help="steps per agent in one heading window")
    p.add_argument("--smooth", type=int, default=10, help="episodes in the return's moving average")
    p.add_argument("--min-speed", type=float, default=0.1, help="windows slower than this (m/s) get no heading dot")
    p.add_argument("--out", default="plots/ant_training.png", help="output PNG")
