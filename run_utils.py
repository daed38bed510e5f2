"""One training run's life, shared by sac_continuous.py, mede_continuous.py and diayn_continuous.py.

Nothing in this file is an algorithm, and nothing scores a policy (that is evaluation.py): it is
the plumbing around the training loop, the same for every script, kept in one place as CleanRL
keeps its plumbing in `cleanrl_utils`. Copy an algorithm script to change the algorithm
(`cp mede_continuous.py my_mede.py`); the copy uses this module as it is and names its runs and
checkpoints after its own file (`my_mede`).

- `RunArgs`, `MeasureArgs`: the run's own flags (seed, threads, precision, checkpoints, ...);
- `parse_args`: tyro, plus `--resume RUN_DIR_OR_CHECKPOINT` (flags default to the run's own);
- `Run`: one training run, i.e. its directory, TensorBoard writer, seeds, threads and precision,
  the checkpoint (write, resume, SIGINT/SIGTERM), the NaN guard, progress, and what the run
  writes at the end (model file, eval.json, GIFs);
- `load_model`: an agent back from a model file or checkpoint;
- files that are never half-written (`atomic_save`, `atomic_write_json`) or overwritten (`free_path`).
"""

import contextlib
import copy
import ctypes
import dataclasses
import fcntl
import glob
import json
import math
import os
import random
import shlex
import signal
import socket
import sys
import tempfile
import time
import weakref
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import tyro
from torch.utils.tensorboard import SummaryWriter

import evaluation

LOG_EVERY = 100  # updates between two loss logs (the only host syncs of the hot loop)
# Arguments that may differ from the checkpoint's when resuming; all others define the run.
RESUMABLE_OVERRIDES = ("total_timesteps", "checkpoint_every", "eval_episodes", "save_model", "capture_video",
                       "track", "wandb_project_name", "wandb_entity", "cuda", "threads", "resume", "run_dir",
                       "measure_every", "measure_steps")


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
    threads: int = 1
    """CPU threads of torch; 1 is fastest here whenever anything else runs (README: Speed)"""
    bf16: bool = False
    """if toggled, the updates and acting run under bfloat16 autocast (about 2x faster where the CPU has
    AVX512-BF16 or AMX, or on CUDA); weights, optimizer states, buffer, losses and log-probabilities
    stay float32. Without native bf16 it says so and runs in float32"""
    track: bool = False
    """if toggled, track the run with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "mede"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the entity (team) of the wandb project"""
    capture_video: bool = False
    """if toggled, save a GIF of one deterministic evaluation episode (per z) to {run dir}/videos"""
    save_model: bool = False
    """if toggled, save the trained networks and the arguments to {run dir}/{exp_name}.pt"""
    eval_episodes: int = 10
    """deterministic evaluation episodes (per z) after training, written to eval.json; 0 skips it"""
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


EMULATED_BF16 = "MEDE_EMULATED_BF16"  # =1: --bf16 even where bf16 is emulated (very slow; to study its numbers)


# Exit codes: what happened to a run (sweep.py decides from them whether to try again).
DONE, FAILED, BAD_INPUT, NAN = 0, 1, 2, 3  # interrupted by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so that no `except Exception` swallows it)."""


class RunFailed(Exception):
    """The run cannot go on for a reason outside the algorithm (a full disk): one line, exit code 1."""


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
    argv = list(sys.argv[1:] if argv is None else argv)
    default = args_class()
    for i, token in enumerate(argv):
        if token == "--resume" and i + 1 < len(argv) or token.startswith("--resume="):
            given = argv[i + 1] if token == "--resume" else token.split("=", 1)[1]
            path = checkpoint_path(given)
            saved = read_checkpoint(path, script_name(file), mmap=True)["args"]
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


def load_model(path: str, script: str, args_class, agent_class, names, device="cpu"):
    """Rebuild an agent from a `--save-model` file (or a checkpoint) of `script`, with the saved
    weights of the networks `names`, in eval mode. Returns (agent, args)."""
    state = read_checkpoint(path, script)
    args = args_from(args_class, state["args"], path, script)
    agent = agent_class(**state["dims"], args=args, device=torch.device(device))
    saved = renamed(agent, state["agent"])
    for name in names:
        getattr(agent, name).load_state_dict(saved[name])
        getattr(agent, name).eval()
    return agent, args


def renamed(agent, saved: dict) -> dict:
    """A saved agent state under the agent's current names: `agent.RENAMED` maps names that
    older files used (e.g. `disc`) to the current ones, so those files still load."""
    old_names = getattr(agent, "RENAMED", {})
    return {old_names.get(name, name): value for name, value in saved.items()}


def env_dims(envs) -> dict:
    """The sizes and action bounds an agent is built from (saved with the model)."""
    space, action_space = envs.single_observation_space, envs.single_action_space
    return {"obs_dim": space.shape[0], "act_dim": action_space.shape[0], "action_low": action_space.low,
            "action_high": action_space.high}


