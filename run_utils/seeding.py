"""Every random generator of a run, from its one --seed."""

import random

import numpy as np
import torch


class Seeds:
    """Seeds python's, numpy's and torch's own generators with the seed, and spawns from it one
    independent stream each (numpy `SeedSequence.spawn`) for the env resets, the warm-up actions and
    the z draws: seeding all three with the seed itself would give them one and the same stream."""

    STREAMS = ("envs", "warm_up", "z")

    def __init__(self, seed: int, torch_deterministic: bool):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic = torch_deterministic
        self.streams = dict(zip(self.STREAMS, np.random.SeedSequence(seed).spawn(len(self.STREAMS))))

    def rng(self, stream: str) -> np.random.Generator:
        """A numpy generator on one of the streams ("z": the script's z draws)."""
        return np.random.default_rng(self.streams[stream])

    def int_seed(self, stream: str) -> int:
        """An integer seed from one of the streams, for what takes only an int (gymnasium)."""
        return int(self.streams[stream].generate_state(1)[0])
