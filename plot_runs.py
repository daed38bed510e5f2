"""What plot.py (the paper's figures and tables) and plot_studies.py (our studies' tools) both read
and write: runs (their eval.json files, TensorBoard scalars, checkpoint and model file), grouped as
Table 1 groups them, and the figures and tables, written atomically (run_utils.files).

A run is read as a record: its eval.json (or, for a run without one, what its checkpoint says) with
its `dir`, `script`, `exp_name` and `settings` (the flags that define it, and its precision).
Bad input is run_utils.cli.UsageError: one line on stderr, exit code 2.
"""

import csv
import glob
import importlib.util
import io
import json
import os
import sys
from collections import Counter, defaultdict

import numpy as np

from run_utils.cli import UsageError
from run_utils.files import atomic_write

REPO = os.path.dirname(os.path.abspath(__file__))
Z_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
             "tab:cyan", "tab:gray", "gold"]
OUR_SCRIPTS = ("sac_continuous", "mede_continuous", "diayn_continuous")
# Flags that say where and how a run was made, not what it learns: runs are not told apart by them
# (--bf16 is what was asked; the precision the run actually trained in is what counts, and is compared).
BOOKKEEPING = {"bf16", "seed", "exp_name", "run_dir", "resume", "threads", "checkpoint_every", "track",
               "wandb_project_name", "wandb_entity", "capture_video", "save_model", "cuda", "cuda_graphs",
               "compile", "measure_every", "measure_steps", "torch_deterministic"}
OWN_COLUMNS = {"env_id", "num_z", "total_timesteps"}  # they have columns (steps: the run's global step)
EVAL_KEYS = ("env_id", "num_z", "avg", "max", "global_step", "seed")


# ------------------------------------------------- eval.json files from before 2026-12 (until 2027-03-01)
# They record no script, experiment name or flags. Read until 2027-03-01; after that date delete this
# block, its uses (`record`, `setting_label`, the note in `rows`) and the tests that name 2026-12.
LEGACY_SCRIPTS = {"SAC": "sac_continuous", "MEDE": "mede_continuous", "DIAYN": "diayn_continuous"}


def legacy_script(result: dict) -> str:
    return LEGACY_SCRIPTS.get(result.get("algorithm"), result.get("algorithm", "?"))


def legacy_label(result: dict) -> str:
    """What such a file says of its settings: separate networks and β."""
    return ((" (separate)" if result.get("separate_networks") else "")
            + (f" β = {result['disc_coef']:g}" if result.get("disc_coef", 1.0) != 1.0 else ""))


# ------------------------------------------------------------------------------- paths and files
def expand(patterns: list[str]) -> list[str]:
    """Paths from patterns (quoted globs, ~ included), in order, each at least once."""
    paths = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        found = sorted(glob.glob(pattern))
        if not found and not os.path.exists(pattern):
            raise UsageError(f"no such file or directory: {pattern}")
        paths += found or [pattern]
    return list(dict.fromkeys(paths))


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path} ({error})") from None


def output(out: str, extension: str) -> str:
    """--out with `extension`, its directory made."""
    out = os.path.expanduser(out)
    out = out if out.endswith(extension) else f"{out}{extension}"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    return out


def save(fig, out: str) -> str:
    """The figure as a PNG at --out, written atomically; returns its path."""
    import matplotlib.pyplot as plt

    out = output(out, ".png")
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return out


def write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_csv(path: str, rows: list[list]) -> None:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    write_text(path, text.getvalue())


# ----------------------------------------------------------------------------------- runs
def settings(result: dict) -> dict | None:
    """The flags that define a run and the precision it trained in; None for a file that records no flags."""
    if "config" not in result:
        return None
    return {**{name: value for name, value in result["config"].items() if name not in BOOKKEEPING},
            "precision": result.get("precision", "float32")}


def record(result: dict, path: str, run_dir: str) -> dict:
    """An eval.json (or what a checkpoint says, in its shape) as a record of its run."""
    script = result.get("script") or legacy_script(result)
    return {**result, "script": script, "exp_name": result.get("exp_name") or script, "settings": settings(result),
            "file": path, "dir": run_dir}


def read_evaluation(path: str) -> dict:
    result = read_json(path)
    if not isinstance(result, dict) or not all(key in result for key in EVAL_KEYS):
        raise UsageError(f"{path} is not an eval.json written by the scripts")
    return record(result, path, os.path.dirname(os.path.abspath(path)))


def rank(evaluation: dict) -> tuple:
    """The latest evaluation of a run ranks highest; at a tie, eval.json, then by name."""
    return evaluation["global_step"], os.path.basename(evaluation["file"]) == "eval.json", evaluation["file"]


