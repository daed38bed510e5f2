"""Gradient updates per second on Hopper-v4 (and M. Ant): our scripts and Stable-Baselines3 SAC, side by side.

Setup, once, from the repository root (a separate venv, so SB3 never enters the main one):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r benchmarks/requirements.txt

Run, from the repository root (the default: sac and sb3-sac, 3 repeats, about 5 minutes on 2 cores):

    .venv-bench/bin/python benchmarks/bench.py
    .venv-bench/bin/python benchmarks/bench.py sac sac-bf16 mede mede-bf16 mede-sep mede-sep-bf16 sb3-sac --repeats 5

Every contender runs at one thread (per core) and at its default thread count (`--threads`):
ours default to one thread, SB3 to torch's default (one per core). The `-bf16` contenders pass
`--bf16`; where the CPU has no native bf16 they run in float32, and the table's precision column
says so (`MEDE_EMULATED_BF16=1` in the environment forces the emulation, to measure its cost).

What is measured. Each measurement is one fresh subprocess (start-up excluded, nothing shared)
that trains on Hopper-v4 for W random warm-up steps and then N steps with one update each, with
the same sizes for every contender: two hidden layers of 256 for the actor and each critic,
batch 256, one gradient step per environment step (per agent), a 1M replay buffer. `sac` and
`sb3-sac` learn their temperature; `mede` and `mede-sep` run MEDE's defaults otherwise (fixed
alpha 0.3, actor updated every step) and add their two discriminators (2 x 256).
A timestamp is taken at each update (our scripts: each call of `Run.log_losses`, which follows every
update, outside any CUDA graph; SB3: each callback `_on_step` once learning has started, which
precedes its one gradient step); the rate
is the updates from the K-th to the last timestamp divided by the time between them. So it is
the training loop's real throughput: acting and environment steps between updates included.
Rounds are interleaved (each round runs every contender once, in a rotated order) and the
table gives the median and the min-max over rounds, and each run's peak RSS (its own
ru_maxrss; our buffers are torch.zeros, so the 1M buffer's pages are really allocated, while
SB3's np.zeros buffer only counts the pages that were written).

Differences with SB3 that remain, none of which changes the work per update: SB3 SAC has one
learning rate (3e-4 here) where ours has policy 3e-4 / critic 1e-3, and it updates the actor at
every step where ours updates it twice every second step (policy_frequency 2): the same number
of actor steps. A contender that is one of our scripts is one line in CONTENDERS below.
"""

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Ours:
    """One of our scripts: its file, extra flags, and its environment."""
    script: str
    flags: tuple[str, ...] = ()
    env_steps_per_update: int = 1  # environment steps that one update stands for
    env_id: str = "Hopper-v4"


SB3_SAC = "sb3-sac"
MEDE_FLAGS = ("--num-z", "4", "--hidden-dim", "256")
ANT_FLAGS = ("--num-z", "4", "--separate-networks", "--hidden-dim", "128", "--alpha", "1", "--reward-scale", "5")
CONTENDERS = {
    "sac": Ours("sac_continuous.py"),
    "sac-eager": Ours("sac_continuous.py", ("--no-cuda-graphs",)),  # on CUDA: the update not captured
    "sac-bf16": Ours("sac_continuous.py", ("--bf16",)),
    "sac-compile": Ours("sac_continuous.py", ("--compile",)),  # on CUDA: compiled, then captured
    "mede": Ours("mede_continuous.py", MEDE_FLAGS),
    "mede-eager": Ours("mede_continuous.py", (*MEDE_FLAGS, "--no-cuda-graphs")),
    "mede-bf16": Ours("mede_continuous.py", (*MEDE_FLAGS, "--bf16")),
    "mede-compile": Ours("mede_continuous.py", (*MEDE_FLAGS, "--compile")),
    "mede-sep": Ours("mede_continuous.py", (*MEDE_FLAGS, "--separate-networks"), env_steps_per_update=4),
    "mede-sep-bf16": Ours("mede_continuous.py", (*MEDE_FLAGS, "--separate-networks", "--bf16"),
                          env_steps_per_update=4),
    "mede-sep-ant": Ours("mede_continuous.py", ANT_FLAGS, env_steps_per_update=4, env_id="MultiDirectionAnt-v0"),
    SB3_SAC: None,  # Stable-Baselines3 SAC with our sizes, see run_sb3
}
OUR_DEFAULT_THREADS = 1  # the scripts' --threads default


