"""Where one training step's time goes: the script's own `main`, with each phase of the loop timed
(acting, the environment, storing, drawing a batch's rows, the update with its batch's gather, logging and
progress). On CUDA every timed
phase synchronises before and after, so the phases add up to the serialised cost of a step (the
real loop overlaps some of it: its rate is bench.py's). One process, after the random warm-up.

    python benchmarks/profile_step.py --device cuda sac
    python benchmarks/profile_step.py --device cpu mede --steps 500
"""

import argparse
import importlib
import os
import sys
import time
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SCRIPTS = {"sac": ("sac_continuous", ()), "mede": ("mede_continuous", ("--num-z", "4", "--hidden-dim", "256")),
           "mede-sep-ant": ("mede_continuous", ("--env-id", "MultiDirectionAnt-v0", "--num-z", "4", "--separate-networks",
                                                "--hidden-dim", "128", "--alpha", "1", "--reward-scale", "5"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("script", choices=list(SCRIPTS))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--warmup-steps", type=int, default=500)
    parser.add_argument("--steps", type=int, default=1000, help="learning steps timed (after 100 untimed ones)")
    args = parser.parse_args()

    import gymnasium as gym
    import torch

    from run_utils import buffer, cli, run

    name, flags = SCRIPTS[args.script]
    module = importlib.import_module(name)
    totals, learning, inside = defaultdict(float), {"steps": 0}, [0]
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def timed(phase, function):
        def wrapper(*a, **k):
            # untimed: the warm-up and the first updates (captures), and a phase inside another (acting in an update)
            if learning["steps"] <= 100 or inside[0]:
                return function(*a, **k)
            sync()
            start, inside[0] = time.perf_counter(), 1
            try:
                out = function(*a, **k)
                sync()
            finally:
                inside[0] = 0
            totals[phase] += time.perf_counter() - start
            return out
        return wrapper

    def count_steps(function):
        def wrapper(self, *a, **k):
            learning["steps"] += 1
            return function(self, *a, **k)
        return wrapper

    envs_class = gym.wrappers.vector.RecordEpisodeStatistics
    patches = [(envs_class, "step", "environment step"), (buffer.ReplayBuffer, "add", "store the step"),
               (buffer.ReplayBuffer, "rows", "draw a batch's rows"), (run.Run, "log_losses", "NaN watch and logging"),
               (run.Run, "step_done", "progress and checkpoint")]
    for owner, attribute, phase in patches:
        setattr(owner, attribute, timed(phase, getattr(owner, attribute)))
    # main asks the run for acting, then for the update (with its batch's gather): graph replays on CUDA
    make, phases = run.Run.compiled, iter(["act (forward)", "update (with the gather)"])
    run.Run.compiled = lambda self, function, key: timed(next(phases), make(self, function, key))
    run.Run.log_losses = count_steps(run.Run.log_losses)
    command = ["--learning-starts", str(args.warmup_steps), "--total-timesteps", str(args.warmup_steps + 101 + args.steps),
               "--eval-episodes", "0", "--checkpoint-every", "0", *(["--no-cuda"] if args.device == "cpu" else []),
               *flags]
    if "measure_every" in module.Args.__dataclass_fields__:
        command += ["--measure-every", "0"]
    start = time.perf_counter()
    module.main(cli.parse_args(module.Args, module.__file__, command))
    timed_steps = learning["steps"] - 101
    print(f"\n{args.script} on {args.device}: {timed_steps} learning steps timed, ms per step "
          f"(each phase synchronised; {time.perf_counter() - start:.0f} s in all)")
    for phase, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {phase:28} {1000 * seconds / timed_steps:7.3f}")
    print(f"  {'sum of the phases':28} {1000 * sum(totals.values()) / timed_steps:7.3f}")


if __name__ == "__main__":
    main()