def evaluations(patterns: list[str], step: int | None = None) -> list[dict]:
    """One evaluation per run directory among `patterns` (eval.json files or run directories): the
    latest of those named (of a directory: of all its own), or with `step`, the run's evaluation at that
    step (eval.json or eval.step{step}.json); a run without one is left out, with a note on stderr."""
    named = defaultdict(list)
    for path in expand(patterns):
        if os.path.isdir(path):
            named[os.path.abspath(path)] += glob.glob(os.path.join(path, "eval*.json"))
        else:
            named[os.path.dirname(os.path.abspath(path))].append(path)
    chosen = {run_dir: evaluation_of(run_dir, paths, step) for run_dir, paths in named.items()}
    left_out = [run_dir for run_dir, evaluation in chosen.items() if evaluation is None]
    if left_out:
        print(f"note: {len(left_out)} run(s) left out, with no evaluation at step {step}: {', '.join(left_out)}",
              file=sys.stderr)
    if len(left_out) == len(chosen):
        raise UsageError(f"no run has an evaluation at step {step}" if step is not None else "no eval.json files given")
    return [evaluation for evaluation in chosen.values() if evaluation is not None]


def evaluation_of(run_dir: str, paths: list[str], step: int | None = None) -> dict | None:
    """Of a run's evaluation files `paths`, the latest; with `step`, its evaluation at `step` among all of
    the run's files, or None."""
    if step is not None:
        paths = [*paths, *glob.glob(os.path.join(run_dir, "eval*.json"))]
    found = [read_evaluation(path) for path in dict.fromkeys(os.path.abspath(path) for path in paths)]
    found = [evaluation for evaluation in found if step is None or evaluation["global_step"] == step]
    if not found and step is None:
        raise UsageError(f"{run_dir} holds no eval.json (the run has not finished)")
    return max(found, key=rank) if found else None


def run_record(run_dir: str) -> dict:
    """A run directory as a record: its latest evaluation, or for a run without one (still running,
    or interrupted), its checkpoint's arguments and step."""
    if not os.path.isdir(run_dir):
        raise UsageError(f"not a run directory: {run_dir}")
    if files := glob.glob(os.path.join(run_dir, "eval*.json")):
        return evaluation_of(os.path.abspath(run_dir), files)
    path = os.path.join(run_dir, "checkpoint.pt")
    if not os.path.exists(path):
        raise UsageError(f"{run_dir} holds neither eval.json nor checkpoint.pt: not a run directory, or a run that "
                         "wrote nothing yet")
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    saved = state["args"]
    result = {"script": state["script"], "exp_name": saved["exp_name"], "seed": saved["seed"],
              "num_z": saved.get("num_z", 1), "env_id": saved["env_id"], "global_step": state["global_step"],
              "config": saved, "precision": state.get("precision", "float32")}
    return record(result, path, os.path.abspath(run_dir))


def script_path(run_dir: str) -> str | None:
    """Where the script that made a run ran, as its checkpoint says (None without one)."""
    import torch

    path = os.path.join(run_dir, "checkpoint.pt")
    if os.path.exists(path):
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("script_path")
    return None


def differing_flags(records: list[dict], family) -> dict:
    """Per family of runs (`family(record)`), the flags whose values differ between its runs."""
    groups = defaultdict(list)
    for r in records:
        if r["settings"] is not None:
            groups[family(r)].append(r["settings"])
    return {key: sorted({name for s in group for name in s if len({repr(t.get(name)) for t in group}) > 1}
                        - OWN_COLUMNS) for key, group in groups.items()}


def setting_label(r: dict, flags: list[str]) -> str:
    """', alpha=0.3, ...' for the flags that tell this run from others of its family."""
    if r["settings"] is None:
        return legacy_label(r)
    return "".join(f", {flag}={r['settings'][flag]!r}" for flag in flags if flag in r["settings"])


def rows(records: list[dict]) -> dict:
    """Table 1's rows: {(env, label, |Z|, steps, script): [records]}. Runs whose settings differ are
    never pooled: the label names the algorithm, the experiment (and the script of a copy), and every
    flag whose value differs between runs of one env and algorithm."""
    family = lambda r: (r["env_id"], r.get("algorithm"))  # noqa: E731
    flags = differing_flags(records, family)
    unrecorded = sorted(r["dir"] for r in records if r["settings"] is None)
    if unrecorded:
        print(f"note: {len(unrecorded)} eval.json file(s) from before 2026-12 record no settings; they are grouped "
              f"by algorithm, |Z|, separate networks and β only: {', '.join(unrecorded)}", file=sys.stderr)
    grouped = defaultdict(list)
    for r in records:
        name, script, exp_name = r.get("algorithm", "?"), r["script"], r["exp_name"]
        named = [exp_name] if exp_name != script else []
        if script not in OUR_SCRIPTS:  # a copy: its script's name, always
            named.append(f"{script}.py" if named else script)
        name += f" [{', '.join(named)}]" if named else ""
        grouped[r["env_id"], name + setting_label(r, flags.get(family(r), [])), r["num_z"], r["global_step"],
                script].append(r)
    return dict(sorted(grouped.items(), key=lambda row: tuple(map(str, row[0]))))


