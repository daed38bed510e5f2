"""The replay buffer: storage, the same for every script, as CleanRL takes Stable-Baselines3's.

What a script stores is its own: the fields of its `Batch` (a NamedTuple of tensors), e.g. obs,
actions, rewards, next_obs, terminations and z. The buffer keeps M buffers side by side (M = 1,
or one per agent with --separate-networks), preallocated on the run's device as [capacity, M, ...]
when the first step is stored: every env step writes one row, agent m's transition in column m.
"""

import numpy as np
import torch


class ReplayBuffer:
    """A ring buffer of `capacity` rows of the fields of `batch_type`, on `device`."""

    def __init__(self, batch_type, capacity: int, members: int, device: torch.device):
        self.batch_type, self.capacity, self.members, self.device = batch_type, capacity, members, device
        self.columns: dict[str, torch.Tensor] = {}  # allocated by the first `add` (or `load_state_dict`)
        self.member_index = torch.arange(members, device=device).unsqueeze(1)  # [M, 1]
        self.pos, self.size = 0, 0

    def allocate(self, examples: dict) -> None:
        """One column per field, shaped like its example: int64 for an index (one integer per env,
        such as z), float32 for everything else (an integer observation is stored as floats)."""
        for name, value in examples.items():
            value = np.asarray(value)
            index = np.issubdtype(value.dtype, np.integer) and value.shape == (self.members,)
            self.columns[name] = torch.zeros(self.capacity, *value.shape, dtype=torch.long if index else torch.float32,
                                             device=self.device)

    def add(self, **step) -> None:
        """Store one step of the M envs: every field of the batch type, as an array with a leading axis of M."""
        assert set(step) == set(self.batch_type._fields), f"store {self.batch_type._fields}, got {sorted(step)}"
        if not self.columns:
            self.allocate(step)
        for name, value in step.items():
            column = self.columns[name]
            column[self.pos] = torch.as_tensor(value, dtype=column.dtype).to(self.device)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int):
        """An independent batch for every member: a batch type of tensors [M, batch_size, ...]."""
        idx = torch.randint(0, self.size, (self.members, batch_size), device=self.device)
        return self.batch_type(*(self.columns[name][idx, self.member_index] for name in self.batch_type._fields))

    def state_dict(self) -> dict:
        """The filled rows only, copied to the CPU (a slice would keep the whole preallocated storage)."""
        return {**{name: column[: self.size].clone().cpu() for name, column in self.columns.items()},
                "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.size = state["pos"], state["size"]
        if self.size and not self.columns:
            self.allocate({name: state[name][0].numpy() for name in self.batch_type._fields})
        for name, column in self.columns.items():
            column[: self.size] = state[name].to(self.device)
