"""Is `torch.compile` worth it? One update of SAC (hidden 256) and of MEDE (|Z| = 4, hidden 256), batch 256,
on a fixed random batch, timed after 20 warm-up updates (a compiled variant's first call, its compile
time, reported apart), and checked against the eager update:

- on the CPU (one thread): eager against `torch.compile(agent.update)`;
- on CUDA: eager, the scripts' CUDA graphs (`hardware.CudaGraphs`), and `torch.compile` captured as
  the same CUDA graphs (LeanRL's recipe; the scripts have no such option until this says it is faster).

Each variant starts from the same weights and random state and runs the same updates; the largest
difference of its actor's weights from the eager variant's after them is printed (fused kernels and
graphs may reorder sums; inductor is told to draw torch's own random numbers, as eager does).

    .venv/bin/python benchmarks/compile_update.py                 # about 3 minutes on one core; run it alone
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


def random_batch(module, device, batch_size: int = 256, obs_dim: int = 11, act_dim: int = 3):
    g = torch.Generator().manual_seed(0)
    fields = dict(obs=torch.randn(1, batch_size, obs_dim, generator=g),
                  actions=torch.rand(1, batch_size, act_dim, generator=g) * 2 - 1,
                  rewards=torch.randn(1, batch_size, generator=g), next_obs=torch.randn(1, batch_size, obs_dim, generator=g),
                  terminations=(torch.rand(1, batch_size, generator=g) < 0.05).float())
    if "z" in module.Batch._fields:
        fields["z"] = torch.randint(4, (1, batch_size), generator=g)
    return module.Batch(**{name: value.to(device) for name, value in fields.items()})


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def updates_per_second(update, batch, device, n: int) -> float:
    for step in range(20):
        update(batch, step)
    sync(device)
    start = time.perf_counter()
    for step in range(20, 20 + n):
        update(batch, step)
    sync(device)
    return n / (time.perf_counter() - start)


def largest_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.actor.parameters(), b.actor.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--updates", type=int, default=300, help="timed updates per variant")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch._inductor.config.fallback_random = True  # compiled code draws torch's random numbers, as eager does
    if device.type == "cpu":
        torch.set_num_threads(1)
    key = lambda _, step: (step % 2 == 0, True)  # noqa: E731 (the scripts' schedule key: policy_frequency 2, tau every step)
    for name, module, agent_class, agent_args in (("SAC", sac, sac.SAC, sac.Args(hidden_dim=256)),
                                                  ("MEDE |Z| = 4", mede, mede.MEDE, mede.Args(num_z=4, hidden_dim=256))):
        torch.manual_seed(0)
        reference = agent_class(11, 3, -np.ones(3), np.ones(3), agent_args, device)
        batch = random_batch(module, device)
        variants = {"eager": lambda agent: agent.update, "torch.compile": lambda agent: torch.compile(agent.update)}
        if device.type == "cuda":
            variants = {"eager": variants["eager"],
                        "CUDA graphs": lambda agent: hardware.CudaGraphs(agent.update, key),
                        "torch.compile + CUDA graphs": lambda agent: hardware.CudaGraphs(torch.compile(agent.update), key)}
        rates, agents = {}, {}
        for variant, make in variants.items():
            agent = agents[variant] = copy.deepcopy(reference)
            torch.manual_seed(1)  # every variant draws the same actions (inductor too: fallback_random)
            update, start = make(agent), time.perf_counter()
            update(batch, 0)
            sync(device)
            first_call = time.perf_counter() - start
            rates[variant] = updates_per_second(update, batch, device, args.updates)
            difference = "" if variant == "eager" else \
                f", largest actor weight difference from eager {largest_difference(agent, agents['eager']):.1e}"
            print(f"{name} on {device.type}, {variant}: {rates[variant]:.1f} updates/s "
                  f"({rates[variant] / rates['eager']:.2f}x eager), first call {first_call:.1f} s{difference}", flush=True)


if __name__ == "__main__":
    main()
