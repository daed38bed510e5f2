"""A grid of training runs (scripts × environments × seeds), run on Ray: this machine or a cluster.

Setup, once, from the repository root (the main requirements and Ray):

    .venv/bin/pip install -r requirements-sweep.txt

Every combination of the grid is a trial: one run of the unchanged script in a subprocess,
`python SCRIPT --env-id ENV --seed SEED --run-dir RUN_DIR --threads 1 FLAGS` with OMP_NUM_THREADS=1,
where FLAGS are the flags after `--`, the same for every trial:

    python sweep.py --scripts mede_continuous.py diayn_continuous.py --env-ids Hopper-v4 --seeds 1 2 3 \\
        --dir sweeps/hopper_z10 -- --num-z 10 --total-timesteps 100000

Where it writes (`--dir`, by default sweeps/{first script}__{first env}__{hash of FLAGS}):

    {dir}/{script}__{env_id}__seed{seed}__{hash}/   a trial's run directory: TensorBoard events,
                                                    checkpoint.pt, eval.json (hash: 8 hex digits of FLAGS)
    {dir}/logs/{same name}.log                      all that the trial printed, attempt after attempt
    {dir}/table1.md, {dir}/table1.csv               the summary, `plot.py table1` on the trials' eval.json

A trial's names depend only on (script, env, seed, FLAGS), so a retry or a rerun finds its checkpoint.
The log is outside the run directory because a script starts only in a new or empty one.

Locally (the default) Ray starts inside this process: nothing to start or stop. Each trial asks
for one CPU, so as many trials run at once as there are cores (`--num-cpus N` for fewer).

On a cluster, start Ray on every node from the project's venv (`.venv/bin/ray start --head`, then
`.venv/bin/ray start --address HEAD:6379` on the others) and add `--address HEAD:6379` (or
`--address auto` on a node of the cluster): the same command spreads the grid over the nodes.
Every node needs the repository and its venv at the same path as here, and `--dir` on a file
system that all nodes share (trials write where they run; this process reads their results).

Failures are retried by Ray: a trial is a Ray task with max_retries=--retries and
retry_exceptions=True, which raises when the script crashes (exit code 1), is interrupted (130,
143), is killed or loses its node; every attempt after a checkpoint continues from it
(`--resume RUN_DIR`), so sweeps add `--checkpoint-every` (default 10000 steps) unless FLAGS have
their own. Bad input (2) and a NaN (3) are not retried: they would happen again. The script dies
with the Ray worker that started it (a parent-death signal), so a retry never meets it, and a run
directory has one writer at a time (its lock). Each line the sweep prints says why a trial ended.

Resume by rerunning: the same command again skips the trials that have their eval.json (no task
is started for them) and continues the others from their checkpoints, after a Ctrl-C or a
`kill PID` (SIGTERM) of this process (the running trials write a checkpoint before they stop), a
crash of this process or trials that failed for good. A trial is finished when its eval.json
exists, so sweeps need evaluation on (`--eval-episodes 0` is refused). Trials with other FLAGS
are other trials (another hash).
`--total-timesteps N` trains every trial to N steps without changing its name: raised later, it
extends finished trials from their checkpoints.
"""

import argparse
import dataclasses
import fcntl
import glob
import hashlib
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

try:
    import ray
except ImportError:
    ray = None

from run_utils.cli import BAD_INPUT, DONE, FAILED, NAN, UsageError  # noqa: E402  (after ray's optional import)

