"""The command line of a run: the flags every script has, their checks, and what the process says
and returns when something is wrong. sweep.py and plot.py use its errors and exit codes too.

Bad input is one line on stderr and exit code 2, never a traceback (`main_guard`). `parse_args`
is tyro's, plus `--resume RUN_DIR_OR_CHECKPOINT`: flags not given default to the run's own.
Nothing here imports torch, so that sweep.py starts fast; `--resume` reads its checkpoint lazily.
"""

import contextlib
import ctypes
import dataclasses
import math
import os
import signal
import sys

import gymnasium as gym
import numpy as np

# Exit codes: what happened to a run (sweep.py decides from them whether to try again).
DONE, FAILED, BAD_INPUT, NAN = 0, 1, 2, 3  # interrupted by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)
# Flags that may differ from the checkpoint's when resuming; all others define the run.
RESUMABLE_OVERRIDES = ("total_timesteps", "checkpoint_every", "eval_episodes", "save_model", "capture_video",
                       "track", "wandb_project_name", "wandb_entity", "cuda", "cuda_graphs", "compile", "threads", "resume", "run_dir",
                       "measure_every", "measure_steps")


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


class RunFailed(Exception):
    """The run cannot go on for a reason outside the algorithm (a full disk): one line, exit code 1."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so that no `except Exception` swallows it)."""