def seeds_label(runs: list[dict]) -> str:
    """'3 seeds', or '2 seeds; seed 1 twice' when a seed repeats (then said on stderr too)."""
    counts = Counter(run["seed"] for run in runs)
    text = f"{len(counts)} seed{'s' if len(counts) > 1 else ''}"
    twice = [f"seed {seed} {'twice' if n == 2 else f'{n} times'}" for seed, n in sorted(counts.items()) if n > 1]
    if twice:
        print(f"note: {', '.join(twice)} among the runs of one series: {', '.join(run['dir'] for run in runs)}",
              file=sys.stderr)
    return text + ("; " + ", ".join(twice) if twice else "")


# ---------------------------------------------------------------------------- TensorBoard
def read_scalars(run_dir: str, tag: str, why_missing: str = ""):
    """(steps, values) of a scalar of a run's TensorBoard log; one line if the log lacks it."""
    import logging

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A resumed run's log hides what the interrupted run logged after its checkpoint (purge_step);
    # TensorBoard's warning about it ("... a TensorFlow restart") is expected here, not news.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    if tag not in events.Tags()["scalars"]:
        raise UsageError(f"{run_dir} has no '{tag}' in its TensorBoard log{why_missing}")
    points = {e.step: e.value for e in events.Scalars(tag)}  # a resumed run may repeat steps: keep the last
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def mean_std_over_runs(runs: list[dict], tag: str, points: int = 200):
    """Mean and std over runs on a common step grid (each run linearly interpolated)."""
    curves = [read_scalars(run["dir"], tag, why_no_measure(run) if tag.startswith("measure/") else "")
              for run in runs]
    end = min(steps[-1] for steps, _ in curves)
    start = max(steps[0] for steps, _ in curves)
    grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, steps, v) for steps, v in curves])
    return grid, values.mean(0), values.std(0)


def at_measure_steps(runs: list[dict], tag: str) -> tuple[list[int], np.ndarray]:
    """The steps every run of a series measured, and the values there: [runs, steps]."""
    curves = [dict(zip(*read_scalars(run["dir"], tag))) for run in runs]
    steps = sorted(set.intersection(*(set(curve) for curve in curves)))
    return steps, np.array([[curve[step] for step in steps] for curve in curves])


def why_no_measure(run: dict) -> str:
    """Why a run may lack the held-out measure: it ran fewer steps than --measure-every."""
    every = run.get("config", {}).get("measure_every")
    if every == 0:
        return ": it ran with --measure-every 0 (use --measure replay)"
    if every and run["global_step"] < every:
        return (f": it ran {run['global_step']} steps, fewer than --measure-every {every}, the measure's first point "
                "(use --measure replay, or a longer run)")
    return ""


# ------------------------------------------------------------------------------ models and envs
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
            try:
                spec.loader.exec_module(module)
            except ImportError as error:  # e.g. a script from before the run_utils package (2026-12-04)
                del sys.modules[name]
                raise UsageError(f"{model_path} was written by {path}, which cannot be imported next to this "
                                 f"version of the project ({error}): plot it with the code of its date") from None
            return module
    raise UsageError(f"{model_path} was written by {name}.py, which is not at {recorded_path or 'its recorded path'} "
                     f"nor next to plot.py: put it back there")


def load_agent(path: str):
    """(agent, args, module) from a --save-model file or a checkpoint of any of the scripts or of a copy,
    rebuilt by the `load_model` of the script that wrote it."""
    import torch

    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a directory, a truncated or foreign file
        state = None
    if not isinstance(state, dict) or "script" not in state:
        raise UsageError(f"{path} is not a model file (--save-model) or checkpoint of this project's scripts")
    module = import_script(state["script"], state.get("script_path"), path)
    try:
        agent, args = module.load_model(path)
    except getattr(module, "UsageError", UsageError) as error:  # a copy next to another run_utils
        raise UsageError(str(error)) from None
    return agent, args, module


def latent(args) -> bool:
    """A MEDE-shaped run (|Z| policies π(a|s, z)), as opposed to a one-policy run (SAC-shaped)."""
    return hasattr(args, "num_z")


def multigoal(env_id: str):
    """The Multigoal env of `env_id` (its goals, names and threshold), or one line saying it is not one."""
    import gymnasium as gym

    import multigoal_env  # noqa: F401  (registers the ids)

    try:
        env = gym.make(env_id).unwrapped
    except (gym.error.Error, ImportError) as error:
        raise UsageError(f"cannot make {env_id}: {error}") from None
    if not hasattr(env, "goal_names"):
        raise UsageError(f"{env_id} is not a Multigoal environment (it has no goals)")
    return env
