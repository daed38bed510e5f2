"""Is `torch.compile` worth it? One update of SAC (hidden 256) and of MEDE (|Z| = 4, hidden 256), batch 256,
as the scripts' `train` runs it (the batch's gather from a replay buffer, then the update), on fixed rows
of a buffer of random transitions, timed after 20 warm-up updates (a compiled variant's first call, its compile
time, reported apart), and checked against the eager update:

- on the CPU (one thread): eager against `torch.compile(agent.update)`;
- on CUDA: eager, the scripts' CUDA graphs (`hardware.CudaGraphs`), and `torch.compile` captured as
  the same CUDA graphs (LeanRL's recipe; the scripts' `--compile`, off by default until a GPU shows it faster).

Compiled as `--compile` compiles (`hardware.torch_compile`).

Each variant starts from the same weights and random state and runs the same updates; the largest
difference of its actor's weights from the eager variant's is printed after the first update and
after all of them (fused kernels may reorder sums, and the differences grow over the updates;
inductor is told to draw torch's own random numbers, as eager does).

    .venv/bin/python benchmarks/compile_update.py                 # about 2 minutes on one core; run it alone
    python benchmarks/compile_update.py --device cuda             # about 2 minutes on an H200
"""

import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mede_continuous as mede  # noqa: E402
import sac_continuous as sac  # noqa: E402
from run_utils import hardware  # noqa: E402
from run_utils.buffer import ReplayBuffer  # noqa: E402


def random_buffer(module, device, size: int = 10_000, batch_size: int = 256, obs_dim: int = 11, act_dim: int = 3):
    """A replay buffer of `size` random transitions and the rows of one batch of it, as the scripts train."""
    rng = np.random.default_rng(0)
    rb = ReplayBuffer(module.Batch, size, 1, device)
    for _ in range(size):
        step = dict(obs=rng.normal(size=(1, obs_dim)), actions=rng.uniform(-1, 1, (1, act_dim)), rewards=rng.normal(size=1),
                    next_obs=rng.normal(size=(1, obs_dim)), terminations=rng.uniform(size=1) < 0.05)
        if "z" in module.Batch._fields:
            step["z"] = rng.integers(4, size=1)
        rb.add(**step)
    torch.manual_seed(0)
    return rb, rb.rows(batch_size)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def updates_per_second(update, rows, device, n: int) -> float:
    for step in range(20):
        update(rows, step)
    sync(device)
    start = time.perf_counter()
    for step in range(20, 20 + n):
        update(rows, step)
    sync(device)
    return n / (time.perf_counter() - start)


def largest_difference(a, b) -> float:  # of two actors' weights
    return max((x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--updates", type=int, default=300, help="timed updates per variant")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    key = lambda rows, step: (step % 2 == 0, True)  # noqa: E731 (the scripts' key: policy_frequency 2, tau every step)
    for name, module, agent_class, agent_args in (("SAC", sac, sac.SAC, sac.Args(hidden_dim=256)),
                                                  ("MEDE |Z| = 4", mede, mede.MEDE, mede.Args(num_z=4, hidden_dim=256))):
        torch.manual_seed(0)
        reference = agent_class(11, 3, -np.ones(3), np.ones(3), agent_args, device)
        rb, rows = random_buffer(module, device)
        train = lambda agent: lambda rows, step: agent.update(rb.batch(rows), step)  # noqa: E731 (as main's `train`)
        variants = {"eager": train, "torch.compile": lambda agent: hardware.torch_compile(train(agent))}
        if device.type == "cuda":
            variants = {"eager": train,
                        "CUDA graphs": lambda agent: hardware.CudaGraphs(train(agent), key),
                        "torch.compile + CUDA graphs": lambda agent: hardware.CudaGraphs(hardware.torch_compile(train(agent)), key)}
        rates, agents, firsts = {}, {}, {}
        for variant, make in variants.items():
            agent = agents[variant] = copy.deepcopy(reference)
            torch.manual_seed(1)  # every variant draws the same actions (inductor too: fallback_random)
            update, start = make(agent), time.perf_counter()
            update(rows, 0)
            sync(device)
            first_call = time.perf_counter() - start
            after_one = copy.deepcopy(agent.actor)  # one update: a reordered sum shows, a wrong random draw too
            firsts[variant] = after_one
            rates[variant] = updates_per_second(update, rows, device, args.updates)
            difference = "" if variant == "eager" else \
                (f", largest actor weight difference from eager after 1 update "
                 f"{largest_difference(after_one, firsts['eager']):.1e}, after {args.updates + 21} "
                 f"{largest_difference(agent.actor, agents['eager'].actor):.1e} (reordered sums grow over the updates)")
            print(f"{name} on {device.type}, {variant}: {rates[variant]:.1f} updates/s "
                  f"({rates[variant] / rates['eager']:.2f}x eager), first call {first_call:.1f} s{difference}", flush=True)


if __name__ == "__main__":
    main()
