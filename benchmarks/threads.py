"""Training speed under contention: one run, two runs side by side, each alone and next to a busy neighbour.

A 2-core machine is rarely free: a second seed started with `&`, a test run, an editor. This
measures the environment steps per second of the learning phase of the README's main command
(MEDE, Hopper-v4, |Z| = 4) under each thread setting, in four situations:

    alone                one run, nothing else on the machine
    + busy neighbour     one run next to a process that spins one core
    two side by side     two runs at once (seeds 1 and 2), as a shell loop with `&` starts them
    two + neighbour      the same with the spinning process too

Run from the repository root (about 2 minutes per setting and situation):

    .venv/bin/python benchmarks/threads.py                     # every setting below
    .venv/bin/python benchmarks/threads.py --settings default "threads 2"

A setting is a set of flags or environment variables given to every run. How the rate is
read: every run logs its losses every 100 updates to TensorBoard, each event with its wall
time; after `--seconds` the runs get SIGTERM (they checkpoint and exit) and the rate is the
steps between the first learning-phase event after `--skip-seconds` and the last one, over
the wall time between them. Nothing else may run on the machine while this measures.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [os.path.join(REPO, "mede_continuous.py"), "--env-id", "Hopper-v4", "--num-z", "4",
           "--learning-starts", "1000", "--checkpoint-every", "0", "--eval-episodes", "0", "--buffer-size", "100000"]
SETTINGS = {  # name: (extra flags, extra environment variables)
    "default": ([], {}),
    "threads 2": (["--threads", "2"], {}),
    "OMP_NUM_THREADS=2": ([], {"OMP_NUM_THREADS": "2"}),
    "OMP_NUM_THREADS=1": ([], {"OMP_NUM_THREADS": "1"}),
    "OMP_WAIT_POLICY=PASSIVE": ([], {"OMP_WAIT_POLICY": "PASSIVE"}),
}
SITUATIONS = {"alone": (1, False), "+ busy neighbour": (1, True), "two side by side": (2, False),
              "two + neighbour": (2, True)}


def learning_rate(run_dir: str, skip_seconds: float) -> float | None:
    """Environment steps per second between the loss events of the learning phase."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    if "losses/qf_loss" not in events.Tags()["scalars"]:
        return None
    points = events.Scalars("losses/qf_loss")
    start = points[0].wall_time + skip_seconds
    points = [p for p in points if p.wall_time >= start]
    if len(points) < 2:
        return None
    return (points[-1].step - points[0].step) / (points[-1].wall_time - points[0].wall_time)


def measure(setting: str, runs: int, neighbour: bool, seconds: float, skip_seconds: float) -> list[float | None]:
    flags, env_vars = SETTINGS[setting]
    env = {**os.environ, **env_vars}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    with tempfile.TemporaryDirectory() as scratch:
        procs = [subprocess.Popen([sys.executable, *COMMAND, "--seed", str(seed + 1), *flags], cwd=scratch, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for seed in range(runs)]
        time.sleep(seconds)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        if spinner is not None:
            spinner.kill()
            spinner.wait()
        run_dirs = sorted(glob.glob(os.path.join(scratch, "runs", "*")))
        return [learning_rate(run_dir, skip_seconds) for run_dir in run_dirs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="thread settings to compare (default: all)")
    parser.add_argument("--situations", nargs="+", default=list(SITUATIONS), choices=list(SITUATIONS),
                        help="situations to measure each setting in (default: all)")
    parser.add_argument("--seconds", type=float, default=100.0, help="wall time of each measurement (default: 100)")
    parser.add_argument("--skip-seconds", type=float, default=15.0,
                        help="learning-phase seconds left out at the start (default: 15)")
    args = parser.parse_args()
    print(f"date {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, command: {' '.join(COMMAND[1:])}")
    print("| setting | " + " | ".join(args.situations) + " |")
    print("|---|" + "---|" * len(args.situations))
    for setting in args.settings:
        cells = []
        for situation in args.situations:
            runs, neighbour = SITUATIONS[situation]
            rates = measure(setting, runs, neighbour, args.seconds, args.skip_seconds)
            cells.append(" + ".join("-" if r is None else f"{r:.0f}" for r in rates))
        print(f"| {setting} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