# --------------------------------------------------------------------------- worker side
def run_ours(contender: Ours, warmup_steps: int, steps: int, threads: int, device: str) -> tuple[list[float], str]:
    """Train with the script's own `main`, with a timestamp at each update (`Run.log_losses`, which
    follows every update, outside any CUDA graph). Returns the timestamps and the precision the run chose."""
    sys.path.insert(0, REPO)
    module = importlib.import_module(contender.script.removesuffix(".py"))
    cli, hardware, run = (importlib.import_module(f"run_utils.{name}") for name in ("cli", "hardware", "run"))
    log_losses, choose_precision, stamps, chosen = run.Run.log_losses, hardware.choose_precision, [], []

    def timed_log_losses(self, *args, **kwargs):
        stamps.append(time.perf_counter())
        return log_losses(self, *args, **kwargs)

    def recorded_precision(*args, **kwargs):
        chosen.append(choose_precision(*args, **kwargs))
        return chosen[-1]

    run.Run.log_losses, hardware.choose_precision = timed_log_losses, recorded_precision
    flags = ["--env-id", contender.env_id, "--learning-starts", str(warmup_steps), "--threads", str(threads),
             "--total-timesteps", str(warmup_steps + steps * contender.env_steps_per_update), "--eval-episodes", "0",
             "--checkpoint-every", "0", *(["--no-cuda"] if device == "cpu" else [])]
    if "measure_every" in module.Args.__dataclass_fields__:  # no held-out measure in the timed steps
        flags += ["--measure-every", "0"]
    module.main(cli.parse_args(module.Args, module.__file__, flags + list(contender.flags)))
    return stamps, chosen[0]


def run_sb3(warmup_steps: int, steps: int, threads: int, device: str) -> tuple[list[float], str]:
    """SB3 SAC with the sizes of our `sac`; a callback times each step once learning has started."""
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(threads)
    from stable_baselines3.common.callbacks import BaseCallback

    class Stamps(BaseCallback):
        def __init__(self):
            super().__init__()
            self.stamps = []

        def _on_step(self) -> bool:
            if self.num_timesteps > warmup_steps:  # a gradient step follows this env step
                self.stamps.append(time.perf_counter())
            return True

    os.environ["SB3_LOGDIR"] = os.getcwd()  # SB3 makes a log folder: in the scratch directory, not in /tmp
    model = SAC("MlpPolicy", "Hopper-v4", learning_rate=3e-4, buffer_size=1_000_000, learning_starts=warmup_steps,
                batch_size=256, train_freq=1, gradient_steps=1, ent_coef="auto", seed=1, device=device,
                policy_kwargs={"net_arch": {"pi": [256, 256], "qf": [256, 256]}})
    callback = Stamps()
    model.learn(total_timesteps=warmup_steps + steps, callback=callback)
    return callback.stamps, "float32"


def default_threads(name: str) -> int | None:
    """The thread count a contender runs with when nobody says: ours one, SB3 torch's default, a peer its own."""
    if name not in CONTENDERS:
        return None
    return os.cpu_count() if CONTENDERS[name] is None else OUR_DEFAULT_THREADS


def worker(name: str, warmup_steps: int, steps: int, skip: int, threads: int, device: str) -> None:
    """One measurement; prints its result as the last line of stdout (JSON)."""
    contender = CONTENDERS[name]
    stamps, precision = (run_sb3(warmup_steps, steps, threads, device) if contender is None else
                         run_ours(contender, warmup_steps, steps, threads, device))
    if len(stamps) < skip + 2:
        sys.exit(f"{name}: only {len(stamps)} updates, need more than {skip + 1} (raise --steps)")
    updates_per_s = (len(stamps) - 1 - skip) / (stamps[-1] - stamps[skip])
    steps_per_update = 1 if contender is None else contender.env_steps_per_update
    print(json.dumps({"updates_per_s": updates_per_s, "env_steps_per_s": updates_per_s * steps_per_update,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "precision": precision}))


# --------------------------------------------------------------------------- parent side
def worker_command(name: str, threads: int, args: argparse.Namespace) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--worker", name, "--warmup-steps", str(args.warmup_steps),
            "--steps", str(args.steps), "--skip", str(args.skip), "--threads", str(threads), "--device", args.device]


