"""A synthetic data module of harmonic tones with vibrato: checks that a training stage runs end to end
(on a new machine, under DDP, after a resume) without building a corpus. Not for real models."""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..note_level.frames import notes_to_frames
from ..note_level.notes import Note, NoteSequence
from ..conditioning import frame_inputs


class SyntheticTones(Dataset):
    """Item ``i``: one note (random pitch, vibrato, decaying harmonics) surrounded by silence.

    Keys: ``audio`` [samples], ``true_f0_hz`` [frames, 1], ``instrument_id`` (), and the synthesis generator's
    ``features`` [frames, 11], ``held_pitch`` [frames, 1], ``in_note`` [frames, 1].
    """

    def __init__(self, n_items: int = 64, clip_seconds: float = 1.0, sample_rate: int = 16000,
                 frame_rate: int = 250, seed: int = 0) -> None:
        self.n_items, self.sample_rate, self.frame_rate, self.seed = n_items, sample_rate, frame_rate, seed
        self.n_frames = int(round(clip_seconds * frame_rate))
        self.n_samples = self.n_frames * (sample_rate // frame_rate)

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(self.seed * 100003 + i)
        pitch = int(rng.integers(55, 80))
        dur = self.n_frames / self.frame_rate
        onset, offset = 0.1 * dur, 0.8 * dur
        t_frames = np.arange(self.n_frames) / self.frame_rate
        f0 = 440.0 * 2 ** ((pitch - 69 + 0.3 * np.sin(2 * np.pi * 5.5 * t_frames)) / 12)
        t = np.arange(self.n_samples) / self.sample_rate
        f0_s = np.interp(t, t_frames, f0)
        phase = 2 * np.pi * np.cumsum(f0_s) / self.sample_rate
        env = np.clip((t - onset) / 0.03, 0, 1) * np.clip((offset - t) / 0.05 + 1, 0, 1)
        audio = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)) * env
        frames = notes_to_frames(NoteSequence((Note(pitch, onset, offset),), "violin"), self.n_frames, self.frame_rate)
        item = {k: torch.from_numpy(v) for k, v in frame_inputs(frames, np.full((1, 6), 0.5)).items()}
        item.update(audio=torch.from_numpy(audio.astype(np.float32)),
                    true_f0_hz=torch.from_numpy(f0.astype(np.float32))[:, None],
                    instrument_id=torch.tensor(int(rng.integers(0, 13))))
        return item


class SyntheticDataModule(pl.LightningDataModule):
    def __init__(self, n_items: int = 64, clip_seconds: float = 1.0, batch_size: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.train_set = SyntheticTones(n_items, clip_seconds, seed=seed)
        self.valid_set = SyntheticTones(max(2, n_items // 8), clip_seconds, seed=seed + 1)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.valid_set, batch_size=self.batch_size)