REPO = os.path.dirname(os.path.abspath(__file__))
# Flags of the scripts that the sweep sets for each trial, and what to do instead.
SWEEP_FLAGS = {"--env-id": "use --env-ids", "--seed": "use --seeds", "--run-dir": "the sweep names them (--dir)",
               "--resume": "rerun the sweep to resume its trials", "--threads": "each trial runs one thread on one CPU"}


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`): stops the sweep as Ctrl-C does, with exit code 143 instead of 130."""


class TrialFailed(Exception):
    """The script crashed or was interrupted: Ray runs the trial again (from its checkpoint)."""


# The scripts' exit codes (run_utils.cli): which are worth another attempt.
NOT_RETRIED = {DONE: "exited without writing eval.json", BAD_INPUT: "bad input", NAN: "a loss became NaN"}


# --------------------------------------------------------------------------------- the grid
@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of one script on one environment with one seed."""

    script: str  # absolute path
    env_id: str
    seed: int
    flags: tuple[str, ...]  # FLAGS and the sweep's own (--threads 1, --checkpoint-every)
    run_dir: str
    log: str
    total_timesteps: int | None = None  # the sweep's --total-timesteps: train to this many steps

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    def evaluated_budget(self) -> int | None:
        """The --total-timesteps of the trial's latest evaluation (eval.json), or None. (The budget,
        not the step: with separate networks a script rounds it down to a multiple of |Z|.)"""
        try:
            with open(os.path.join(self.run_dir, "eval.json")) as f:
                result = json.load(f)
            return result.get("config", {}).get("total_timesteps", result["global_step"])
        except (OSError, ValueError, KeyError):
            return None

    def finished(self) -> bool:
        """Evaluated, at the sweep's --total-timesteps if it has one."""
        budget = self.evaluated_budget()
        return budget is not None and (self.total_timesteps is None or budget >= self.total_timesteps)

    def command(self, resume: bool) -> list[str]:
        """The script's command line (with the Python of the node that runs it): a new run, or `--resume`."""
        where = (["--resume", self.run_dir] if resume else
                 ["--env-id", self.env_id, "--seed", str(self.seed), "--run-dir", self.run_dir])
        longer = [] if self.total_timesteps is None else ["--total-timesteps", str(self.total_timesteps)]
        return [sys.executable, self.script, *where, *self.flags, *longer]


def flag_value(flags: list[str], name: str) -> str | None:
    """The value given to `--name` in `flags` (`--name VALUE` or `--name=VALUE`; the last one wins)."""
    value = None
    for i, token in enumerate(flags):
        given, equals, inline = token.partition("=")
        if given.replace("_", "-") == name:
            value = inline if equals else (flags[i + 1] if i + 1 < len(flags) else "")
    return value


def short_hash(flags: list[str]) -> str:
    return hashlib.sha256(shlex.join(flags).encode()).hexdigest()[:8]


def make_trials(args, flags: list[str]) -> list[Trial]:
    """The grid, in the order scripts × env ids × seeds, after checking the input."""
    for token in flags:
        name = token.partition("=")[0].replace("_", "-")
        if name in SWEEP_FLAGS:
            raise UsageError(f"{name} after -- is set by the sweep for each trial: {SWEEP_FLAGS[name]}")
    if flag_value(flags, "--eval-episodes") in ("0", ""):
        raise UsageError("--eval-episodes after -- must be positive: a trial is finished when its eval.json exists")
    if flag_value(flags, "--checkpoint-every") in ("0", "") or args.checkpoint_every == 0:
        raise UsageError("--checkpoint-every must be positive in a sweep: retries and reruns continue from the "
                         "trial's checkpoint")
    scripts = []
    for script in dict.fromkeys(args.scripts):
        path = os.path.join(REPO, script)
        if not (script.endswith(".py") and os.path.isfile(path)):
            known = " ".join(sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "*_continuous.py"))))
            raise UsageError(f"unknown script {script}: not a .py file in {REPO} (e.g. {known})")
        scripts.append(path)
    own = ["--threads", "1"]
    if flag_value(flags, "--checkpoint-every") is None:
        own += ["--checkpoint-every", str(args.checkpoint_every)]
    flag_hash, trials = short_hash(flags), []
    for script in scripts:
        for env_id in dict.fromkeys(args.env_ids):
            for seed in dict.fromkeys(args.seeds):
                stem = os.path.splitext(os.path.basename(script))[0]
                name = f"{stem}__{env_name(env_id)}__seed{seed}__{flag_hash}"
                trials.append(Trial(script, env_id, seed, (*own, *flags), os.path.join(args.dir, name),
                                    os.path.join(args.dir, "logs", f"{name}.log"), args.total_timesteps))
    return trials


def env_name(env_id: str) -> str:
    """An env id as part of a directory's name: `module:Id` is named by its Id."""
    return env_id.split(":")[-1].replace("/", "-")


# ------------------------------------------------------------------------ inside the cluster
class Reporter:
    """Where the trials (Ray tasks, on any node) say what they do; the driver takes the lines
    every second and prints them. It also counts each trial's attempts."""

    def __init__(self):
        self.attempts, self.lines = Counter(), []

    def attempt(self, name: str) -> int:
        self.attempts[name] += 1
        return self.attempts[name]

    def say(self, line: str) -> None:
        self.lines.append((time.time(), line))

    def take(self) -> list[tuple[float, str]]:
        lines, self.lines = self.lines, []
        return lines


def describe(code: int) -> str:
    """An exit code, as the scripts use them."""
    def signal_name(number: int) -> str:
        return signal.Signals(number).name if number in set(signal.Signals) else f"signal {number}"

    if code < 0:
        return f"killed by {signal_name(-code)}"
    meaning = {DONE: "done", FAILED: "crashed", BAD_INPUT: "bad input", NAN: "a loss became NaN"}.get(code)
    if code - 128 in signal.valid_signals():
        meaning = f"interrupted by {signal_name(code - 128)}, checkpoint written"
    return f"exit code {code}" + (f" ({meaning})" if meaning else "")


def error_message(log_path: str, offset: int) -> str:
    """What the script said was wrong (after `offset` in its log): its one line `SCRIPT: error: ...`,
    or the message in tyro's box, for a flag it could not parse."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if ": error: " in line:
            return line.strip()
        if line.startswith("╭─"):  # the box's title, then its message up to a separator line
            message = itertools.takewhile(lambda text: not text.strip(" │").startswith(("─", "╰")), lines[i + 1:])
            return " ".join(text.strip(" │") for text in message)
    return "(no message)"


def warnings_in(log_path: str, offset: int) -> list[str]:
    """The warnings the script printed (after `offset` in its log), e.g. that a run never learns."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        return [line.strip() for line in f if line.startswith("warning:")]


def lock_held(run_dir: str) -> str | None:
    """Who holds the run directory's lock (a script still running in it), or None."""
    path = os.path.join(run_dir, ".lock")
    if not os.path.exists(path):
        return None
    with open(path, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def run_script(command: list[str], log) -> int:
    """Run the script, its output appended to `log`, and return its exit code; the log's last line
    says how it ended. The script dies with this process (it asks the kernel for a parent-death
    signal), and runs in a session of its own: a terminal's Ctrl-C reaches this sweep, not the
    script. Polls, so that Ray's cancel (a KeyboardInterrupt here) gets through at any moment after
    the process exists: the script is then stopped with SIGTERM, writes its checkpoint, exits first."""
    # MEDE_DIE_WITH_PARENT: the script asks the kernel to kill it when this process (the Ray worker) dies
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MEDE_DIE_WITH_PARENT": str(os.getpid())}
    if not ray.get_gpu_ids():
        env["CUDA_VISIBLE_DEVICES"] = ""  # a trial uses no GPU that Ray did not give it
    process = None
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                   start_new_session=True)  # a terminal's Ctrl-C reaches the sweep, which stops it
        while process.poll() is None:
            time.sleep(1)
        return process.returncode
    finally:  # a KeyboardInterrupt (cancel) or any error: the script must not outlive this attempt
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait()
        log.write(f"=== {describe(process.returncode) if process is not None else 'not started'}\n")


def evaluation(trial: Trial) -> dict:
    with open(os.path.join(trial.run_dir, "eval.json")) as f:
        result = json.load(f)
    return {"finished": True, "avg": result["avg"], "max": result["max"]}


def run_trial(trial: Trial, reporter, max_attempts: int) -> dict:
    """One attempt at a trial, as a Ray task: the script in a subprocess, its output appended to
    the trial's log. Raises TrialFailed when another attempt may succeed (Ray then runs this again,
    and that attempt continues from the checkpoint); otherwise returns the outcome."""
    # Ray cancels a running task with a simulated SIGINT, which does nothing where SIGINT is ignored,
    # as it is in the workers of a sweep started with `&` from a script
    signal.signal(signal.SIGINT, signal.default_int_handler)
    attempt = ray.get(reporter.attempt.remote(trial.name))
    if trial.finished():  # by an attempt whose worker died before it could return
        return evaluation(trial)
    holder = lock_held(trial.run_dir)
    if holder:  # an earlier attempt's script still runs (it dies with its worker: wait for it)
        time.sleep(5)
        raise TrialFailed(f"{trial.name}: its run directory is still in use by {holder}")
    resume = os.path.exists(os.path.join(trial.run_dir, "checkpoint.pt"))
    if not resume and glob.glob(os.path.join(trial.run_dir, "eval*.json")):  # finished, to be trained longer
        return {"finished": False, "why": "cannot train it longer: its checkpoint.pt is gone (not retried)"}
    if not resume:  # an attempt that died before its first checkpoint left only TensorBoard events
        shutil.rmtree(trial.run_dir, ignore_errors=True)
    verb, how = ("start" if attempt == 1 else "retry"), ("resuming from its checkpoint" if resume else "from step 0")
    ray.get(reporter.say.remote(f"{verb:8} {trial.name} (attempt {attempt} of {max_attempts}, {how})"))
    command = trial.command(resume)
    os.makedirs(os.path.dirname(trial.log), exist_ok=True)
    with open(trial.log, "a") as log:
        offset = log.tell()
        log.write(f"=== attempt {attempt} on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{shlex.join(command)}\n")
        log.flush()
        code = run_script(command, log)
    if code == DONE and trial.finished():
        return {**evaluation(trial), "warnings": warnings_in(trial.log, offset)}
    if code in NOT_RETRIED:  # another attempt would do the same
        why = NOT_RETRIED[code] + (f": {error_message(trial.log, offset)}" if code != DONE else "")
        return {"finished": False, "why": f"{why} ({describe(code)}, not retried)"}
    then = "Ray retries it from its checkpoint" if attempt < max_attempts else "no attempt left"
    ray.get(reporter.say.remote(f"{'ended':8} {trial.name} on attempt {attempt}: {describe(code)}; {then} "
                                f"(log: {trial.log})"))
    raise TrialFailed(f"{trial.name}: {describe(code)} on attempt {attempt}")


# ----------------------------------------------------------------------------- the driver
def start_ray(args) -> None:
    """A new Ray of this machine's own, in this process (the trials pass no data through Ray: a
    small object store), or the cluster at --address. Says what it got."""
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR)  # the trials' output goes to their logs
    try:
        if args.address:
            ray.init(address=args.address, **quiet)
        else:
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, object_store_memory=100 << 20,
                     **quiet)  # "local": a new Ray, never a cluster found on this machine or in RAY_ADDRESS
    except Exception as error:  # ConnectionError: an unreachable address, a missing token, ...
        reason = str(error).strip().splitlines()[0]
        if not args.address:
            raise UsageError(f"cannot start Ray: {reason}") from None
        raise UsageError(f"cannot join the Ray cluster at {args.address}: {reason} (is it running? A cluster with "
                         "token authentication also needs RAY_AUTH_MODE=token and its token here)") from None
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), resources.get("GPU", 0)
    nodes = sum(node["Alive"] for node in ray.nodes())
    at_once = int(min(cpus, gpus / args.gpus_per_trial)) if args.gpus_per_trial else cpus
    where = f"the cluster at {args.address}" if args.address else "a local Ray"
    print(f"Ray: {where}, {nodes} node(s), {cpus} CPU(s), {gpus:g} GPU(s): up to {at_once} trial(s) at once", flush=True)
    if at_once == 0:
        print(f"warning: trials ask for {args.gpus_per_trial:g} GPU each and the cluster has {gpus:g}: "
              "they wait for a node with GPUs", flush=True)


def run_grid(args, trials: list[Trial]) -> list[tuple[Trial, str]]:
    """Run the trials as Ray tasks, printing what they do; returns the ones that failed for good
    with the reason."""
    start = time.time()

    def say(line: str, at: float | None = None) -> None:
        elapsed = int((at or time.time()) - start)
        print(f"[{elapsed // 3600}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}] {line}", flush=True)

    terminated = []

    def stop_as_on_ctrl_c(signum, frame):  # replaces Ray's handler, which exits at once and so kills the scripts
        terminated.append(signum)
        raise KeyboardInterrupt  # Ray may catch and re-raise it (as a plain KeyboardInterrupt)

    # `kill PID` (SIGTERM to this process) stops the sweep as Ctrl-C does. It also reaches a sweep started
    # with `&` from a script, which ignores SIGINT.
    signal.signal(signal.SIGTERM, stop_as_on_ctrl_c)
    reporter = ray.remote(num_cpus=0)(Reporter).remote()
    task = ray.remote(run_trial).options(num_cpus=1, num_gpus=args.gpus_per_trial, max_retries=args.retries,
                                         retry_exceptions=True)
    pending, failed, done, running, last_rate = {}, [], 0, set(), time.time()
    by_name = {trial.name: trial for trial in trials}
    try:
        for trial in trials:  # inside the try: a stop while submitting cancels what was submitted
            pending[task.remote(trial, reporter, args.retries + 1)] = trial
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for at, line in ray.get(reporter.take.remote()):
                say(line, at)
                verb, name = line.split()[:2]
                if verb in ("start", "retry"):
                    running.add(name)
                elif verb == "ended":
                    running.discard(name)
            if running and time.time() - last_rate >= RATE_EVERY:
                last_rate = time.time()
                say(summed_rate([by_name[name] for name in sorted(running)]))
            for ref in ready:
                trial, done = pending.pop(ref), done + 1
                running.discard(trial.name)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as error:  # TrialFailed on the last attempt, a lost worker, ...
                    outcome = {"finished": False, "why": str(getattr(error, "cause", None) or error).splitlines()[0]}
                if outcome["finished"]:
                    warned = "".join(f" ({warning})" for warning in outcome.get("warnings", []))
                    say(f"finished {trial.name}: avg {outcome['avg']:.1f}, max {outcome['max']:.1f}{warned} "
                        f"- done {done}/{len(trials)}")
                else:
                    failed.append((trial, outcome["why"]))
                    say(f"{'FAILED':8} {trial.name}: {outcome['why']} (log: {trial.log}) - done {done}/{len(trials)}")
    except KeyboardInterrupt:
        say(f"interrupted: stopping {len(pending)} trial(s); the running ones write a checkpoint first")
        for ref in pending:
            ray.cancel(ref)
        ray.wait(list(pending), num_returns=len(pending), timeout=60)
        stop_leftover_scripts(list(pending.values()))
        again = shlex.join([sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
        say(f"stopped. Run the same command again to continue: {again}")
        if terminated:
            raise Terminated from None
        raise
    return failed


RATE_EVERY = 120  # seconds between two lines of the trials' summed speed


def latest_rate(log_path: str) -> float | None:
    """The steps per second of the latest progress line (`step N/T (P%) | R SPS | ...`) of the trial's current
    attempt once it learns (after the script's line `learning at ...`: the random warm-up is many times faster),
    or None (not learning yet)."""
    try:
        with open(log_path, errors="replace") as f:
            attempt = f.read().rsplit("\n=== attempt ", 1)[-1]
    except OSError:
        return None
    learning = attempt.split("\nlearning at ", 1)
    rates = re.findall(r"\| (\d+) SPS \|", learning[1]) if len(learning) == 2 else []
    return float(rates[-1]) if rates else None


def summed_rate(running: list[Trial]) -> str:
    """One line: the running trials' environment steps per second, each and summed (several trials on
    one GPU share it: the sum is what the GPU does)."""
    rates = {trial.name: latest_rate(trial.log) for trial in running}
    known = [rate for rate in rates.values() if rate is not None]
    each = ", ".join(f"{rate:.0f}" if rate is not None else "-" for rate in rates.values())
    return (f"speed: {len(running)} trial(s) running, {sum(known):.0f} environment steps/s summed over the "
            f"{len(known)} that learn (each: {each}; -: not learning yet)")


def stop_leftover_scripts(trials: list[Trial], timeout: float = 120) -> None:
    """After a Ctrl-C or SIGTERM: a trial's script that still runs here (its run directory's lock
    names it) gets SIGTERM, writes its checkpoint and exits; wait for that. Normally the cancelled
    Ray task has already stopped it."""
    here = socket.gethostname()
    for trial in trials:
        holder = lock_held(trial.run_dir) or ""
        found = re.fullmatch(r"process (\d+) on (\S+)", holder)
        if found and found[2] == here:
            try:
                os.kill(int(found[1]), signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + timeout
    while time.time() < deadline and any(lock_held(trial.run_dir) for trial in trials):
        time.sleep(0.5)


def summarize(args, trials: list[Trial]) -> None:
    """Table 1 of the finished trials, printed and written to {dir}/table1.md and .csv."""
    eval_files = sorted(path for trial in trials for path in glob.glob(os.path.join(trial.run_dir, "eval*.json")))
    if not eval_files:
        print("no trial has finished: no summary")
        return
    print(f"\nTable 1 of the {len(eval_files)} evaluation file(s) of the sweep:\n", flush=True)
    table = subprocess.run([sys.executable, os.path.join(REPO, "plot.py"), "table1", *eval_files,
                            "--out", os.path.join(args.dir, "table1")])
    if table.returncode != 0:
        sys.exit(f"sweep.py: plot.py table1 failed (exit code {table.returncode}); "
                 "the results are in the trials' eval.json files")


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """Bad input is one line on stderr (argparse's usage would make it two)."""
        print(f"sweep.py: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own options, and the flags after `--` for every trial."""
    own, flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                    usage="python sweep.py --scripts SCRIPT [SCRIPT ...] --env-ids ENV [ENV ...] --seeds SEED "
                          "[SEED ...] [options] [-- FLAGS for every trial]")
    parser.add_argument("--scripts", nargs="+", required=True, metavar="SCRIPT",
                        help="training scripts of this repository, e.g. mede_continuous.py diayn_continuous.py")
    parser.add_argument("--env-ids", nargs="+", required=True, metavar="ENV", help="environment ids, e.g. Hopper-v4")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, metavar="SEED", help="seeds, e.g. 1 2 3")
    parser.add_argument("--dir", help="the sweep directory (default: sweeps/{first script}__{first env}__{8 hex "
                        "digits of the flags after --}); the same for a rerun, to resume")
    parser.add_argument("--total-timesteps", type=int, metavar="N",
                        help="train every trial to N steps, whatever the flags after -- say; trials keep their "
                        "directories (named without it), so raising it later extends finished trials from their "
                        "checkpoints (default: the flags' own --total-timesteps)")
    parser.add_argument("--checkpoint-every", type=int, default=10000, metavar="N",
                        help="steps between two checkpoints of a trial, where a retry continues from; given to "
                        "the scripts unless the flags after -- have --checkpoint-every (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="Ray's max_retries: attempts after the first, for a trial that crashes or is killed "
                        "(default: %(default)s)")
    parser.add_argument("--address", help="join the Ray cluster at this address (e.g. HEAD_IP:6379, or auto for "
                        "the one started on this machine) instead of starting a new local Ray in this process "
                        "(RAY_ADDRESS is not used)")
    parser.add_argument("--num-cpus", type=int, metavar="N",
                        help="local Ray only: CPUs it may use, so trials at once (default: all cores)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="F",
                        help="GPUs each trial asks Ray for, e.g. 0.5 to share one GPU between two trials; with 0 "
                        "the trials see no GPU and train on the CPU (default: %(default)s)")
    args, unknown = parser.parse_known_args(own)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (flags for the scripts go after --)")
    for name in ("retries", "checkpoint_every", "gpus_per_trial"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.total_timesteps is not None and args.total_timesteps < 1:
        parser.error(f"--total-timesteps must be positive, got {args.total_timesteps}")
    if args.num_cpus is not None and (args.num_cpus < 1 or args.address):
        parser.error("--num-cpus must be positive, and is for a local Ray only (a cluster has its own CPUs)")
    default = f"{os.path.splitext(os.path.basename(args.scripts[0]))[0]}__{env_name(args.env_ids[0])}__{short_hash(flags)}"
    args.dir = os.path.abspath(os.path.expanduser(args.dir or os.path.join("sweeps", default)))
    return args, flags


def main(argv: list[str]) -> int:
    args, flags = parse_args(argv)
    trials = make_trials(args, flags)
    if ray is None:
        raise UsageError("Ray is not installed: pip install -r requirements-sweep.txt")
    todo = [trial for trial in trials if not trial.finished()]
    print(f"sweep of {len(trials)} trial(s) in {args.dir} (logs in {os.path.join(args.dir, 'logs')}): "
          f"{len(trials) - len(todo)} finished earlier (skipped), {len(todo)} to run", flush=True)
    failed = []
    if todo:
        start_ray(args)
        try:
            failed = run_grid(args, todo)
        finally:
            ray.shutdown()
    summarize(args, trials)
    if failed:
        print(f"\n{len(failed)} trial(s) failed for good (rerun the same command to try them again):")
        for trial, why in failed:
            print(f"  {trial.name}: {why}\n    log: {trial.log}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        sys.exit(143 if isinstance(stop, Terminated) else 130)