def checkpoint_path(path: str) -> str:
    """A run directory stands for its checkpoint.pt; anything else must be a checkpoint file."""
    if os.path.isdir(path):
        inside = os.path.join(path, "checkpoint.pt")
        if not os.path.exists(inside):
            if not glob.glob(os.path.join(path, "events.out.tfevents.*")):
                raise UsageError(f"{path} is not a run directory (a run directory holds TensorBoard events and "
                                 "checkpoint.pt): give the directory of one run")
            raise UsageError(f"{path} holds no checkpoint.pt: the run wrote none (it ran with --checkpoint-every 0 "
                             "and was not interrupted), so it cannot be resumed")
        return inside
    if path.endswith(".json"):
        raise UsageError(f"{path} is an evaluation file, not a checkpoint: resume with the run's directory "
                         "or its checkpoint.pt")
    return path


def read_checkpoint(path: str, script: str, mmap: bool = False) -> dict:
    """Load a checkpoint or model file written by `script`; one clear error otherwise. mmap=True
    reads lazily, for a look at its arguments: tensors loaded so stay backed by the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a checkpoint file") from None
    except Exception as error:  # a truncated or foreign file
        raise UsageError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "script" not in state:
        raise UsageError(f"{path} was not written by one of this project's scripts")
    if state["script"] != script:
        raise UsageError(f"{path} was written by {state['script']}.py, not {script}.py")
    return state


def check_resume(args, state: dict) -> None:
    """A checkpoint continues only the run that wrote it. A flag newer than the checkpoint
    (absent from its arguments) must keep its default."""
    saved, defaults = state["args"], dataclasses.asdict(type(args)())
    changed = [name for name, value in dataclasses.asdict(args).items()
               if name not in RESUMABLE_OVERRIDES and saved.get(name, defaults[name]) != value]
    if changed:
        flags = ", ".join(f"{flag(n)} {saved.get(n, defaults[n])!r} (asked: {getattr(args, n)!r})" for n in changed)
        raise UsageError(f"{args.resume} belongs to another run: it was made with {flags}")


# ------------------------------------------------------------------------------------ files
def atomic_write(path: str, write) -> None:
    """`write(file)` into a temporary file with a name of its own next to `path`, flushed to disk,
    then renamed over `path`, and the rename flushed too: `path` is always either the old file or
    the whole new one, also after a crash or a power cut. On any error (a full disk, a signal) the
    temporary file is removed and `path` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # as open() would make it (mkstemp's files are private)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj, path: str) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj, path: str) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def keep_earlier(path: str, step: int, step_of) -> None:
    """Before `path` is written for `step`: if it holds the result of another step (`step_of(path)`),
    move it to `stem.step{that step}.ext`, so that `path` is always the latest and nothing is lost."""
    if os.path.exists(path) and (earlier := step_of(path)) != step:
        stem, ext = os.path.splitext(path)
        os.replace(path, free_path(f"{stem}.step{earlier}{ext}"))


def lock_run_directory(directory: str):
    """An exclusive lock on `directory` for the life of this process (released by the kernel when it
    ends, however it ends), or one line naming the process that holds it."""
    path = os.path.join(directory, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"{directory} is in use by {holder}: one run directory, one writer") from None
    except OSError as error:  # ENOLCK, ENOSYS, EOPNOTSUPP: a file system without flock (some NFS, Lustre)
        os.close(fd)
        raise RunFailed(f"cannot lock {directory} ({error.strerror}): its file system does not support flock; "
                        "run on a local disk, or mount it with flock support") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def evaluated_step(path: str):
    """The step an eval.json was written at."""
    with open(path) as f:
        return json.load(f)["global_step"]


