"""Lightning wrapper of the note expression extractor, to extract controls over a whole dataset with
``Trainer.predict`` (the plain function is :func:`midi_ddsp.note_level.expression.extract_controls`).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pytorch_lightning as pl
import torch

from midi_ddsp.note_level.expression import ControlNormalizer, extract_controls
from midi_ddsp.note_level.frames import NoteFrames

PARAM_KEYS = ("f0_hz", "amplitude", "harmonic_distribution", "noise_magnitudes")


class ExpressionExtractor(pl.LightningModule):
    """Extracts the six controls of every note in a batch.

    Batch (a mapping of tensors, ``B`` examples of ``F`` frames):
        ``pitch`` [B, F] (or [B, F, 1]) written MIDI pitch per frame, 0 on rests;
        ``onsets`` [B, F] onset flags (a note starts at every flag and wherever the pitch changes);
        the synthesis parameters ``f0_hz`` [B, F, 1] Hz, ``amplitude`` [B, F, 1], ``harmonic_distribution``
        [B, F, K], ``noise_magnitudes`` [B, F, J] -- or, if they are missing, ``analysis(batch)`` must return
        them (a ``SynthParams`` or a mapping), e.g. a frozen analysis model;
        optional ``instrument_id`` [B] (long), used by the normalizer.

    ``predict_step`` returns one dict per example with numpy arrays: ``raw`` [n_notes, 6] (physical units),
    ``controls`` [n_notes, 6] (normalised; only with a normalizer), ``note_pitch``, ``note_start``,
    ``note_end`` [n_notes] (frames). Fit a :class:`ControlNormalizer` on the concatenated ``raw`` arrays.
    """

    def __init__(self, normalizer: ControlNormalizer | None = None,
                 analysis: Callable | None = None, frame_rate: float = 250.0):
        super().__init__()
        self.normalizer = normalizer
        self.analysis = analysis
        self.frame_rate = float(frame_rate)

    def forward(self, batch: Mapping) -> list[dict]:
        return self.predict_step(batch, 0)

    @torch.no_grad()
    def predict_step(self, batch: Mapping, batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        params = {k: batch[k] for k in PARAM_KEYS if k in batch}
        if len(params) < len(PARAM_KEYS):
            if self.analysis is None:
                missing = [k for k in PARAM_KEYS if k not in params]
                raise KeyError(f"batch lacks {', '.join(missing)} and no analysis model was given")
            out = self.analysis(batch)
            params = {k: (out[k] if isinstance(out, Mapping) else getattr(out, k)) for k in PARAM_KEYS}
        params = {k: v.detach().float().cpu().numpy() for k, v in params.items()}
        pitch = batch["pitch"].detach().cpu().numpy()
        onsets = batch["onsets"].detach().cpu().numpy()
        inst = batch.get("instrument_id")
        results = []
        for b in range(pitch.shape[0]):  # per example: notes differ in number
            frames = NoteFrames.from_flags(pitch[b].reshape(-1), onsets[b].reshape(-1), self.frame_rate)
            raw = extract_controls(*(params[k][b] for k in PARAM_KEYS), frames)
            item = {"raw": raw, "note_pitch": frames.note_pitch, "note_start": frames.note_start,
                    "note_end": frames.note_end}
            if self.normalizer is not None:
                iid = None if inst is None else int(inst[b])
                item["controls"] = self.normalizer.normalize(raw, iid)
            results.append(item)
        return results


def stack_raw_controls(predictions: list[list[dict]]) -> np.ndarray:
    """Concatenate the ``raw`` arrays of ``Trainer.predict`` output into ``[N, 6]`` (to fit a normalizer)."""
    rows = [item["raw"] for batch in predictions for item in batch]
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 6))


__all__ = ["ExpressionExtractor", "stack_raw_controls"]
