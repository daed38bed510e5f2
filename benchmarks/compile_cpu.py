"""Is `torch.compile` worth it on the CPU? One update of SAC (hidden 256) and of MEDE (|Z| = 4, hidden
256), batch 256, one thread, on a fixed random batch: eager against `torch.compile(agent.update)`, each
after 20 warm-up updates (the compiled one's first call, its compile time, reported apart).

    .venv/bin/python benchmarks/compile_cpu.py          # about 3 minutes on one core; run it alone
"""

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mede_continuous as mede  # noqa: E402
import sac_continuous as sac  # noqa: E402


def random_batch(module, batch_size: int = 256, obs_dim: int = 11, act_dim: int = 3):
    g = torch.Generator().manual_seed(0)
    fields = dict(obs=torch.randn(1, batch_size, obs_dim, generator=g),
                  actions=torch.rand(1, batch_size, act_dim, generator=g) * 2 - 1,
                  rewards=torch.randn(1, batch_size, generator=g), next_obs=torch.randn(1, batch_size, obs_dim, generator=g),
                  terminations=(torch.rand(1, batch_size, generator=g) < 0.05).float())
    if "z" in module.Batch._fields:
        fields["z"] = torch.randint(4, (1, batch_size), generator=g)
    return module.Batch(**fields)


def updates_per_second(update, batch, n: int = 300) -> float:
    for step in range(20):
        update(batch, step)
    start = time.perf_counter()
    for step in range(n):
        update(batch, step)
    return n / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    for name, module, agent_class, args in (("SAC", sac, sac.SAC, sac.Args(hidden_dim=256)),
                                            ("MEDE", mede, mede.MEDE, mede.Args(num_z=4, hidden_dim=256))):
        torch.manual_seed(0)
        agent = agent_class(11, 3, -np.ones(3), np.ones(3), args, torch.device("cpu"))
        batch = random_batch(module)
        eager = updates_per_second(agent.update, batch)
        compiled, start = torch.compile(agent.update), time.perf_counter()
        compiled(batch, 0)
        compile_time = time.perf_counter() - start
        fast = updates_per_second(compiled, batch)
        print(f"{name}: eager {eager:.1f} updates/s, torch.compile {fast:.1f} updates/s ({fast / eager:.2f}x), "
              f"first compiled call {compile_time:.0f} s", flush=True)


if __name__ == "__main__":
    main()
