"""Note neighbourhoods: the expression prior performs every note from the notes around it alone.

A note's *neighbourhood* is the notes of its voice that start at most ``lookback_s`` before it to at most
``lookahead_s`` after it (the nearest ``max_before`` / ``max_after`` of them in dense passages). The prior
reads that neighbourhood as if it were the whole voice (tokenised and featurised on its own), runs its
decoder from a fresh state at the neighbourhood's first note, and keeps the output of the note itself.
Training draws the same neighbourhoods (:class:`NeighbourhoodWindows`), so what the model sees when it
renders is what it learned from.

Why: a note's controls then depend on nothing farther than a few seconds away, so editing one note of a MIDI
file (pitch, timing, velocity) re-performs only the notes whose neighbourhood holds it, and the audio changes
only near those (:mod:`midi_ddsp.generation` keeps the synthesis local). The random numbers of every note are
keyed to (seed, voice, onset) (:func:`note_uniforms`): a note draws the same numbers in every neighbourhood
that holds it, in every render with that seed, whatever was edited elsewhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from midi_ddsp.note_level.notes import N_CONTROLS

from .dataset import PieceNotes, featurize, pad_item

ONSET_KEY_S = 1e-4  #: onsets are keyed to the random numbers at this resolution (seconds)


@dataclass(frozen=True)
class Neighbourhood:
    """Which notes the prior reads to perform one note.

    Attributes:
        lookback_s: earliest onset read, in seconds before the note's onset.
        lookahead_s: latest onset read, in seconds after the note's onset.
        max_before, max_after: at most this many notes before / after the note (the nearest ones).
    """

    lookback_s: float = 2.0
    lookahead_s: float = 2.0
    max_before: int = 24
    max_after: int = 12

    def bounds(self, onset_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Note index ranges ``[lo[i], hi[i])`` of every note's neighbourhood (onsets sorted, seconds)."""
        onset = np.asarray(onset_s, dtype=np.float64)
        i = np.arange(len(onset))
        lo = np.maximum(np.searchsorted(onset, onset - self.lookback_s, "left"), i - self.max_before)
        hi = np.minimum(np.searchsorted(onset, onset + self.lookahead_s, "right"), i + 1 + self.max_after)
        return lo, hi

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Neighbourhood":
        d = dict(d or {})
        return cls(float(d.get("lookback_s", cls.lookback_s)), float(d.get("lookahead_s", cls.lookahead_s)),
                   int(d.get("max_before", cls.max_before)), int(d.get("max_after", cls.max_after)))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (a bijection that scatters every input bit)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def note_uniforms(key: int, onset_s: np.ndarray) -> np.ndarray:
    """[N, 6] float32 uniforms in [0, 1), a pure function of ``key`` (any int: a voice's seed) and each onset
    (at :data:`ONSET_KEY_S` resolution): a counter-based generator, so a note's numbers do not depend on
    which or how many other notes there are."""
    from midi_ddsp.generation import derive_seed

    base = np.uint64(derive_seed(int(key), 0x9E7F0))
    ticks = np.rint(np.asarray(onset_s, dtype=np.float64) / ONSET_KEY_S).astype(np.int64).view(np.uint64)
    golden = np.uint64(0x9E3779B97F4A7C15)
    note = _mix64(_mix64(ticks * golden + base))                            # [N]
    k = np.arange(1, N_CONTROLS + 1, dtype=np.uint64)
    bits = _mix64(note[:, None] + k[None] * golden)                        # [N, 6]
    return ((bits >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)


class NeighbourhoodWindows(Dataset):
    """Training items: the neighbourhood of every ``hop``-th note of every piece, tokenised on its own.

    Each item is a dict as :func:`midi_ddsp.performance.dataset.pad_item` makes (``pitch``, ``features``,
    ``controls`` clamped to ``control_range``, ``is_rest``, ``mask``, ``instrument``); the loss covers every
    note token of the window (items differ in length; collate with ``collate_pieces``).

    Args:
        pieces: voices with controls.
        neighbourhood: the windows (as rendering uses them).
        hop: take every ``hop``-th note as a window's centre.
        augment: random transposition (uniform integer in +-``transpose``, kept inside 0..127) and
            time-stretch (uniform in ``stretch``, applied before the neighbourhood is chosen) per item,
            from torch's global RNG (reproducible under ``seed_everything``).
    """

    def __init__(self, pieces: Sequence[PieceNotes], neighbourhood: Neighbourhood = Neighbourhood(), hop: int = 1,
                 augment: bool = False, transpose: int = 3, stretch: Sequence[float] = (0.9, 1.1),
                 control_range: Sequence[float] = (0.0, 1.0), rest_threshold_s: float = 0.1) -> None:
        self.pieces = [p for p in pieces if len(p) > 0]
        self.neighbourhood, self.augment, self.transpose = neighbourhood, bool(augment), int(transpose)
        self.stretch = (float(stretch[0]), float(stretch[1]))
        self.control_range = (float(control_range[0]), float(control_range[1]))
        self.rest_threshold_s = float(rest_threshold_s)
        self.index = np.array([(i, j) for i, p in enumerate(self.pieces) for j in range(0, len(p), max(int(hop), 1))],
                              dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        i, j = (int(v) for v in self.index[item])
        piece = self.pieces[i]
        transpose, stretch = 0, 1.0
        if self.augment:
            lo = max(-self.transpose, -int(piece.pitch.min()))
            hi = min(self.transpose, 127 - int(piece.pitch.max()))
            transpose = int(torch.randint(lo, hi + 1, ()))
            stretch = self.stretch[0] + (self.stretch[1] - self.stretch[0]) * float(torch.rand(()))
        lo, hi = self.neighbourhood.bounds(piece.onset_s * stretch)
        tok = piece.window_tokens(int(lo[j]), int(hi[j]), self.rest_threshold_s, stretch)
        pitch, feats = featurize(tok, transpose)
        controls = np.clip(tok.controls, *self.control_range) * (~tok.is_rest)[:, None]
        return pad_item(pitch, feats, controls, tok.is_rest, tok.instrument_id, len(tok))


__all__ = ["ONSET_KEY_S", "Neighbourhood", "note_uniforms", "NeighbourhoodWindows"]