def free_path(path: str) -> str:
    """`path` if nothing is there yet, else `stem.1.ext`, `stem.2.ext`, ...: never overwrite."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{stem}.{n}{ext}"
    return candidate


# --------------------------------------------------------------- environment and RNG state
def find_time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def env_states(envs) -> list:
    """What is needed to continue every sub-env's episode exactly where it is: the simulator
    state (a copy of MuJoCo's whole MjData, or of a pure-Python env's attributes),
    its random generator and the time-limit counter. None where it cannot be captured."""
    from gymnasium.envs.mujoco import MujocoEnv

    states = []
    for env in envs.unwrapped.envs:
        inner, time_limit = env.unwrapped, find_time_limit(env)
        state = {"elapsed_steps": time_limit._elapsed_steps if time_limit else None}
        if isinstance(inner, MujocoEnv):  # all of MjData: Ant's reward reads positions derived from the state
            state.update(mujoco=copy.deepcopy(inner.data), np_random=inner.np_random.bit_generator.state)
        else:
            try:
                state["attributes"] = copy.deepcopy(vars(inner))
            except Exception:
                state = None
        states.append(state)
    return states


def restore_env_states(envs, states: list) -> list:
    """Inverse of `env_states`; returns the indices of the sub-envs that could not be restored."""
    import mujoco

    lost = []
    for i, (env, state) in enumerate(zip(envs.unwrapped.envs, states)):
        if state is None:
            lost.append(i)
            continue
        inner, time_limit = env.unwrapped, find_time_limit(env)
        if "mujoco" in state:
            mujoco.mj_copyData(inner.data, inner.model, state["mujoco"])
            inner.np_random.bit_generator.state = state["np_random"]
        else:
            vars(inner).update(state["attributes"])
        if time_limit is not None:
            time_limit._elapsed_steps = state["elapsed_steps"]
    return lost


def rng_states(device: torch.device) -> dict:
    """Python's, numpy's and torch's random states, and the CUDA state of the run's own GPU only."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict, device: torch.device) -> None:
    """Inverse of `rng_states`. A CUDA state is restored to the run's GPU, and skipped with a note
    when the run now has none (a CUDA run resumed on a CPU)."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" not in states:
        return
    if device.type != "cuda":
        print("note: the checkpoint's CUDA random state is skipped: this run is on the CPU, so its random numbers "
              "from here on differ from those of an uninterrupted CUDA run", file=sys.stderr)
        return
    torch.cuda.set_rng_state(states["cuda"], device)


def all_finite(state) -> bool:
    """Every floating-point tensor in a (nested) state dict is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(value) for value in state)
    return True


def live_state(modules: dict) -> dict:
    """The state of an agent (its `modules()`: networks, optimizers, tensors such as log α), where it lives."""
    return {name: m.detach() if isinstance(m, torch.Tensor) else m.state_dict() for name, m in modules.items()}


def state_of(modules: dict) -> dict:
    """The agent's state copied to the CPU, as files hold it: they load on any machine, GPU or not."""
    return on_cpu(live_state(modules))


