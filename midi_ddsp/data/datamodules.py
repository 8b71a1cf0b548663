"""LightningDataModules over a feature cache.

Distributed training: the dataloaders are plain ``DataLoader(dataset, shuffle=...)``; Lightning's
``Trainer(use_distributed_sampler=True)`` (the default) swaps in a ``DistributedSampler`` under DDP, so
each rank sees its own shard and ``set_epoch`` reshuffles per epoch. Nothing here hand-rolls sharding.
"""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from midi_ddsp.data.datasets import NoteSequenceDataset, SynthesisClipDataset, collate_pieces


class SynthesisDataModule(pl.LightningDataModule):
    """4 s clips for the synthesis level (analysis / generator training).

    Args:
        cache_dir: feature cache (see :mod:`midi_ddsp.data.cache`).
        batch_size: clips per batch (per process under DDP).
        num_workers: DataLoader worker processes.
        clip_s: seconds per clip (4 s = 1000 frames at 250 Hz); samples follow from the cache's sample rate.
        train_hop_s: start-to-start distance of training clips in seconds (overlap when < clip_s);
            validation/test clips never overlap.
        random_offset: jitter training clip starts by whole frames (augmentation).
        min_active_fraction: drop near-silent clips.
        valid_fraction, test_fraction, salt: the deterministic by-piece split.
    """

    def __init__(self, cache_dir: str, batch_size: int = 16, num_workers: int = 0, clip_s: float = 4.0,
                 train_hop_s: float | None = 2.0, random_offset: bool = True,
                 min_active_fraction: float = 0.25, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                 salt: str = "midi-ddsp", pin_memory: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.cache_dir = str(cache_dir)
        self._sets: dict[str, SynthesisClipDataset] = {}

    def _make(self, split: str) -> SynthesisClipDataset:
        from ..training.targets import cache_sample_rate

        hp = self.hparams
        train = split == "train"
        rate = cache_sample_rate(self.cache_dir)
        clip = int(round(hp.clip_s * rate))
        hop = int(round(hp.train_hop_s * rate)) if train and hp.train_hop_s else clip
        return SynthesisClipDataset(
            self.cache_dir, split=split, clip_samples=clip, hop_samples=hop,
            random_offset=hp.random_offset and train, min_active_fraction=hp.min_active_fraction,
            valid_fraction=hp.valid_fraction, test_fraction=hp.test_fraction, salt=hp.salt)

    def setup(self, stage: str | None = None) -> None:
        if not (Path(self.cache_dir) / "manifest.json").is_file():
            raise FileNotFoundError(f"no feature cache at {self.cache_dir}; run `midi-ddsp data cache-features`")
        wanted = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",), "predict": ("test",),
                  None: ("train", "valid", "test")}[stage]
        for s in wanted:
            if s not in self._sets:
                self._sets[s] = self._make(s)

    def dataset(self, split: str) -> SynthesisClipDataset:
        if split not in self._sets:
            self._sets[split] = self._make(split)
        return self._sets[split]

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(self.dataset(split), batch_size=hp.batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=hp.num_workers, pin_memory=hp.pin_memory,
                          persistent_workers=hp.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)


class NoteSequenceDataModule(pl.LightningDataModule):
    """Whole pieces as note sequences (performance level); batches are lists of piece dicts."""

    def __init__(self, cache_dir: str, batch_size: int = 8, num_workers: int = 0, valid_fraction: float = 0.1,
                 test_fraction: float = 0.1, salt: str = "midi-ddsp"):
        super().__init__()
        self.save_hyperparameters()
        self.cache_dir = str(cache_dir)
        self._sets: dict[str, NoteSequenceDataset] = {}

    def dataset(self, split: str) -> NoteSequenceDataset:
        if split not in self._sets:
            hp = self.hparams
            self._sets[split] = NoteSequenceDataset(self.cache_dir, split, hp.valid_fraction, hp.test_fraction,
                                                    hp.salt)
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:
        if not (Path(self.cache_dir) / "manifest.json").is_file():
            raise FileNotFoundError(f"no feature cache at {self.cache_dir}; run `midi-ddsp data cache-features`")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(self.dataset(split), batch_size=hp.batch_size, shuffle=shuffle,
                          num_workers=hp.num_workers, collate_fn=collate_pieces,
                          persistent_workers=hp.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
