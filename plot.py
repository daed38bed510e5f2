"""The paper's figures and tables, from what the runs write: the run directories and model files of
the three scripts, or of your copies of them (`cp mede_continuous.py my_mede.py`).

    python plot.py fig1 --mede RUN_DIR [--sac RUN_DIR]    (or their model files, RUN/{exp_name}.pt)
    python plot.py fig2 --runs 'runs/Hopper-v4__mede_continuous__*' --runs 'runs/Hopper-v4__my_mede__*'
    python plot.py table1 'runs/*/eval*.json' [--step 300000]

fig1                 Multigoal paths of every z of a MEDE-shaped run (one colour each) and, with --sac, of a
                     one-policy run (black), goals as red dots with their compass names; below, contours over
                     the action space at three states of Q_z (one z) and, with --sac, of Q_soft and
                     S_z = Q_soft - Q_z (Theorem 2). From runs made with --save-model.
fig2                 Mean ± std over seeds of log q(z|s,a) and log q(z|s) of the true z, one series per --runs
                     (the held-out measure by default, the probe, or the replay batches), chance log(1/|Z|),
                     on one environment. A --runs is split where Table 1 would not pool its runs. --table
                     writes the figure in numbers, each seed's last value and the paper's three words
                     ("immediately", "500 iterations", "more robust to seed") read against the first --runs.
table1               Average and max return, mean ± std over seeds, from eval.json files: each run's latest,
                     or its evaluation at --step. Runs whose settings differ are never pooled: a row per
                     script, experiment name and setting.

The tools of our own studies (goals, goal-table, goals-over-training, ant, ant-training) are in
plot_studies.py and run from here too: `python plot.py goal-table --help`.

Every series is labelled by its experiment name (the run's --exp-name, by default its script's
name) unless --label says otherwise, and counts its distinct seeds. Quoted patterns (with ~) are
expanded here. Figures go to plots/ unless --out says where. Bad input is one line on stderr, exit code 2.
"""

import argparse
import math
import os
import shlex
import sys
from collections import Counter, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import plot_runs  # noqa: E402
import plot_studies  # noqa: E402
from plot_runs import Z_COLOURS, latent  # noqa: E402
from run_utils.cli import BAD_INPUT, UsageError  # noqa: E402