def on_cpu(state):
    """A (nested) state with every tensor copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(on_cpu(value) for value in state)
    return state


def load_state(modules: dict, state: dict) -> None:
    for name, module in modules.items():
        if isinstance(module, torch.Tensor):
            with torch.no_grad():
                module.copy_(state[name])
        else:
            module.load_state_dict(state[name])


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively: a CUDA GPU that supports it, or
    a CPU with AVX512-BF16 or AMX. Elsewhere torch emulates them, 10-25 times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "this CPU"


def choose_precision(args, device: torch.device, saved: str | None) -> str:
    """"bfloat16" or "float32": what --bf16 asks for where the device has native bf16 (or
    MEDE_EMULATED_BF16=1 forces it); a resumed run keeps the precision it was trained in."""
    native = native_bf16(device) or os.environ.get(EMULATED_BF16) == "1"
    if saved is not None:
        if saved == "bfloat16" and not native:
            raise UsageError(f"{args.resume} trains in bfloat16, which {cpu_model()} only emulates (10-25x slower): "
                             f"resume it on a CPU with AVX512-BF16 or AMX or on CUDA, or set {EMULATED_BF16}=1")
        return saved
    if args.bf16 and not native:
        where = "this GPU" if device.type == "cuda" else f"this CPU ({cpu_model()}) has neither AVX512-BF16 nor AMX, so it"
        print(f"note: --bf16: {where} would emulate bfloat16, 10-25x slower than float32: running in float32. "
              f"For bf16, use a CPU with avx512_bf16 or amx_bf16 among the flags of lscpu, or CUDA "
              f"({EMULATED_BF16}=1 forces the emulation, to study its numbers)", file=sys.stderr)
    return "bfloat16" if args.bf16 and native else "float32"


def keep_freed_memory() -> None:
    """Speed: glibc hands freed blocks over 128 kB back to the OS, so every update would
    page-fault its activations in again (10-15% of an update here). Keep them (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve blocks up to 32 MB from the heap
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: do not give freed heap back to the OS


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------- progress
class Progress:
    """Steps, steps per second and ETA, over the last minute (not since the start: the random
    warm-up is many times faster than learning). A bar redrawn in place on a terminal; a plain
    line every 5% or every minute, whichever comes first, in a log file. Once learning has run
    for a while, one line says how long the whole run is going to take."""

    WINDOW = 60.0  # seconds of history behind the rate

    def __init__(self, total: int, start: int, learning_starts: int):
        self.total, self.learning_starts, self.tty = total, learning_starts, sys.stderr.isatty()
        now = time.time()
        self.history = deque([(now, start)])  # (time, step), one sample a second
        self.last_print, self.next_plain = now, start + max(1, total // 20)
        self.learning_since, self.duration_said = None, False

    def sps(self) -> float:
        then, step_then = self.history[0]
        now, step_now = self.history[-1]
        return (step_now - step_then) / (now - then) if now > then else 0.0

    def update(self, step: int, recent_return: float | None) -> None:
        now = time.time()
        if now - self.history[-1][0] < 1.0 and step < self.total:
            return
        self.history.append((now, step))
        while len(self.history) > 2 and now - self.history[1][0] > self.WINDOW:
            self.history.popleft()
        if step > self.learning_starts and self.learning_since is None:
            self.learning_since = (now, step)
            self.history = deque([(now, step)])  # the rate of learning, not of the warm-up
            return
        self.say_duration(now, step)
        if self.tty and now - self.last_print < 0.5 and step < self.total:
            return
        if not self.tty and step < self.next_plain and now - self.last_print < 60 and step < self.total:
            return
        self.last_print = now
        while self.next_plain <= step:
            self.next_plain += max(1, self.total // 20)
        sps = self.sps()
        eta = format_duration((self.total - step) / sps) if sps > 0 else "-"
        ret = "-" if recent_return is None else f"{recent_return:.1f}"
        text = f"step {step}/{self.total} ({100 * step / self.total:.0f}%) | {sps:.0f} SPS | return {ret} | ETA {eta}"
        if self.tty:
            bar = "#" * int(20 * step / self.total)
            print(f"\r[{bar:<20}] {text}\033[K", end="", file=sys.stderr, flush=True)  # \033[K: clear the rest
        else:
            print(text, file=sys.stderr, flush=True)

    def say_duration(self, now: float, step: int) -> None:
        """Once, after 30 s of learning: the time the rest of the run is going to take."""
        if self.duration_said or self.learning_since is None or now - self.learning_since[0] < 30:
            return
        self.duration_said = True
        sps = self.sps()
        if sps <= 0 or step >= self.total:
            return
        rest = (self.total - step) / sps
        finish = time.strftime("%a %H:%M", time.localtime(now + rest))
        line = (f"learning at {sps:.0f} steps/s: the remaining {self.total - step} steps take about "
                f"{format_duration(rest)} (h:mm:ss), done around {finish}")
        print(("\r" if self.tty else "") + line + ("\033[K" if self.tty else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


# ---------------------------------------------------------------------------------- run
class Run:
    """One training run of a script: where it writes, and everything around the loop that is
    not the algorithm.

        run = Run(args, __file__)          # threads, seeds, device; --resume reads its checkpoint
        obs, start = run.start(agent, rb, envs, dims, total, z=z, z_rng=z_rng)
        with run.training():               # SIGINT/SIGTERM -> checkpoint; NaN -> stop
            for global_step in range(start, total, num_envs):
                ...                        # act, step, store, update
                run.log_episodes(infos, global_step, z)
                run.log_losses(info, global_step, update_step)
                run.step_done(global_step + num_envs, obs)   # progress, periodic checkpoint
        result = run.finish(agent, ...)    # --save-model, eval.json, --capture-video

    The checkpoint holds the agent, the replay buffer, every RNG, each env's simulator state
    and the loop variables given to `start` as keywords (arrays and numpy generators, restored
    in place), so a resumed run computes bit for bit what an uninterrupted one computes (on the
    CPU, with the same --threads).
    """

    def __init__(self, args, file: str):
        self.args, self.script, self.script_path = args, script_name(file), os.path.abspath(file)
        torch.set_num_threads(args.threads)
        keep_freed_memory()
        self.lock, self.checkpoint = None, None
        if args.resume:
            args.resume = checkpoint_path(args.resume)
            self.dir = os.path.dirname(os.path.abspath(args.resume))
            self.lock_directory()  # before reading: the checkpoint is ours now
        else:
            self.dir = self.new_run_directory(args)  # made in `start`, once the environment exists
        self.device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
        self.device_note = str(self.device) + ("" if self.device.type == "cuda" else
                                               " (no CUDA GPU found)" if args.cuda else " (--no-cuda)")
        try:  # bad input lets go of the lock, so that a caller in this process may try again
            if args.resume:
                self.checkpoint = read_checkpoint(args.resume, self.script)
                check_resume(args, self.checkpoint)
            saved_precision = None if self.checkpoint is None else self.checkpoint.get("precision", "float32")
            self.precision = choose_precision(args, self.device, saved_precision)
        except BaseException:
            self.release_lock()
            raise
        self.name = os.path.basename(self.dir)
        self.checkpoint_path = os.path.join(self.dir, "checkpoint.pt")
        self.checkpointed_step = None if self.checkpoint is None else self.checkpoint["global_step"]

        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        # One seed, one independent stream each for the env resets, the warm-up actions and the z draws
        # (seeding all three with the seed itself would give them one and the same stream).
        self.streams = dict(zip(("envs", "warm_up", "z"), np.random.SeedSequence(args.seed).spawn(3)))
        torch.backends.cudnn.deterministic = args.torch_deterministic
        self.stop_signal, self.recent_returns = [], deque(maxlen=20)
        self.defer_signals, self.exiting, self.handlers = True, False, {}
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)  # set by a NaN loss, read when logging

    def lock_directory(self) -> None:
        """The run directory's lock, held until `release_lock`, until this Run is garbage (an error
        in a caller that runs several scripts' `main` in one process), or until the process ends."""
        self.lock = weakref.finalize(self, os.close, lock_run_directory(self.dir))

    def release_lock(self) -> None:
        """Let go of the run directory."""
        if self.lock is not None:
            self.lock()

    @staticmethod
    def new_run_directory(args) -> str:
        """Where a new run writes: --run-dir (new or empty), or runs/{env}__{exp_name}__{seed}__{unix
        time}. A module:Id env is named by its Id (no colon in the directory's name)."""
        if args.run_dir:
            directory = os.path.abspath(args.run_dir)
            if os.path.exists(os.path.join(directory, "checkpoint.pt")):
                raise UsageError(f"{args.run_dir} already holds a run; continue it with --resume {args.run_dir}, "
                                 "or choose another --run-dir")
            if os.path.isdir(directory) and os.listdir(directory):
                raise UsageError(f"{args.run_dir} is not empty; choose another --run-dir")
            return directory
        env = args.env_id.split(":")[-1].replace("/", "-")
        return os.path.abspath(os.path.join("runs", f"{env}__{args.exp_name}__{args.seed}__{int(time.time())}"))

    def make_run_directory(self) -> None:
        """Create the new run's directory and lock it. Two runs started in the same second get two
        directories (`name.1`, ...); a --run-dir that another process took meanwhile is refused."""
        if self.args.run_dir:
            os.makedirs(self.dir, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(self.dir), exist_ok=True)
            stem = self.dir
            for n in range(1000):
                self.dir = stem if n == 0 else f"{stem}.{n}"
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.dir)
                    break
            else:
                raise RunFailed(f"cannot create a run directory {stem}.N")
        self.lock_directory()
        if os.path.exists(os.path.join(self.dir, "checkpoint.pt")):  # another process was faster
            raise UsageError(f"{self.dir} already holds a run; continue it with --resume {self.dir}")
        self.name = os.path.basename(self.dir)
        self.checkpoint_path = os.path.join(self.dir, "checkpoint.pt")

    def rng(self, stream: str) -> np.random.Generator:
        """A numpy generator on one of the run's independent streams ("z": the script's z draws)."""
        return np.random.default_rng(self.streams[stream])

    def stream_seed(self, stream: str) -> int:
        """An integer seed from one of the run's streams, for what takes only an int (gymnasium)."""
        return int(self.streams[stream].generate_state(1)[0])

    def autocast(self):
        """The context of the updates and of acting: bfloat16 autocast under --bf16 (where native),
        else nothing. Only the hidden layers' matrix products run in bf16: every network's output
        layer and all that follows (log-probabilities, losses) are float32. No cache of bf16 weight
        copies: an update steps its actor more than once (policy_frequency), each time anew."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16",
                              cache_enabled=False)

    def in_precision(self, act):
        """`act` (a policy function) run under `autocast()`, as during training."""
        def act_in_precision(obs, z):
            with self.autocast():
                return act(obs, z)
        return act_in_precision

    def command(self, *flags: str) -> str:
        """A command line that runs this script again, as it ran: this interpreter, this file."""
        return shlex.join([sys.executable, self.script_path, *flags])

    def start(self, agent, buffer, envs, dims: dict, total_steps: int, **loop_state):
        """Seed and reset the envs, create the run directory and the TensorBoard writer; on --resume,
        restore the agent, the buffer, the RNGs, the envs and the `loop_state` objects in place.
        Returns (obs, the first step). Exits early, saying so, when a resumed run has nothing to do."""
        try:
            return self.resume_or_begin(agent, buffer, envs, dims, total_steps, **loop_state)
        except BaseException:  # bad input or a run with nothing to do: let go of the directory
            self.release_lock()
            raise

    def resume_or_begin(self, agent, buffer, envs, dims: dict, total_steps: int, **loop_state):
        args = self.args
        envs.action_space.seed(self.stream_seed("warm_up"))
        obs, _ = envs.reset(seed=self.stream_seed("envs"))  # sub-env i gets this seed + i
        self.agent, self.buffer, self.envs, self.dims, self.loop_state = agent, buffer, envs, dims, loop_state
        self.total_steps, start_step = total_steps, 0
        resuming = self.checkpoint is not None
        if args.total_timesteps <= args.learning_starts:
            print(f"warning: --total-timesteps {args.total_timesteps} <= --learning-starts {args.learning_starts}: "
                  "this run only takes random actions and never learns", file=sys.stderr)
        if self.checkpoint is not None:
            state = self.checkpoint
            start_step = state["global_step"]
            if total_steps < start_step:
                raise UsageError(f"--total-timesteps {args.total_timesteps} is below the step this run has reached "
                                 f"({start_step}); to train it longer, give more")
            changed = {name for name, value in dataclasses.asdict(args).items()
                       if name != "resume" and state["args"].get(name, value) != value}
            if start_step >= total_steps and self.finished_at(start_step) and "eval_episodes" not in changed:
                print(f"{self.name} already finished at step {start_step}; its results are in {self.dir}. "
                      f"To train it longer: {self.command('--resume', self.dir, '--total-timesteps', str(2 * total_steps))}")
                raise SystemExit(0)
            load_state(agent.modules(), renamed(agent, state["agent"]))
            buffer.load_state_dict(state["buffer"])
            restore_rng_states(state["rng"], self.device)
            for name, value in loop_state.items():
                if isinstance(value, np.random.Generator):
                    value.bit_generator.state = state[name]
                else:
                    value[...] = state[name]
            envs.action_space.np_random.bit_generator.state = state["action_space_rng"]
            lost = restore_env_states(envs, state["envs"])
            obs = state["obs"]
            if lost:  # such an env starts a new episode; its cut episode is not logged
                print(f"note: environment state of env(s) {lost} could not be saved; they start a new episode")
                obs[lost] = np.stack([envs.unwrapped.envs[i].reset()[0] for i in lost])
            envs.episode_returns[:] = state["episode_returns"]
            envs.episode_lengths[:] = state["episode_lengths"]
            envs.episode_returns[lost], envs.episode_lengths[lost] = 0, 0
            self.recent_returns.extend(state["recent_returns"])
            self.checkpoint = None  # read into memory, not mapped: the file's space is free once it is replaced

        if not resuming:
            self.make_run_directory()
        num_z = getattr(args, "num_z", 1)
        print(f"{self.script}.py: {self.dir} | {args.env_id}, {f'|Z| = {num_z}' if num_z > 1 else 'one policy'}, "
              f"{total_steps} steps" + (f", resuming at step {start_step}" if resuming else "") +
              f" | {self.device_note}, {self.precision} | the duration is printed after 30 s of learning", flush=True)
        if args.track:
            try:
                import wandb
            except ImportError:
                raise UsageError("--track needs Weights and Biases: pip install wandb") from None
            wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                       config=vars(args), name=self.name, save_code=True)
        # On resume, TensorBoard hides what the interrupted run logged after its checkpoint (logged again now).
        self.writer = SummaryWriter(self.dir, purge_step=start_step if resuming else None)
        if not resuming:
            self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" +
                                 "\n".join(f"|{k}|{v}|" for k, v in {**vars(args), "precision": self.precision}.items()))
        self.progress = Progress(total_steps, start_step, args.learning_starts)
        self.obs = obs
        # From here until eval.json is written, SIGINT/SIGTERM end the run with a checkpoint.
        self.handlers = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return obs, start_step

    def finished_at(self, step: int) -> bool:
        """Whether `finish` has done its work for `step`: eval.json, the model file and the videos, as
        far as the run's flags ask for them."""
        args, written = self.args, lambda name: os.path.join(self.dir, name)
        return ((args.eval_episodes == 0 or os.path.exists(written("eval.json")) and
                 evaluated_step(written("eval.json")) == step) and
                (not args.save_model or os.path.exists(written(f"{args.exp_name}.pt")) and
                 torch.load(written(f"{args.exp_name}.pt"), map_location="cpu", weights_only=False,
                            mmap=True).get("global_step") == step) and
                (not args.capture_video or os.path.exists(written(os.path.join("videos", f"step{step}_z0.gif")))))

    # ---------------------------------------------------------------- inside the loop
    def log_episodes(self, infos: dict, step: int, z: np.ndarray | None = None) -> None:
        """CleanRL's episode tags (and, with a z per env, the return of each z)."""
        for i in np.flatnonzero(infos.get("_episode", [])):
            episode_return = infos["episode"]["r"][i]
            self.recent_returns.append(float(episode_return))
            self.writer.add_scalar("charts/episodic_return", episode_return, step)
            if z is not None:
                self.writer.add_scalar(f"charts/episodic_return_z{z[i]}", episode_return, step)
            self.writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], step)

    def log_losses(self, info: dict, step: int, update_step: int, charts=()) -> None:
        """Watch the critic loss for NaN at every update (no host sync); every LOG_EVERY updates
        stop on a NaN, and write the losses (tags in `charts` under charts/, others under losses/)."""
        self.nonfinite |= ~torch.isfinite(info["qf_loss"])
        if update_step % LOG_EVERY == 0:
            self.check_finite(step)
            for name, value in info.items():
                self.writer.add_scalar(f"charts/{name}" if name in charts else f"losses/{name}", value.item(), step)
            self.writer.add_scalar("charts/SPS", self.progress.sps(), step)

    def log_scalars(self, scalars: dict, step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), step)

    def step_done(self, next_step: int, obs: np.ndarray) -> None:
        """After every step: progress, the periodic checkpoint, and a stop if a signal came."""
        num_envs, self.obs = len(obs), obs
        self.progress.update(next_step, self.recent_returns[-1] if self.recent_returns else None)
        every = self.args.checkpoint_every
        if every and (next_step % every < num_envs or next_step == self.total_steps):
            self.save_checkpoint(next_step, obs)
        if self.stop_signal:
            self.stopped_at = next_step
            raise Interrupted()

    def check_finite(self, step: int) -> None:
        if self.nonfinite.item() or not all_finite(live_state(self.agent.modules())):
            raise FloatingPointError(f"a loss or a parameter became NaN or infinite by step {step}")

    def save_checkpoint(self, next_step: int, obs: np.ndarray) -> None:
        """The whole training state at `next_step`, replacing the last checkpoint atomically. A write
        that fails (a full disk) leaves the last checkpoint as it was and stops the run."""
        self.check_finite(next_step)
        loop_state = {name: value.bit_generator.state if isinstance(value, np.random.Generator) else value.copy()
                      for name, value in self.loop_state.items()}
        state = {"script": self.script, "script_path": self.script_path, "args": dataclasses.asdict(self.args),
                 "precision": self.precision,
                 "dims": self.dims, "global_step": next_step, "agent": state_of(self.agent.modules()),
                 "buffer": self.buffer.state_dict(),
                 "rng": rng_states(self.device), "action_space_rng": self.envs.action_space.np_random.bit_generator.state,
                 "envs": env_states(self.envs), "obs": obs, "episode_returns": self.envs.episode_returns.copy(),
                 "episode_lengths": self.envs.episode_lengths.copy(), "recent_returns": list(self.recent_returns),
                 **loop_state}
        try:
            atomic_save(state, self.checkpoint_path)
        except (OSError, RuntimeError) as error:  # torch.save reports a failed write as a RuntimeError
            cause = error if isinstance(error, OSError) else error.__cause__ or error.__context__
            if not isinstance(cause, OSError):
                raise
            kept = (f"the last checkpoint (step {self.checkpointed_step}) is intact" if self.checkpointed_step
                    is not None else "no checkpoint had been written yet")
            raise RunFailed(f"cannot write the checkpoint at step {next_step} ({cause.strerror or cause}); {kept}. "
                            f"Free some space, then resume with: {self.command('--resume', self.dir)}") from None
        self.checkpointed_step = next_step

    # ---------------------------------------------------------------- signals and exits
    def on_signal(self, signum: int, frame) -> None:
        """SIGINT/SIGTERM. During training the current step is finished first (`step_done` and the
        end of `training` stop); in `finish` (the model file, the videos, the evaluation) at once:
        the resume redoes what was left."""
        self.stop_signal.append(signum)
        if not self.defer_signals and not self.exiting:
            raise Interrupted()

    @contextlib.contextmanager
    def stops(self):
        """Ends the process as the exit codes say, for what is raised inside: a signal writes the
        checkpoint (unless it already holds this step) and prints the resume command (exit code
        128 + the signal); a NaN stops the run with the last good checkpoint kept (3); a failure
        such as a full disk says so (1)."""
        try:
            yield
        except Interrupted:
            self.exiting = True  # a second Ctrl-C no longer interrupts the checkpoint write
            step = getattr(self, "stopped_at", self.total_steps)
            with self.stops():
                if self.checkpointed_step != step:
                    self.save_checkpoint(step, self.obs)
            self.close()
            print(f"interrupted at step {step}; checkpoint saved. Resume with: {self.command('--resume', self.dir)}",
                  file=sys.stderr)
            sys.exit(128 + self.stop_signal[0])
        except FloatingPointError as error:
            self.close()
            kept = (f"the last good checkpoint {self.checkpoint_path} (step {self.checkpointed_step}) is intact"
                    if self.checkpointed_step is not None else "no checkpoint had been written yet")
            print(f"{self.script}.py: error: {error}; training stopped, no model or evaluation written, and {kept}. "
                  "Try a lower learning rate or another seed.", file=sys.stderr)
            sys.exit(NAN)
        except RunFailed as error:
            self.close()
            print(f"{self.script}.py: error: {error}", file=sys.stderr)
            sys.exit(FAILED)

    def close(self) -> None:
        """The progress line, the TensorBoard writer, the signal handlers as they were before the
        run, and the run directory's lock."""
        self.progress.close()
        self.writer.close()
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
        self.release_lock()

    @contextlib.contextmanager
    def training(self):
        """The training loop runs inside. A signal finishes the current step, writes a checkpoint and
        exits with the resume command; a NaN stops the run before any model or evaluation is
        written, keeping the last good checkpoint; at the end, one last NaN check."""
        with self.stops():
            yield
            self.check_finite(self.total_steps)  # the updates since the last check
            if self.stop_signal:  # arrived after the last step, during the final measure
                raise Interrupted()
        self.progress.close()

    # ------------------------------------------------------------------ after the loop
    def save_model(self, agent, names, algorithm: str) -> None:
        """`--save-model`: the weights of the agent's networks `names` and the arguments, for
        `load_model`. {exp_name}.pt is always the latest; an earlier one keeps its step in its name."""
        path = os.path.join(self.dir, f"{self.args.exp_name}.pt")
        keep_earlier(path, self.total_steps, lambda p: torch.load(p, map_location="cpu", weights_only=False,
                                                                  mmap=True).get("global_step", "unknown"))
        weights = state_of({name: getattr(agent, name) for name in names})  # on the CPU: loads anywhere
        atomic_save({"script": self.script, "script_path": self.script_path, "algorithm": algorithm,
                     "args": dataclasses.asdict(self.args),
                     "precision": self.precision, "dims": self.dims, "global_step": self.total_steps,
                     "agent": weights}, path)
        print(f"model saved to {path}")

    def write_evaluation(self, algorithm: str, per_z: list[dict], **extra) -> dict:
        """eval.json, the table on stdout, and eval/ tags. eval.json is always the latest; an
        earlier one (a run extended with --resume) keeps its step in its name."""
        result = {"algorithm": algorithm, "script": self.script, "exp_name": self.args.exp_name, **extra,
                  "env_id": self.args.env_id, "seed": self.args.seed, "global_step": self.total_steps,
                  **evaluation.summarize(per_z), "per_z": per_z, "precision": self.precision,
                  "config": dataclasses.asdict(self.args)}
        eval_path = os.path.join(self.dir, "eval.json")
        keep_earlier(eval_path, self.total_steps, evaluated_step)
        atomic_write_json(result, eval_path)
        evaluation.print_table(result)
        print(f"-> {eval_path}")
        if len(per_z) == 1:
            self.writer.add_scalar("eval/return", result["avg"], self.total_steps)
        else:
            self.writer.add_scalar("eval/avg_return", result["avg"], self.total_steps)
            self.writer.add_scalar("eval/max_return", result["max"], self.total_steps)
        return result

    def record_videos(self, act, num_z: int) -> None:
        """`--capture-video`: one deterministic episode of every z as a GIF, `act` as in `evaluate`,
        in videos/step{N}_z{k}.gif (the step, so that an extended run keeps the earlier ones)."""
        os.makedirs(os.path.join(self.dir, "videos"), exist_ok=True)
        paths = [os.path.join(self.dir, "videos", f"step{self.total_steps}_z{k}.gif") for k in range(num_z)]
        seeds = [self.args.seed + evaluation.EVAL_SEED_OFFSET + k * max(self.args.eval_episodes, 1)
                 for k in range(num_z)]
        evaluation.record_videos(act, self.args.env_id, seeds, paths, self.device)
        print(f"videos saved to {os.path.join(self.dir, 'videos')}")

    def finish(self, agent, saved_networks, act, make_envs, algorithm: str, num_z: int, **extra) -> dict | None:
        """After training: `--save-model`, `--capture-video` and the evaluation (eval.json, written
        last: it marks the run as done; returned), with the deterministic policy
        `act(obs [N, obs_dim], z [N]) -> actions [N, act_dim]`. A signal meanwhile stops at once; the
        resume redoes only these."""
        act, result = self.in_precision(act), None
        with self.stops():
            self.defer_signals = False
            if self.stop_signal:  # arrived between the end of training and here
                raise Interrupted()
            if self.args.save_model:
                self.save_model(agent, saved_networks, algorithm)
            if self.args.capture_video:
                self.record_videos(act, num_z)
            if self.args.eval_episodes > 0:
                per_z = evaluation.evaluate(act, make_envs, self.args.env_id, num_z, self.args.eval_episodes,
                                            self.args.seed + evaluation.EVAL_SEED_OFFSET, self.device)
                result = self.write_evaluation(algorithm, per_z, **extra)
        self.close()
        return result

    def measure(self, step: int, act, make_envs, num_z: int, *, disc_sa, disc_s) -> None:
        """Every --measure-every steps, the held-out discriminability (`evaluation.held_out_measure`)
        of the |Z| = `num_z` policies, with fresh episodes and action noise seeded from (seed, step)."""
        every, num_envs = self.args.measure_every, self.envs.num_envs
        if every and step > 0 and step % every < num_envs:
            measured = evaluation.held_out_measure(
                self.in_precision(act), make_envs, self.args.env_id, num_z, self.args.measure_steps,
                evaluation.seed_from(self.args.seed, step), self.device, disc_sa=disc_sa, disc_s=disc_s)
            self.log_scalars(measured, step)


def require_flat_box_spaces(envs, env_id: str, script: str) -> None:
    """One clear line for an environment the scripts cannot learn on."""
    if not isinstance(envs.single_action_space, gym.spaces.Box):
        raise UsageError(f"'{env_id}' has a {type(envs.single_action_space).__name__} action space; "
                         f"{script}.py needs a continuous (Box) action space")
    if not isinstance(envs.single_observation_space, gym.spaces.Box) or len(envs.single_observation_space.shape) != 1:
        raise UsageError(f"'{env_id}' needs a flat Box observation space, got {envs.single_observation_space}")
