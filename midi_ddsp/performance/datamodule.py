"""The expression model's Lightning DataModule: windows of a data-contract directory
(:mod:`midi_ddsp.performance.dataset`) for train (augmented, shuffled), valid and test. Kept apart from the
dataset functions so that rendering, which needs only :func:`~midi_ddsp.performance.dataset.featurize`, never
imports Lightning."""
from __future__ import annotations

from typing import Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from .dataset import PerformanceWindows, PieceTokens, collate_pieces, load_split


class PerformanceDataModule(pl.LightningDataModule):
    """Windows of the data-contract directory ``data_dir`` for train (augmented, shuffled), valid and test.

    Validation and test windows do not overlap (hop = window) and are not augmented.
    """

    def __init__(self, data_dir: str, window: int = 64, hop: int = 8, batch_size: int = 64, num_workers: int = 0,
                 rest_threshold_s: float = 0.1, transpose: int = 3, stretch: Sequence[float] = (0.9, 1.1),
                 augment: bool = True, control_range: Sequence[float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.data_dir, self.window, self.hop = str(data_dir), int(window), int(hop)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.rest_threshold_s, self.transpose, self.stretch = float(rest_threshold_s), int(transpose), tuple(stretch)
        self.augment, self.control_range = bool(augment), tuple(control_range)
        self._pieces: dict[str, list[PieceTokens]] = {}

    def pieces(self, split: str) -> list[PieceTokens]:
        if split not in self._pieces:
            self._pieces[split] = load_split(self.data_dir, split, self.rest_threshold_s)
        return self._pieces[split]

    def _windows(self, split: str, train: bool) -> PerformanceWindows:
        pieces = self.pieces(split)
        if not pieces:
            raise ValueError(f"{self.data_dir}: split {split!r} has no pieces")
        return PerformanceWindows(pieces, self.window, self.hop if train else self.window,
                                  augment=train and self.augment, transpose=self.transpose, stretch=self.stretch,
                                  control_range=self.control_range)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=collate_pieces, drop_last=shuffle and len(ds) > self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._windows("train", True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._windows("valid", False), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._windows("test", False), shuffle=False)
