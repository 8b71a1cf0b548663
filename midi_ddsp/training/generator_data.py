"""Clips for the synthesis generator: the corpus clips plus notes-as-frames conditioning (with each note's
normalised expression controls) and the analysis model's synthesis parameters as auxiliary targets."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.datamodules import SynthesisDataModule
from ..data.datasets import SynthesisClipDataset
from ..conditioning import held_pitch
from .targets import _safe


class GeneratorClipDataset(Dataset):
    """Wraps a SynthesisClipDataset. Adds to each item (F frames):

    ``features`` [F, 11], ``held_pitch`` [F, 1], ``in_note`` [F, 1] (see synthesis.generator.GeneratorInputs),
    ``amplitude`` [F, 1], ``harmonic_distribution`` [F, H], ``noise_magnitudes`` [F, K] (analysis targets),
    ``note_id`` [F] int64: the number of each frame's note among the notes that lie wholly inside the clip
    (0, 1, ...), -1 on rests and on notes cut by the clip's edges.
    """

    def __init__(self, clips: SynthesisClipDataset, targets_dir: str | Path) -> None:
        self.clips = clips
        self.targets_dir = Path(targets_dir)
        self._piece = lru_cache(maxsize=None)(self._load_piece)

    def __len__(self) -> int:
        return len(self.clips)

    def _load_piece(self, i: int) -> dict[str, np.ndarray]:
        entry = self.clips.pieces[i]
        name = _safe(entry["id"])
        with np.load(self.targets_dir / "params" / f"{name}.npz") as z:
            piece = {k: z[k] for k in ("amplitude", "harmonic_distribution", "noise_magnitudes")}
        with np.load(self.targets_dir / "notes" / f"{name}.npz") as z:
            piece["controls"] = z["controls"].astype(np.float32)
        f = self.clips.store.features(i)
        note_index = f["frame_note_index"]
        piece["held_pitch"] = held_pitch(note_index, f["frame_pitch"])
        piece["note_index"] = note_index
        ids = np.flatnonzero(note_index >= 0)
        n = int(note_index.max()) + 1 if ids.size else 0
        piece["note_start"] = np.full(n, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(piece["note_start"], note_index[ids], ids)
        piece["note_end"] = np.zeros(n, np.int64)
        np.maximum.at(piece["note_end"], note_index[ids], ids + 1)
        return piece

    def __getitem__(self, idx: int) -> dict:
        item = self.clips[idx]
        i, s = int(item["piece_index"]), int(item["start_sample"])
        a = s // self.clips.frame_hop
        nf = item["true_f0_hz"].shape[0]
        p = self._piece(i)

        def win(x):
            x = x[a:a + nf]
            if x.shape[0] < nf:
                x = np.concatenate([x, np.repeat(x[-1:], nf - x.shape[0], 0)])
            return x

        ni = win(p["note_index"])
        on = ni >= 0
        first = np.where(on, ni, 0)
        inside = on & (p["note_start"][first] >= a) & (p["note_end"][first] <= a + nf)
        inside &= np.arange(nf) < p["note_index"].shape[0] - a  # not the padding past the piece's end
        note_id = np.where(inside, ni - (ni[inside].min() if inside.any() else 0), -1)
        controls = np.where(on[:, None], p["controls"][first], 0.0).astype(np.float32)
        in_note = on.astype(np.float32)[:, None]
        item["features"] = torch.from_numpy(np.concatenate([controls, item["note_features"].numpy(), in_note], -1))
        item["held_pitch"] = torch.from_numpy(win(p["held_pitch"])[:, None].copy())
        item["in_note"] = torch.from_numpy(in_note)
        item["note_id"] = torch.from_numpy(note_id.astype(np.int64))
        amp = win(p["amplitude"]).astype(np.float32)
        item["amplitude"] = torch.from_numpy(amp.reshape(nf, 1))
        item["harmonic_distribution"] = torch.from_numpy(win(p["harmonic_distribution"]).astype(np.float32))
        item["noise_magnitudes"] = torch.from_numpy(win(p["noise_magnitudes"]).astype(np.float32))
        return item


class GeneratorDataModule(SynthesisDataModule):
    """SynthesisDataModule whose clips carry the generator's conditioning and targets (``targets_dir`` from
    ``midi-ddsp dump-targets``)."""

    def __init__(self, cache_dir: str, targets_dir: str, **kwargs) -> None:
        super().__init__(cache_dir, **kwargs)
        self.targets_dir = str(targets_dir)

    def _make(self, split: str):
        return GeneratorClipDataset(super()._make(split), self.targets_dir)
