"""The replay buffer: storage, the same for every script, as CleanRL takes Stable-Baselines3's.

What a script stores is its own: the fields of its `Batch` (a NamedTuple of tensors), e.g. obs,
actions, rewards, next_obs, terminations and z. The buffer keeps M buffers side by side (M = 1,
or one per agent with --separate-networks), preallocated on the run's device as [capacity, M, width]
when the first step is stored: every env step writes one row, agent m's transition in column m,
its fields side by side. So storing a step is one copy to the device and a batch is one gather,
which on CUDA runs inside the update's graph (`rows` outside it, `batch(rows)` inside).
"""

import math

import numpy as np
import torch


class ReplayBuffer:
    """A ring buffer of `capacity` rows of the fields of `batch_type`, on `device`."""

    def __init__(self, batch_type, capacity: int, members: int, device: torch.device):
        self.batch_type, self.capacity, self.members, self.device = batch_type, capacity, members, device
        self.storage: torch.Tensor | None = None  # [capacity, M, width] float32, allocated by the first `add`
        self.layout: dict[str, tuple[slice, tuple, torch.dtype]] = {}  # field -> its columns, shape, dtype
        self.member_index = torch.arange(members, device=device).unsqueeze(1)  # [M, 1]
        self.pos, self.size = 0, 0

    def allocate(self, examples: dict) -> None:
        """The layout of a row, from one example of each field (an array with a leading axis of M):
        int64 for an index (one integer per env, such as z; stored as a float, exact below 2^24),
        float32 for everything else (an integer observation is stored and returned as floats)."""
        start = 0
        for name in self.batch_type._fields:
            value = np.asarray(examples[name])
            index = np.issubdtype(value.dtype, np.integer) and value.shape == (self.members,)
            width = math.prod(value.shape[1:])
            self.layout[name] = slice(start, start + width), value.shape[1:], torch.long if index else torch.float32
            start += width
        self.storage = torch.zeros(self.capacity, self.members, start, device=self.device)

    def add(self, **step) -> None:
        """Store one step of the M envs: every field of the batch type, as an array with a leading axis of M."""
        assert set(step) == set(self.batch_type._fields), f"store {self.batch_type._fields}, got {sorted(step)}"
        if self.storage is None:
            self.allocate(step)
        row = np.concatenate([np.asarray(step[name], dtype=np.float32).reshape(self.members, -1)
                              for name in self.batch_type._fields], axis=1)
        self.storage[self.pos] = torch.from_numpy(row)  # one copy to the device
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def rows(self, batch_size: int) -> torch.Tensor:
        """Row indices of an independent batch for every member: [M, batch_size], uniform over the filled rows."""
        return torch.randint(0, self.size, (self.members, batch_size), device=self.device)

    def batch(self, rows: torch.Tensor):
        """The batch at `rows` [M, batch_size]: a batch type of tensors [M, batch_size, ...], views of one gather
        (an index field, such as z, converted to int64)."""
        gathered = self.storage[rows, self.member_index]  # [M, batch_size, width]
        return self.batch_type(*(self.field(gathered, name) for name in self.batch_type._fields))

    def sample(self, batch_size: int):
        """An independent batch for every member: `batch(rows(batch_size))`."""
        return self.batch(self.rows(batch_size))

    def field(self, packed: torch.Tensor, name: str) -> torch.Tensor:
        """Field `name` of packed rows [..., width] as [..., *its shape], in its dtype."""
        columns, shape, dtype = self.layout[name]
        return packed[..., columns].reshape(*packed.shape[:-1], *shape).to(dtype)

    def state_dict(self) -> dict:
        """The filled rows only, field by field, copied to the CPU (a slice would keep the whole
        preallocated storage): {name: [size, M, ...]}, int64 for an index, as the checkpoints before
        the rows were packed."""
        filled = self.storage[: self.size] if self.storage is not None else None
        compact = lambda t: t.cpu() if t.is_cuda else t.clone()  # noqa: E731  (a CPU view would keep the storage)
        return {**{name: compact(self.field(filled, name)) for name in self.layout}, "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.size = state["pos"], state["size"]
        if self.size and self.storage is None:
            self.allocate({name: state[name][0].numpy() for name in self.batch_type._fields})
        for name, (columns, _, _) in self.layout.items():
            self.storage[: self.size, :, columns] = state[name].reshape(self.size, self.members, -1).to(self.device)
