"""Notes + per-note controls -> the synthesis generator's frame-level inputs (numpy, then batched tensors)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .note_level.frames import NoteFrames, expand_to_frames
from .synthesis.generator import GeneratorInputs


def held_pitch(note_index: np.ndarray, pitch: np.ndarray, default: float = 60.0) -> np.ndarray:
    """float32 [n_frames]: each frame's note pitch; rests hold the previous note's pitch (leading rests the
    first note's), so the synthesizer's f0 never drops to 0 Hz between notes.

    Args:
        note_index: [n_frames] note index per frame, -1 on rests. pitch: [n_frames] MIDI pitch per frame.
    """
    on = note_index >= 0
    if not on.any():
        return np.full(note_index.shape[0], default, dtype=np.float32)
    last = np.maximum.accumulate(np.where(on, np.arange(on.size), -1))
    last = np.where(last < 0, np.flatnonzero(on)[0], last)
    return pitch[last].astype(np.float32)


def frame_inputs(frames: NoteFrames, controls: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame generator inputs for one voice.

    Args:
        frames: the voice on the frame grid.
        controls: [n_notes, 6] normalised expression controls (CONTROL_NAMES order).
    Returns:
        ``features`` [n_frames, 11], ``held_pitch`` [n_frames, 1] (MIDI), ``in_note`` [n_frames, 1].
    """
    in_note = (frames.note_index >= 0).astype(np.float32)[:, None]
    features = np.concatenate(
        [expand_to_frames(np.asarray(controls, dtype=np.float32), frames), frames.features(), in_note], axis=-1)
    return {"features": features.astype(np.float32), "held_pitch": held_pitch(frames.note_index, frames.pitch)[:, None], "in_note": in_note}


def batch_inputs(items: Sequence[dict[str, np.ndarray]], instrument_ids: Sequence[int],
                 device: torch.device | str = "cpu") -> GeneratorInputs:
    """Stack per-voice frame inputs (equal lengths) into a GeneratorInputs batch."""
    stack = {k: torch.from_numpy(np.stack([it[k] for it in items])).to(device) for k in items[0]}
    return GeneratorInputs(stack["features"], stack["held_pitch"], stack["in_note"],
                           torch.as_tensor(list(instrument_ids), dtype=torch.long, device=device))