def measure(name: str, threads: int, args: argparse.Namespace, concurrent: int = 1) -> dict:
    """Run `concurrent` workers at once, each a fresh process in a scratch directory of its own (our
    scripts write runs/ there); with several, their env steps/s are summed (and listed)."""
    with tempfile.TemporaryDirectory() as scratch:
        workers = []
        for i in range(concurrent):
            os.makedirs(os.path.join(scratch, str(i)))
            workers.append(subprocess.Popen(worker_command(name, threads, args), cwd=os.path.join(scratch, str(i)),
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [(w, *w.communicate()) for w in workers]
    results = []
    for w, out, err in outputs:
        if w.returncode != 0:
            sys.exit(f"worker {name} failed (exit {w.returncode}):\n{err[-3000:]}")
        results.append(json.loads(out.splitlines()[-1]))
    if concurrent == 1:
        return results[0]
    return {"updates_per_s": sum(r["updates_per_s"] for r in results),
            "env_steps_per_s": sum(r["env_steps_per_s"] for r in results),
            "each": [round(r["env_steps_per_s"], 1) for r in results],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "precision": results[0]["precision"]}


def measure_peer(path: str, args: argparse.Namespace) -> dict:
    """Any other training script, timed by two run lengths: `python PATH --env-id Hopper-v4 --learning-starts
    W --total-timesteps T` for T = W + N and W + 2N, each a fresh process; the difference of their wall times
    is N steps of learning (start-up, warm-up and the end cancel out)."""
    walls = []
    for total in (args.warmup_steps + args.steps, args.warmup_steps + 2 * args.steps):
        command = [sys.executable, os.path.abspath(path), "--env-id", "Hopper-v4", "--learning-starts",
                   str(args.warmup_steps), "--total-timesteps", str(total)]
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            done = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"peer {path} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    rate = args.steps / (walls[1] - walls[0])
    return {"updates_per_s": rate, "env_steps_per_s": rate, "peak_rss_mb": float("nan"), "precision": "its own"}


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine since boot, CPU seconds of our finished workers)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, read("/proc/stat").split()[1:8])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"), children.ru_utime + children.ru_stime


def machine_lines(argv: list[str]) -> list[str]:
    cpuinfo = read("/proc/cpuinfo").splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    shown = " ".join(f"{f} {'yes' if f in flags else 'no'}," for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
    import torch
    capability = f"torch's CPU capability {torch.backends.cpu.get_cpu_capability()}"
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("torch", "gymnasium", "stable-baselines3")
                         if importlib.util.find_spec(p.replace("-", "_")))
    gpu = (f"- GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}\n" if torch.cuda.is_available() else "")
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
            f"{gpu}- nproc: {len(os.sched_getaffinity(0))}, CPU: {cpu}; flags: {shown} {capability}",
            f"- {versions}, Python {platform.python_version()}",
            f"- command: `{shlex.join(['python', *argv])}`"]


