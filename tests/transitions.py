"""Replay buffers of random transitions, for the tests that compare two ways of computing one update
(test_compile.py on the CPU, test_cuda.py on the GPU)."""

import numpy as np
import torch

from run_utils.buffer import ReplayBuffer


def add_random_steps(rb, module, num_z: int, steps: int, rng) -> None:
    """`steps` random transitions (observations of 5, actions of 2) for each member of `rb` (with separate
    networks, member m's z is m)."""
    members = rb.members
    for _ in range(steps):
        step = dict(obs=rng.normal(size=(members, 5)), actions=rng.uniform(-1, 1, (members, 2)),
                    rewards=rng.normal(size=members), next_obs=rng.normal(size=(members, 5)),
                    terminations=rng.uniform(size=members) < 0.1)
        if "z" in module.Batch._fields:
            step["z"] = np.arange(members) if members > 1 else rng.integers(num_z, size=1)
        rb.add(**step)


def random_buffer(module, device: torch.device, capacity: int, steps: int, members: int = 1, num_z: int = 3,
                  seed: int = 0) -> ReplayBuffer:
    """A replay buffer of `capacity` rows on `device`, the first `steps` filled with random transitions."""
    rb = ReplayBuffer(module.Batch, capacity, members, device)
    add_random_steps(rb, module, num_z, steps, np.random.default_rng(seed))
    return rb
