"""The expression model's Lightning DataModule: note neighbourhoods of a data-contract directory
(:mod:`midi_ddsp.performance.neighbourhood`) for train (augmented, shuffled), valid and test. Kept apart from
the dataset functions so that rendering never imports Lightning."""
from __future__ import annotations

from typing import Any, Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from .dataset import PieceNotes, collate_pieces, load_notes_split
from .neighbourhood import Neighbourhood, NeighbourhoodWindows


class PerformanceDataModule(pl.LightningDataModule):
    """Neighbourhoods of the data-contract directory ``data_dir``: train (every ``hop``-th note's, augmented,
    shuffled), valid and test (every ``eval_hop``-th note's, not augmented).

    Args:
        neighbourhood: :class:`Neighbourhood` fields (the same must reach the task, which stores them).
    """

    def __init__(self, data_dir: str, neighbourhood: dict[str, Any] | None = None, hop: int = 1,
                 eval_hop: int = 4, batch_size: int = 64, num_workers: int = 0, rest_threshold_s: float = 0.1,
                 transpose: int = 3, stretch: Sequence[float] = (0.9, 1.1), augment: bool = True,
                 control_range: Sequence[float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.data_dir, self.hop, self.eval_hop = str(data_dir), int(hop), int(eval_hop)
        self.neighbourhood = Neighbourhood.from_dict(dict(neighbourhood or {}))
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.rest_threshold_s, self.transpose, self.stretch = float(rest_threshold_s), int(transpose), tuple(stretch)
        self.augment, self.control_range = bool(augment), tuple(control_range)
        self._pieces: dict[str, list[PieceNotes]] = {}

    def pieces(self, split: str) -> list[PieceNotes]:
        if split not in self._pieces:
            self._pieces[split] = load_notes_split(self.data_dir, split)
        return self._pieces[split]

    def _windows(self, split: str, train: bool) -> NeighbourhoodWindows:
        pieces = self.pieces(split)
        if not pieces:
            raise ValueError(f"{self.data_dir}: split {split!r} has no pieces")
        return NeighbourhoodWindows(pieces, self.neighbourhood, self.hop if train else self.eval_hop,
                                    augment=train and self.augment, transpose=self.transpose,
                                    stretch=self.stretch, control_range=self.control_range,
                                    rest_threshold_s=self.rest_threshold_s)

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