@dataclasses.dataclass
class RunArgs:
    """The flags of a run that are not the algorithm's; every script's `Args` adds its own."""

    exp_name: str = "run"
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (python, numpy, torch and the environments)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, use CUDA when it is available; without a GPU the run says so in its first line and uses the CPU"""
    cuda_graphs: bool = True
    """if toggled, on CUDA acting and the update (with its batch's gather from the buffer) run as CUDA graphs,
    captured once and replayed (--no-cuda-graphs: eagerly, the reference; on the CPU always eagerly)"""
    compile: bool = False
    """if toggled, acting and the update go through torch.compile (fused kernels; on CUDA compiled, then captured
    as CUDA graphs, LeanRL's recipe). The numbers differ from eager by the order of fused sums. Off by default:
    slower on a CPU core (0.8x), not yet measured on a GPU (docs/speed.md); the first updates wait for the compiler"""
    threads: int = 1
    """CPU threads of torch; 1 is fastest here whenever anything else runs (docs/speed.md)"""
    bf16: bool = False
    """if toggled, the updates and acting run under bfloat16 autocast where the CPU has AVX512-BF16 or AMX, or on
    CUDA (its speed: docs/speed.md; on an H200 it gained nothing); weights, optimizer states, buffer, losses and
    log-probabilities stay float32. Without native bf16 it says so and runs in float32"""
    track: bool = False
    """if toggled, track the run with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "mede"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the entity (team) of the wandb project"""
    capture_video: bool = False
    """if toggled, save a GIF of one deterministic evaluation episode (of every policy) to {run dir}/videos"""
    save_model: bool = False
    """if toggled, save the trained networks and the arguments to {run dir}/{exp_name}.pt"""
    eval_episodes: int = 10
    """deterministic evaluation episodes (of every policy) after training, written to eval.json; 0 skips it"""
    checkpoint_every: int = 100000
    """write a resumable checkpoint every this many steps (0: only on SIGINT/SIGTERM)"""
    resume: str | None = None
    """a run directory (or its checkpoint.pt) to continue; flags not given are the run's own"""
    run_dir: str | None = None
    """where the run writes (default: runs/{env_id}__{exp_name}__{seed}__{unix time}); must be new or empty"""


@dataclasses.dataclass
class MeasureArgs(RunArgs):
    """The run's flags, and those of the held-out discriminability measure (MEDE and DIAYN, Figure 2)."""

    measure_every: int = 5000
    """every this many environment steps, score fresh transitions of every z with both discriminators (0: never)"""
    measure_steps: int = 1000
    """environment steps of every z in each held-out measurement (--measure-every)"""


def script_name(file: str) -> str:
    """A script's name is its file's: `my_mede.py` names its runs and checkpoints `my_mede`."""
    return os.path.splitext(os.path.basename(file))[0]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def require(args, positive=(), non_negative=(), at_most_one=()) -> None:
    """One clear line for a flag outside its range: the script names its own flags' ranges, the
    run's flags are checked here, and no number may be NaN or infinite."""
    for name, value in dataclasses.asdict(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag(name)} must be a finite number, got {value}")
    positive = [*positive, "threads", *(["measure_steps"] if isinstance(args, MeasureArgs) else [])]
    non_negative = [*non_negative, "eval_episodes", "checkpoint_every",
                    *(["measure_every"] if isinstance(args, MeasureArgs) else [])]
    for name in positive:
        if getattr(args, name) <= 0:
            raise UsageError(f"{flag(name)} must be positive, got {getattr(args, name)}")
    for name in non_negative:
        if getattr(args, name) < 0:
            raise UsageError(f"{flag(name)} must be >= 0, got {getattr(args, name)}")
    for name in at_most_one:
        if getattr(args, name) > 1:
            raise UsageError(f"{flag(name)} must be at most 1, got {getattr(args, name)}")


def require_flat_box_spaces(envs, env_id: str, script: str) -> None:
    """One clear line for an environment the scripts cannot learn on."""
    space = envs.single_action_space
    if not isinstance(space, gym.spaces.Box):
        raise UsageError(f"'{env_id}' has a {type(space).__name__} action space; "
                         f"{script}.py needs a continuous (Box) action space")
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise UsageError(f"'{env_id}' has an unbounded action space ({space}): the policy squashes its actions "
                         "into the bounds with tanh, so they must be finite; wrap the environment in "
                         "gymnasium.wrappers.RescaleAction with the range its actions really take")
    if not isinstance(envs.single_observation_space, gym.spaces.Box) or len(envs.single_observation_space.shape) != 1:
        raise UsageError(f"'{env_id}' needs a flat Box observation space, got {envs.single_observation_space}")


# ------------------------------------------------------------------------- the process
DIE_WITH_PARENT = "MEDE_DIE_WITH_PARENT"  # sweep.py sets it to the PID of the Ray worker that starts the script


def die_with_parent() -> None:
    """Started by sweep.py (MEDE_DIE_WITH_PARENT=<its worker's PID>): ask the kernel (Linux) to kill
    this process when that worker dies, so that a retry of the trial never meets an old script."""
    parent = os.environ.get(DIE_WITH_PARENT)
    if not parent:
        return
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # the worker died before the request: go as it would have made us go
        os.kill(os.getpid(), signal.SIGKILL)


def main_guard(main, args_class, file: str) -> None:
    """Run `main(parse_args(...))` the way every script's `__main__` does: bad input gives one
    line on stderr and exit code 2, never a traceback."""
    die_with_parent()
    try:
        main(parse_args(args_class, file))
    except UsageError as error:
        print(f"{os.path.basename(file)}: error: {error}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except RunFailed as error:
        print(f"{os.path.basename(file)}: error: {error}", file=sys.stderr)
        sys.exit(FAILED)


# ------------------------------------------------------------------------------- arguments
def parse_args(args_class, file: str, argv: list[str] | None = None):
    """Parse the command line. With `--resume PATH` (a run directory or its checkpoint.pt),
    flags not given default to the checkpoint's own arguments, so `--resume PATH` alone
    continues the run as it was."""
    import tyro

    from run_utils import checkpoint  # torch: only where a run is resumed

    argv = list(sys.argv[1:] if argv is None else argv)
    default = args_class()
    for i, token in enumerate(argv):
        if token == "--resume" and i + 1 < len(argv) or token.startswith("--resume="):
            given = argv[i + 1] if token == "--resume" else token.split("=", 1)[1]
            path = checkpoint.checkpoint_path(given)
            saved = checkpoint.read_checkpoint(path, script_name(file), mmap=True)["args"]
            default = args_from(args_class, {**saved, "resume": path}, path, script_name(file))
            if token == "--resume":
                argv[i + 1] = path
            else:
                argv[i] = f"--resume={path}"
    return tyro.cli(args_class, default=default, args=argv)


def args_from(args_class, saved: dict, path: str, script: str):
    """The `Args` a checkpoint or model file was written with; one line if it has flags this script lacks."""
    unknown = sorted(set(saved) - {field.name for field in dataclasses.fields(args_class)})
    if unknown:
        raise UsageError(f"{path} was written by a version of {script}.py with the flags "
                         f"{', '.join(map(flag, unknown))}, which this one does not have")
    return args_class(**saved)


def check_resume(args, saved: dict) -> None:
    """A checkpoint continues only the run that wrote it (its arguments `saved`). A flag newer than
    the checkpoint (absent from its arguments) must keep its default."""
    defaults = dataclasses.asdict(type(args)())
    changed = [name for name, value in dataclasses.asdict(args).items()
               if name not in RESUMABLE_OVERRIDES and saved.get(name, defaults[name]) != value]
    if changed:
        flags = ", ".join(f"{flag(n)} {saved.get(n, defaults[n])!r} (asked: {getattr(args, n)!r})" for n in changed)
        raise UsageError(f"{args.resume} belongs to another run: it was made with {flags}")