SERIES_COLOURS = ["tab:blue", "tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
STATE_COLOURS = ["gold", "hotpink", "saddlebrown"]  # the paper's yellow, pink and brown dots
MEASURES = {"held-out": ("measure/", "held-out measure", "held-out transitions"),
            "replay": ("charts/", "replay measure", "replay batches, as in the paper"),
            "probe": ("measure/probe_", "the probe", "fresh classifiers, held-out transitions")}


# ------------------------------------------------------------------------------------ Figure 1
def model_file(path: str) -> str:
    """A model file, or a run directory's: {exp_name}.pt, which --save-model writes."""
    path = os.path.expanduser(path)
    if not os.path.isdir(path):
        return path
    run = plot_runs.run_record(path)
    model = os.path.join(path, f"{run['exp_name']}.pt")
    if os.path.exists(model):
        return model
    if not os.path.exists(os.path.join(path, "checkpoint.pt")):
        raise UsageError(f"{path} was made without --save-model and kept no checkpoint.pt, so it has no model file "
                         f"{run['exp_name']}.pt: run it again with --save-model")
    script = plot_runs.script_path(path) or os.path.join(plot_runs.REPO, f"{run['script']}.py")
    command = shlex.join([sys.executable, script, "--resume", path, "--save-model"])
    raise UsageError(f"{path} was made without --save-model, so it has no model file {run['exp_name']}.pt; "
                     f"write it from the run's checkpoint with: {command}")


def models(args):
    """(SAC's (agent, args) or None, MEDE's (agent, args)) of fig1, of the shapes it needs, on one env."""
    mede = plot_runs.load_agent(model_file(args.mede))[:2]
    if not latent(mede[1]):
        raise UsageError(f"--mede needs a model of a script with |Z| policies (mede_continuous.py, "
                         f"diayn_continuous.py or a copy); {args.mede} has one policy")
    if not 0 <= args.z < mede[1].num_z:
        raise UsageError(f"--z must be in [0, {mede[1].num_z - 1}]")
    if args.sac is None:
        return None, mede
    sac = plot_runs.load_agent(model_file(args.sac))[:2]
    if latent(sac[1]):
        raise UsageError(f"--sac needs a model of a one-policy script (sac_continuous.py or a copy); {args.sac} "
                         f"has |Z| = {sac[1].num_z}")
    if sac[1].env_id != mede[1].env_id:
        raise UsageError(f"fig1 needs two models of the same env (got {sac[1].env_id} and {mede[1].env_id})")
    return sac, mede


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


def policy_paths(agent, args, colours, episodes: int, seed: int) -> list:
    """[(colour, (stochastic paths, [deterministic path]))], one per policy."""
    return [(colour, (rollouts(lambda s, z=z: agent.policy(s, z, False), args.env_id, episodes, seed),
                      rollouts(lambda s, z=z: agent.policy(s, z, True), args.env_id, 1, seed)))
            for z, colour in enumerate(colours)]


def q_function(agent, args):
    """q(state, z, actions [N, 2]) -> min_j Q_j(s, a, z) [N] of a loaded agent (z ignored with one policy)."""
    import torch

    def q_values(state, z, actions):
        n = len(actions)
        with torch.no_grad():
            if not latent(args):
                obs = torch.tensor(state, dtype=torch.float32).view(1, 2).expand(n, 2)
                return agent.qf(obs, actions).min(0).values.numpy()
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


def draw_legend(ax, sac_label, mede_label, mede_paths) -> None:
    ax.axis("off")
    handles = [plt.Line2D([], [], color="black", lw=2, label=sac_label)] if sac_label else []
    handles += [plt.Line2D([], [], color=colour, lw=2, label=f"{mede_label} z = {z}")
                for z, (colour, _) in enumerate(mede_paths)]
    handles += [plt.Line2D([], [], color="red", marker="o", ls="", label="goal")]
    handles += [plt.Line2D([], [], color=c, marker="o", mec="black", ls="", label=f"state {i + 1}")
                for i, c in enumerate(STATE_COLOURS)]
    ax.legend(handles=handles, loc="center", frameon=False,
              title="thick: deterministic policy\nthin: stochastic policy")


def draw_contours(fig, grid, states, panels, resolution: int, z: int) -> None:
    """A row per state: a panel per (name, q(state, actions) -> values [N], framed in z's colour?), over the
    action square."""
    import torch

    grid_1d = np.linspace(-1, 1, resolution)
    ax_x, ax_y = np.meshgrid(grid_1d, grid_1d)
    actions = torch.as_tensor(np.stack([ax_x.ravel(), ax_y.ravel()], -1), dtype=torch.float32)
    for row, (state, dot) in enumerate(zip(states, STATE_COLOURS)):
        for col, (name, q, own_z) in enumerate(panels):
            ax, values = fig.add_subplot(grid[row + 1, col]), q(state, actions).reshape(ax_x.shape)
            filled = ax.contourf(ax_x, ax_y, values, levels=15, cmap="viridis")
            ax.contour(ax_x, ax_y, values, levels=15, colors="k", linewidths=0.3)
            fig.colorbar(filled, ax=ax, fraction=0.046, pad=0.04)
            ax.set(aspect="equal", xlabel="action x", ylabel="action y",
                   title=f"{name}\nstate {row + 1}: ({state[0]:.1f}, {state[1]:.1f})")
            ax.title.set_fontsize(9)
            for spine in ax.spines.values():
                spine.set_edgecolor(Z_COLOURS[z % len(Z_COLOURS)] if own_z else dot)
                spine.set_linewidth(2.5 if own_z else 1.5)


def figure1(args) -> str:
    import torch

    sac, (mede_agent, mede_args) = models(args)
    env_id, z = mede_args.env_id, args.z
    env = plot_runs.multigoal(env_id)
    mede_label = args.mede_label or mede_args.exp_name
    sac_label = sac and (args.sac_label or sac[1].exp_name)
    torch.manual_seed(args.seed)  # the stochastic policies' noise
    sac_paths = sac and policy_paths(sac[0], sac[1], ["black"], args.episodes, args.seed)
    z_colours = [Z_COLOURS[k % len(Z_COLOURS)] for k in range(mede_args.num_z)]
    mede_paths = policy_paths(mede_agent, mede_args, z_colours, args.episodes, args.seed)
    states = args.states or [(0.0, 0.0), tuple(mede_paths[z][1][1][0][2]), (-2.0, 2.0)]
    mede_q = q_function(mede_agent, mede_args)
    panels = [(rf"$Q_z$ ({mede_label}, z = {z})", lambda s, a: mede_q(s, z, a), True)]
    if sac:
        sac_q = q_function(*sac)
        panels = [(rf"$Q_{{soft}}$ ({sac_label})", lambda s, a: sac_q(s, 0, a), False), *panels,
                  (r"$S_z = Q_{soft} - Q_z$", lambda s, a: sac_q(s, 0, a) - mede_q(s, z, a), False)]
    columns = 3 if sac else 2
    fig = plt.figure(figsize=(4 * columns, 14))
    grid = fig.add_gridspec(4, columns, height_ratios=[1.1, 1, 1, 1], hspace=0.45, wspace=0.35)
    top = [fig.add_subplot(grid[0, col]) for col in range(columns)]
    if sac:
        draw_paths(top[0], env, sac_paths, states, sac_label)
    draw_paths(top[-2], env, mede_paths, states, f"{mede_label}, |Z| = {mede_args.num_z}")
    draw_legend(top[-1], sac_label, mede_label, mede_paths)
    draw_contours(fig, grid, states, panels, args.resolution, z)
    what = "soft Q-values" if sac else f"{mede_label}'s Q_z alone (Q_soft and S_z need --sac)"
    fig.suptitle(f"Figure 1 on {env_id}: paths (top); {what} over the action space at the three marked states "
                 "(below)", fontsize=12, y=0.93)
    return plot_runs.save(fig, args.out)


# ------------------------------------------------------------------------------------ Figure 2
def run_groups(groups: list[list[str]]) -> list[list[dict]]:
    """The runs of every --runs, of one environment and one |Z|: a figure of several is refused."""
    found = [[plot_runs.run_record(run_dir) for run_dir in plot_runs.expand(group)] for group in groups]
    runs = [run for group in found for run in group]
    envs = sorted({run["env_id"] for run in runs})
    if len(envs) > 1:
        raise UsageError(f"the runs are on {len(envs)} environments ({', '.join(envs)}); Figure 2 draws one at a "
                         "time: give the runs of one of them (their directories' names hold the environment)")
    num_z = sorted({run["num_z"] for run in runs})
    if len(num_z) > 1:
        raise UsageError(f"the runs have different |Z| ({num_z}); plot one |Z| at a time")
    return found


def budget(run: dict) -> int:
    """A run's --total-timesteps (a run still training is pooled with its seeds by its budget, not its
    progress); the step of its evaluation where its settings were not recorded."""
    return (run.get("config") or {}).get("total_timesteps", run["global_step"])


def series_of(groups: list[list[str]], labels: list[str]) -> list[tuple[str, list[dict]]]:
    """Labelled series of runs: each group of run directories (one --runs) is split as Table 1 splits
    runs (script, experiment name, budget, and the flags whose values differ between its runs); a group's
    --label names it (then it must not split)."""
    if len(labels) > len(groups):
        raise UsageError(f"{len(labels)} --label for {len(groups)} --runs: give one label per --runs")
    series = []
    for i, group in enumerate(run_groups(groups)):
        family = lambda run: (run["script"], run["exp_name"])  # noqa: E731
        flags, split = plot_runs.differing_flags(group, family), defaultdict(list)
        for run in group:
            setting = plot_runs.setting_label(run, flags.get(family(run), []))
            split[run["script"], run["exp_name"] + setting, budget(run)].append(run)
        if i < len(labels) and len(split) > 1:
            kinds = "; ".join(f"{name}, {steps} steps" for _, name, steps in split)
            raise UsageError(f"--label {labels[i]!r} names a --runs of several experiments or settings ({kinds}), "
                             "which Table 1 would not pool: give each its own --runs")
        series += [(labels[i] if i < len(labels) else name, runs, script) for (script, name, _), runs in split.items()]
    names = Counter(name for name, _ in {(name, script) for name, _, script in series})  # one name, two scripts
    return [(f"{name} [{script}]" if names[name] > 1 else name, runs) for name, runs, script in series]


def figure2(args) -> str:
    series = series_of(args.runs, args.label)
    env_id, num_z = series[0][1][0]["env_id"], series[0][1][0]["num_z"]
    chance = math.log(1 / num_z)
    labels = [f"{name} ({plot_runs.seeds_label(runs)}, {budget(runs[0])} steps)" for name, runs in series]
    prefix, measure, measured_on = MEASURES[args.measure]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, tag, label in zip(axes, (f"{prefix}log_q_z_given_sa", f"{prefix}log_q_z_given_s"),
                              (r"$\log q(z\,|\,s, a)$", r"$\log q(z\,|\,s)$")):
        for i, (_, runs) in enumerate(series):
            steps, mean, std = plot_runs.mean_std_over_runs(runs, tag, args.points)
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            ax.plot(steps, mean, color=colour, label=labels[i])
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
        ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance, log(1/|Z|) = {chance:.2f}")
        ax.set(title=f"{label} of the true z", xlabel="environment steps",
               ylabel=f"{measure}: mean log-probability\non {measured_on}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(args.title or f"Figure 2 on {env_id}, |Z| = {num_z}: discriminability of the policies, {measure} "
                 f"({measured_on}), mean ± std over seeds")
    fig.tight_layout()
    out = plot_runs.save(fig, args.out)
    if args.table:
        plot_runs.write_text(args.table, figure2_table(series, labels, prefix, f"{env_id}, |Z| = {num_z}, {measure} "
                                                       f"({measured_on})", chance))
    return out


def standard_error(a: np.ndarray, b: np.ndarray) -> float:
    """The standard error of the difference of two means over seeds (0 for a series of one seed)."""
    return math.sqrt(sum(x.var(ddof=1) / len(x) for x in (a, b) if len(x) > 1))


def figure2_table(series, labels: list[str], prefix: str, what: str, chance: float) -> str:
    """Figure 2 in numbers (Markdown): each series' mean ± std over seeds (ddof 0, as the figure's band) at every measure step, each
    seed's value at the last step, and the paper's three words read against the first series (MEDE):
    the first step it is ahead by more than the standard error of the difference ("immediately"), whether
    the other's mean then reaches its mean ("500 iterations"), and the spread over seeds ("more robust to
    seed")."""
    first = series[0][0]
    # a measure before the first update scores untrained networks: not a step of the verdicts
    first_update = max((run.get("config") or {}).get("learning_starts", 0) for _, runs in series for run in runs)
    text = [f"Figure 2 in numbers: {what}; the log-probability of the true z, mean ± std over seeds "
            f"(chance {chance:.3f}).", ""]
    verdicts = [f"{first} is ahead where its mean exceeds the other's by more than the standard error of the "
                f"difference; the other closes the gap where its mean reaches {first}'s after that. Steps up to the "
                f"first update (--learning-starts {first_update}) do not count.", "",
                f"| compared with | discriminator | {first} ahead first at | {first} ahead at | other closes the gap "
                f"at | difference at the last step | std over seeds at the last step ({first} / other) |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
    for tag, name in ((f"{prefix}log_q_z_given_sa", r"log q(z\|s,a)"), (f"{prefix}log_q_z_given_s", r"log q(z\|s)")):
        measured = [plot_runs.at_measure_steps(runs, tag) for _, runs in series]
        steps = sorted(set().union(*(s for s, _ in measured)))
        text += [f"{name}:", "", "| step | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(series)]
        for step in steps:
            cells = [f"{v[:, s.index(step)].mean():.3f} ± {v[:, s.index(step)].std():.3f}" if step in s else "–"
                     for s, v in measured]
            text.append(f"| {step} | " + " | ".join(cells) + " |")
        text.append("| each seed, at the last step | " + " | ".join(
            f"at {s[-1]}: " + ", ".join(f"s{run['seed']} {v[i, -1]:.3f}" for i, run in enumerate(runs)) if s else "–"
            for (s, v), (_, runs) in zip(measured, series)) + " |")
        text.append("")
        (ref_steps, ref), mean = measured[0], lambda s, v, step: v[:, s.index(step)].mean()
        for (other, _), (other_steps, values) in zip(series[1:], measured[1:]):
            common = [step for step in ref_steps if step in other_steps and step > first_update]
            if not common:
                continue
            ahead = [step for step in common if mean(ref_steps, ref, step) - mean(other_steps, values, step)
                     > standard_error(ref[:, ref_steps.index(step)], values[:, other_steps.index(step)])]
            closed = next((step for step in common if ahead and step > ahead[0]
                           and mean(other_steps, values, step) >= mean(ref_steps, ref, step)), None)
            last = common[-1]
            verdicts.append(
                f"| {other} | {name} | {ahead[0] if ahead else 'never'} | {len(ahead)} of {len(common)} steps | "
                f"{closed if closed else 'not within ' + str(last) if ahead else '– (never behind)'} | "
                f"{mean(ref_steps, ref, last) - mean(other_steps, values, last):+.3f} at {last} | "
                f"{ref[:, ref_steps.index(last)].std():.3f} / {values[:, other_steps.index(last)].std():.3f} |")
    return "\n".join(text + [f"The paper's three words, read against {first}:", ""] + verdicts) + "\n"


# ------------------------------------------------------------------------------------- Table 1
def table1(args) -> str:
    rows = plot_runs.rows(plot_runs.evaluations(args.eval_files, args.step))
    header = ["env", "algorithm", "|Z|", "seeds", "steps", "avg mean", "avg std", "max mean", "max std"]
    table = []
    for (env_id, name, num_z, steps, _), group in rows.items():
        avg, best = np.array([r["avg"] for r in group]), np.array([r["max"] for r in group])
        table.append([env_id, name, num_z, plot_runs.seeds_label(group), steps, avg.mean(), avg.std(), best.mean(),
                      best.std()])
    markdown = ["| env | algorithm | \\|Z\\| | seeds | steps | average | max |", "|---|---|---|---|---|---|---|"]
    for env_id, name, num_z, seeds, steps, am, asd, bm, bsd in table:
        max_cell = "" if num_z == 1 else f"{bm:.1f} ± {bsd:.1f}"  # one policy: max = average
        markdown.append(f"| {env_id} | {name} | {num_z} | {seeds} | {steps} | {am:.1f} ± {asd:.1f} | {max_cell} |")
    text = "\n".join(markdown) + "\n"
    print(text, end="")
    out = plot_runs.output(args.out, "")
    plot_runs.write_text(f"{out}.md", text)
    plot_runs.write_csv(f"{out}.csv", [header, *table])
    return f"{out}.md and {out}.csv"


# ----------------------------------------------------------------------------- command line
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
        sys.exit(BAD_INPUT)


class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's --help shows its default, unless its help already says it or there is none."""

    def _get_help_string(self, action):
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_figure1(sub) -> None:
    p = sub.add_parser("fig1", help="Multigoal paths and Q contours (from runs made with --save-model)",
                       formatter_class=ShowDefaults)
    p.add_argument("--mede", required=True, help="run directory (or its model file) of a run with |Z| policies "
                   "(mede_continuous.py, diayn_continuous.py or a copy) on a Multigoal env")
    p.add_argument("--sac", help="run directory (or its model file) of a one-policy run (sac_continuous.py or a "
                   "copy) on the same env (default: none; then no Q_soft and no S_z)")
    p.add_argument("--sac-label", help="name of the one-policy run (default: its experiment name)")
    p.add_argument("--mede-label", help="name of the |Z|-policy run (default: its experiment name)")
    p.add_argument("--z", type=int, default=0, help="the policy whose Q_z is drawn (0 is blue)")
    p.add_argument("--states", type=three_states, help="the three states of the contour rows, e.g. "
                   "--states='0,0 2,2 -2,2' (default: the origin, the third state of z's deterministic path, "
                   "and (-2, 2))")
    p.add_argument("--episodes", type=int, default=10, help="stochastic episodes drawn per policy")
    p.add_argument("--resolution", type=int, default=61, help="grid points per action dimension")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    p.add_argument("--out", default="plots/figure1.png", help="output PNG")


def add_figure2(sub) -> None:
    p = sub.add_parser("fig2", help="discriminability curves over training, one series per --runs (TensorBoard "
                       "logs)", formatter_class=ShowDefaults)
    p.add_argument("--runs", nargs="+", action="append", required=True, metavar="RUN_DIR",
                   help="run directories (quoted patterns are expanded) of one series; give --runs once per series")
    p.add_argument("--label", action="append", default=[], help="the name of a series, one per --runs, in order "
                   "(default: the runs' experiment name)")
    p.add_argument("--measure", choices=list(MEASURES), default="held-out",
                   help="held-out: fresh transitions no discriminator trained on; replay: the paper's replay batches; "
                        "probe: fresh classifiers that no algorithm trains against, on held-out transitions")
    p.add_argument("--points", type=int, default=200, help="points of the common step grid")
    p.add_argument("--title", help="figure title")
    p.add_argument("--out", default="plots/figure2.png", help="output PNG")
    p.add_argument("--table", metavar="FILE.md", help="also write the figure in numbers (Markdown): mean ± std at "
                   "every measure step, each seed's last value, and the paper's three words read against the first "
                   "--runs (the first step it is ahead; whether each other series closes the gap; spread over seeds)")


def add_table1(sub) -> None:
    p = sub.add_parser("table1", help="average and max return (from eval.json files)", formatter_class=ShowDefaults)
    p.add_argument("eval_files", nargs="+", help="eval.json files or run directories (quoted patterns are expanded)")
    p.add_argument("--step", type=int, help="each run's evaluation at this step, from its eval.json or "
                   "eval.step{STEP}.json; runs without one are left out, with a note (default: each run's latest)")
    p.add_argument("--out", default="plots/table1", help="output path without extension (.md and .csv)")


def parse_args(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_figure1(sub)
    add_figure2(sub)
    add_table1(sub)
    plot_studies.add_commands(sub, ShowDefaults)
    return parser.parse_args(argv)


COMMANDS = {"fig1": figure1, "fig2": figure2, "table1": table1, **plot_studies.COMMANDS}


def main(argv=None) -> str:
    args = parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    try:
        print(f"wrote {main()}")
    except UsageError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        sys.exit(BAD_INPUT)
