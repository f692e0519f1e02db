"""Deterministic, resumable data order and augmentation.

``EpochSampler`` draws each epoch's permutation from (seed, epoch) alone, splits it across
DDP ranks, can start part-way into an epoch, and yields (epoch, index) pairs;
``EpochSeededDataset`` seeds every item's random augmentation from (seed, epoch, index)
without touching the global generators. The epoch travels with the index, so persistent
DataLoader workers see it too. A resumed run sees exactly the batches the uninterrupted run
would have seen.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Indices of one epoch for one rank; ``set_epoch(epoch, skip_batches)`` before iterating."""

    def __init__(self, length: int, batch_size: int, seed: int, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, drop_last: bool = True) -> None:
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.shuffle, self.rank, self.world = shuffle, rank, world_size
        self.drop_last = drop_last
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches

    def _rank_indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        per_rank = self.length // self.world
        order = order[:per_rank * self.world]  # equal share per rank
        mine = order[self.rank::self.world]
        if self.drop_last:
            mine = mine[:len(mine) // self.batch_size * self.batch_size]
        return mine

    def batches_per_epoch(self) -> int:
        n = len(self._rank_indices())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        return iter((self.epoch, i) for i in self._rank_indices()[self.skip * self.batch_size:])

    def __len__(self) -> int:
        return max(len(self._rank_indices()) - self.skip * self.batch_size, 0)


class EpochSeededDataset(Dataset):
    """Wraps a dataset so item i of epoch e always draws the same augmentation.

    Indexed by (epoch, index) pairs from ``EpochSampler``; a plain index means epoch 0.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item_seed = (self.seed * 1_000_003 + epoch * 10_007 + index) % 2**31
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            random.seed(item_seed)
            np.random.seed(item_seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