def table(results: dict[tuple[str, int], list[dict]]) -> list[str]:
    """One row per (contender, threads); ratios against SB3 at its default threads and at one thread."""
    def median(config, key):
        return statistics.median(r[key] for r in results[config])

    references = [(f"sb3-sac, {n} thread{'s' * (n > 1)}", (SB3_SAC, n)) for n in sorted({default_threads(SB3_SAC), 1},
                                                                                    reverse=True)]
    references = [(label, config) for label, config in references if config in results]
    lines = ["| contender | threads | precision | updates/s (median) | spread (min–max) | env steps/s (median) | " +
             "".join(f"vs {label} (env steps/s) | " for label, _ in references) + "peak RSS (MB) |",
             "|---|---|---|---|---|---|" + "---|" * len(references) + "---|"]
    for (name, threads), runs in results.items():
        rates = [r["updates_per_s"] for r in runs]
        default = " (default)" if threads in (None, default_threads(name.split(" ")[0])) else ""
        ratios = "".join(f" {median((name, threads), 'env_steps_per_s') / median(config, 'env_steps_per_s'):.2f}× |"
                         for _, config in references)
        if "each" in runs[0]:  # concurrent processes: their sum, and each one's rate
            name = f"{name} (each: {', '.join(f'{rate:.0f}' for rate in runs[0]['each'])})"
        lines.append(f"| {name} | {threads or 'its own'}{default} | {runs[0]['precision']} | {statistics.median(rates):.1f} | "
                     f"{min(rates):.1f}–{max(rates):.1f} | {statistics.median(r['env_steps_per_s'] for r in runs):.1f} |"
                     f"{ratios} {statistics.median(r['peak_rss_mb'] for r in runs):.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("contenders", nargs="*", default=["sac", SB3_SAC],
                        help=f"contenders to compare, of: {' '.join(CONTENDERS)} (default: sac sb3-sac)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where every contender trains (ours: --no-cuda, or CUDA; SB3: device=...)")
    parser.add_argument("--threads", nargs="+", default=["1", "default"], metavar="N",
                        help="thread counts each contender runs at; 'default' is its own default "
                        f"(ours {OUR_DEFAULT_THREADS}, SB3 torch's: {os.cpu_count()} here) (default: 1 default)")
    parser.add_argument("--concurrent", nargs=2, action="append", default=[], metavar=("N", "NAME"),
                        help="also run N trials of the contender NAME at once, as plain processes, and sum their "
                        "env steps/s (e.g. 8 sac: eight trials sharing one GPU); repeatable")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=PATH",
                        help="also time another script by two run lengths (it must take --env-id, "
                        "--learning-starts and --total-timesteps), e.g. cleanrl=path/to/sac_continuous_action.py")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each runs every configuration once")
    parser.add_argument("--warmup-steps", type=int, default=1000, help="W: random steps before learning starts")
    parser.add_argument("--steps", type=int, default=5000, help="N: steps with one update each after W")
    parser.add_argument("--skip", type=int, default=100, help="K: first updates left out of the rate")
    parser.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.warmup_steps, args.steps, args.skip, int(args.threads[0]), args.device)
        return

    concurrent = [(int(n), name) for n, name in args.concurrent if n.isdigit() and int(n) > 0]
    unknown = set(args.contenders) - set(CONTENDERS) | {name for _, name in concurrent} - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s) {' '.join(sorted(unknown))}; known: {' '.join(CONTENDERS)}")
    if len(concurrent) != len(args.concurrent):
        parser.error("--concurrent takes a positive number of trials and a contender, e.g. --concurrent 8 sac")
    if any(t != "default" and not (t.isdigit() and int(t) > 0) for t in args.threads):
        parser.error(f"--threads takes positive numbers or 'default', got {' '.join(args.threads)}")
    peers = dict(peer.split("=", 1) for peer in args.peer if "=" in peer)
    if len(peers) != len(args.peer) or not all(os.path.isfile(path) for path in peers.values()):
        parser.error(f"--peer takes NAME=PATH with PATH a file, got {' '.join(args.peer)}")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            sys.exit("bench.py: --device cuda, but torch sees no CUDA GPU here")
    names = []
    for name in dict.fromkeys([*args.contenders, *(name for _, name in concurrent)]):
        contender = CONTENDERS[name]
        if contender is not None and not os.path.exists(os.path.join(REPO, contender.script)):
            print(f"note: skipped {name}: {contender.script} does not exist")
        else:
            names.append(name)
    if SB3_SAC in names and not importlib.util.find_spec("stable_baselines3"):
        sys.exit("sb3-sac needs stable-baselines3: run with the benchmark venv, see the docstring of benchmarks/bench.py")
    configs = list(dict.fromkeys((name, default_threads(name) if t == "default" else int(t))
                                 for name in args.contenders if name in names for t in args.threads))
    if not configs and not concurrent and not peers:
        sys.exit("nothing to run")
    start, load_before, (busy_before, ours_before) = time.time(), read("/proc/loadavg").split()[0], cpu_seconds()
    results = {config: [] for config in configs}
    for r in range(args.repeats):
        for name, threads in configs[r % len(configs):] + configs[:r % len(configs)] if configs else []:
            results[name, threads].append(measure(name, threads, args))
            print(f"round {r + 1}/{args.repeats} {name}, {threads} thread(s): "
                  f"{results[name, threads][-1]['env_steps_per_s']:.1f} env steps/s", file=sys.stderr, flush=True)
    for n, name in concurrent:  # once each: N trials at once are N measurements already
        results[f"{name} x{n} at once", default_threads(name)] = [measure(name, default_threads(name), args, n)]
        print(f"{name} x{n} at once: {results[f'{name} x{n} at once', default_threads(name)][0]['env_steps_per_s']:.1f}"
              " env steps/s summed", file=sys.stderr, flush=True)
    for label, path in peers.items():
        results[label, None] = [measure_peer(path, args) for _ in range(args.repeats)]
        print(f"{label}: {results[label, None][-1]['env_steps_per_s']:.1f} env steps/s", file=sys.stderr, flush=True)
    wall, load_after, (busy_after, ours_after) = time.time() - start, read("/proc/loadavg").split()[0], cpu_seconds()
    others = (busy_after - busy_before) - (ours_after - ours_before)
    print("\n".join(machine_lines(sys.argv)))
    print(f"- {args.device}; Hopper-v4 (mede-sep-ant: MultiDirectionAnt-v0), W={args.warmup_steps} warm-up steps, "
          f"N={args.steps} learning steps, first K={args.skip} skipped, {args.repeats} interleaved repeats; "
          f"took {wall:.0f} s")
    print(f"- interference: other processes used {others:.0f} CPU-s of the {wall * os.cpu_count():.0f} available "
          f"({100 * others / (wall * os.cpu_count()):.0f}%); 1-min load average {load_before} before, {load_after} after\n")
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
