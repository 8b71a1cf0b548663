"""Note tokens for the performance prior (its training windows are note neighbourhoods, :mod:`.neighbourhood`).

A voice becomes a sequence of *tokens*: one per note, plus an explicit rest token for every gap between
consecutive notes that is at least ``rest_threshold_s`` long. Shorter gaps (articulation) stay inside the
note tokens as "gap before/after" features. Rest tokens carry all-zero controls.

Token inputs to the model:
- ``pitch`` [T] int64: MIDI pitch 0..127, or :data:`REST_PITCH` (128) on rests;
- ``features`` [T, N_FEATURES] float32, see :data:`FEATURE_NAMES`;
- the voice's instrument id (one per sequence).

Features that depend on absolute pitch or absolute time (pitch within the instrument's range, log
durations, gaps) are computed per window *after* augmentation (transposition, time-stretch); the others
(intervals, duration ratios, phrase position, metric phase) are invariant to both and computed once per piece.

Training data contract (one directory): per-piece ``<stem>.npz`` files with ``pitch`` [N] int64,
``onset_s`` [N] float64, ``offset_s`` [N] float64, ``velocity`` [N] int64, ``instrument_id`` () int64,
``controls`` [N, 6] float32 (normalised to about [0, 1], :data:`midi_ddsp.note_level.notes.CONTROL_NAMES`
order), and ``split.json`` mapping each stem to ``"train"``, ``"valid"`` or ``"test"``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from midi_ddsp.instruments import INSTRUMENTS, by_id
from midi_ddsp.note_level.notes import N_CONTROLS

REST_PITCH = 128  #: pitch index of rest tokens (the pitch embedding has 129 rows)
N_PITCHES = 129

#: Piece-level features: invariant to transposition and time-stretch.
_INVARIANT = (
    "interval_prev",      # semitones from the previous note / 12, clipped to +-2 (0 after a rest / at start)
    "interval_next",      # semitones to the next note / 12
    "dur_ratio_prev",     # log2(duration / previous note's duration) / 3, clipped to +-1
    "dur_ratio_next",     # log2(duration / next note's duration) / 3
    "ioi_ratio",          # log2(inter-onset interval / previous one) / 3 (IOI of the last note: its duration)
    "phrase_pos",         # note index within its phrase / (phrase length - 1); phrases split at rest tokens
    "phrase_time_pos",    # (onset - phrase start) / phrase duration
    "phrase_len",         # log(phrase length in notes) / log(64)
    "phrase_start",       # 1 on a phrase's first note
    "phrase_end",         # 1 on a phrase's last note
    "beat_sin", "beat_cos",  # phase of the onset in units of the piece's median inter-onset interval (period 1)
    "bar_sin", "bar_cos",    # ... with period 4 (a bar-like grid)
)
#: Window-level features: recomputed after augmentation.
_VARIANT = (
    "is_rest",            # 1 on rest tokens
    "log_duration",       # log(duration / 0.25 s) / 2
    "velocity",           # MIDI velocity / 127 (0 on rests)
    "pitch_in_range",     # (pitch - instrument low) / (high - low) - 0.5 (0 on rests)
    "gap_before",         # log1p(silence before the onset / 50 ms) / 3 (sequence start counts as 1 s)
    "gap_after",          # log1p(silence after the offset / 50 ms) / 3 (sequence end counts as 1 s)
)
FEATURE_NAMES: tuple[str, ...] = _VARIANT + _INVARIANT
N_FEATURES = len(FEATURE_NAMES)
_EDGE_GAP_S = 1.0


@dataclass
class PieceTokens:
    """One voice as tokens, in raw units (before augmentation and feature scaling).

    Attributes:
        pitch: [T] int64 MIDI pitch (REST_PITCH on rests).
        duration_s: [T] float64 token duration in seconds.
        velocity: [T] int64 (0 on rests).
        gap_before_s / gap_after_s: [T] float64 silence before / after the token in seconds.
        is_rest: [T] bool.
        invariant: [T, len(_INVARIANT)] float32 transposition/stretch-invariant features.
        note_index: [T] int64 index of the note in the input arrays (-1 on rests).
        controls: [T, 6] float32 targets (zeros on rests), or None.
        instrument_id: the voice's instrument id.
    """

    pitch: np.ndarray
    duration_s: np.ndarray
    velocity: np.ndarray
    gap_before_s: np.ndarray
    gap_after_s: np.ndarray
    is_rest: np.ndarray
    invariant: np.ndarray
    note_index: np.ndarray
    controls: np.ndarray | None
    instrument_id: int

    def __len__(self) -> int:
        return len(self.pitch)

    def slice(self, start: int, stop: int) -> "PieceTokens":
        c = None if self.controls is None else self.controls[start:stop]
        return PieceTokens(self.pitch[start:stop], self.duration_s[start:stop], self.velocity[start:stop],
                           self.gap_before_s[start:stop], self.gap_after_s[start:stop], self.is_rest[start:stop],
                           self.invariant[start:stop], self.note_index[start:stop], c, self.instrument_id)


def tokenize(pitch, onset_s, offset_s, velocity, instrument_id: int, controls=None,
             rest_threshold_s: float = 0.1) -> PieceTokens:
    """Notes of one monophonic voice -> tokens with explicit rests (vectorised, no per-note Python loop).

    Args:
        pitch: [N] MIDI pitches; onset_s, offset_s: [N] seconds, sorted by onset; velocity: [N] 1..127.
        instrument_id: id in :data:`midi_ddsp.instruments.INSTRUMENTS`.
        controls: optional [N, 6] per-note targets.
        rest_threshold_s: gaps at least this long become rest tokens. Overlaps (a slightly early next
            onset) are treated as zero gap.
    """
    n = len(np.asarray(pitch))
    return tokenize_windows(pitch, onset_s, offset_s, velocity, instrument_id, [0], [n], controls,
                            rest_threshold_s)[0]


def tokenize_windows(pitch, onset_s, offset_s, velocity, instrument_id: int, lo, hi, controls=None,
                     rest_threshold_s: float = 0.1) -> tuple[PieceTokens, np.ndarray]:
    """Many windows of one voice at once, each tokenised as if notes ``lo[r]:hi[r]`` were the whole voice
    (what :func:`tokenize` gives for each slice), in one vectorised pass.

    Returns the windows' tokens one after another (``note_index`` counts from each window's first note)
    and ``starts`` [R + 1]: window ``r`` holds tokens ``starts[r]:starts[r + 1]``.
    """
    pitch_all = np.asarray(pitch, dtype=np.int64)
    onset_all = np.asarray(onset_s, dtype=np.float64)
    offset_all = np.asarray(offset_s, dtype=np.float64)
    vel_all = np.asarray(velocity, dtype=np.int64)
    N = len(pitch_all)
    if not (len(onset_all) == len(offset_all) == len(vel_all) == N):
        raise ValueError("pitch, onset_s, offset_s and velocity must have the same length")
    if controls is not None:
        controls = np.asarray(controls, dtype=np.float32).reshape(N, N_CONTROLS)
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    count = np.maximum(hi - lo, 0)
    R, M = len(lo), int(count.sum())
    # Flat layout: the notes of window 0, then of window 1, ...
    row = np.repeat(np.arange(R), count)
    row_first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    k = np.arange(M) - row_first[row]                                   # index inside the window
    note = lo[row] + k
    first = k == 0
    last = k == count[row] - 1
    pitch, onset, vel = pitch_all[note], onset_all[note], vel_all[note]
    nxt = np.minimum(np.arange(M) + 1, max(M - 1, 0))                    # next flat element (valid if ~last)
    prv = np.maximum(np.arange(M) - 1, 0)
    # Gaps to the next note of the window; a note's duration never runs into the next onset.
    gap = np.where(last, 0.0, np.maximum(onset[nxt] - offset_all[note], 0.0))
    offset = np.where(last, offset_all[note], np.minimum(offset_all[note], onset[nxt]))
    duration = np.maximum(offset - onset, 1e-3)
    rest_after = ~last & (gap >= rest_threshold_s)
    # Token positions: note e goes to its window's start + k + (rests before it in the window).
    rests_before = np.cumsum(rest_after) - rest_after
    rests_before = rests_before - rests_before[row_first[row]] if M else rests_before
    n_tokens = count + np.bincount(row, weights=rest_after, minlength=R).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int64)
    note_pos = starts[row] + k + rests_before
    T = int(starts[-1])
    is_rest = np.ones(T, dtype=bool)
    is_rest[note_pos] = False
    rest_pos = note_pos[rest_after] + 1

    tok_pitch = np.full(T, REST_PITCH, dtype=np.int64)
    tok_pitch[note_pos] = pitch
    tok_dur = np.empty(T)
    tok_dur[note_pos] = duration
    tok_dur[rest_pos] = gap[rest_after]
    tok_vel = np.zeros(T, dtype=np.int64)
    tok_vel[note_pos] = vel
    note_index = np.full(T, -1, dtype=np.int64)
    note_index[note_pos] = k
    # Silence around notes (a rest token has none of its own): the gap to the neighbour, 1 s at the edges.
    gap_before = np.zeros(T)
    gap_after = np.zeros(T)
    gap_before[note_pos] = np.where(first, _EDGE_GAP_S, gap[prv])
    gap_after[note_pos] = np.where(last, _EDGE_GAP_S, gap)

    # Phrases: runs of notes between rests (or window edges).
    starts_phrase = first | rest_after[prv] & ~first
    ends_phrase = last | rest_after
    first_idx = np.maximum.accumulate(np.where(starts_phrase, np.arange(M), 0)) if M else np.zeros(0, np.int64)
    phrase_id = np.cumsum(starts_phrase) - 1
    plen = np.bincount(phrase_id)[phrase_id] if M else np.zeros(0, np.int64)
    phrase_pos = (np.arange(M) - first_idx) / np.maximum(plen - 1, 1)
    p_start_t = onset[first_idx]
    p_dur = np.maximum(offset[first_idx + plen - 1] - p_start_t, 1e-3)
    phrase_time_pos = (onset - p_start_t) / p_dur
    # Intervals and duration ratios within phrases (0 across rests and at edges).
    d_pitch = (pitch[nxt] - pitch) / 12.0
    d_dur = np.log2(duration[nxt] / duration) / 3.0
    interval_next = np.where(ends_phrase, 0.0, d_pitch)
    dr_next = np.where(ends_phrase, 0.0, -d_dur)
    interval_prev = np.where(starts_phrase, 0.0, d_pitch[prv])
    dr_prev = np.where(starts_phrase, 0.0, d_dur[prv])
    # Metric phase on a grid of the window's median inter-onset interval (tempo-free, stretch-invariant).
    ioi = onset[nxt] - onset
    valid = ~last & (ioi > 1e-3)
    beat = np.full(R, 0.5)
    if valid.any():
        vr, vv = row[valid], ioi[valid]
        order = np.lexsort((vv, vr))
        vv = vv[order]
        m = np.bincount(vr, minlength=R)
        begin = np.concatenate([[0], np.cumsum(m)[:-1]])
        has = m > 0
        beat[has] = 0.5 * (vv[begin[has] + (m[has] - 1) // 2] + vv[begin[has] + m[has] // 2])
    phase = (onset - onset[row_first[row]]) / beat[row]
    note_ioi = np.maximum(np.where(last, duration, ioi), 1e-3)
    ioi_ratio = np.where(first, 0.0, np.log2(note_ioi / note_ioi[prv]) / 3.0)
    inv_note = np.stack([
        np.clip(interval_prev, -2, 2), np.clip(interval_next, -2, 2),
        np.clip(dr_prev, -1, 1), np.clip(dr_next, -1, 1), np.clip(ioi_ratio, -1, 1),
        phrase_pos, phrase_time_pos, np.log(np.maximum(plen, 1)) / math.log(64.0),
        starts_phrase.astype(np.float64), ends_phrase.astype(np.float64),
        np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase),
        np.sin(2 * np.pi * phase / 4), np.cos(2 * np.pi * phase / 4),
    ], axis=-1).reshape(M, len(_INVARIANT))
    invariant = np.zeros((T, len(_INVARIANT)), dtype=np.float32)
    invariant[note_pos] = inv_note
    tok_controls = None
    if controls is not None:
        tok_controls = np.zeros((T, N_CONTROLS), dtype=np.float32)
        tok_controls[note_pos] = controls[note]
    tokens = PieceTokens(tok_pitch, tok_dur, tok_vel, gap_before, gap_after, is_rest, invariant, note_index,
                         tok_controls, int(instrument_id))
    return tokens, starts


_RANGES = np.array([[i.low, i.high] for i in INSTRUMENTS], dtype=np.float64)


def featurize(tokens: PieceTokens, transpose: int = 0, stretch: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for (a window of) tokens, after transposing by ``transpose`` semitones and multiplying
    all durations by ``stretch``.

    Returns:
        pitch [T] int64 (REST_PITCH on rests, others clipped to 0..127) and features [T, N_FEATURES] float32.
    """
    rest = tokens.is_rest
    pitch = np.where(rest, REST_PITCH, np.clip(tokens.pitch + int(transpose), 0, 127))
    low, high = _RANGES[tokens.instrument_id]
    in_range = np.where(rest, 0.0, (pitch - low) / (high - low) - 0.5)
    variant = np.stack([
        rest.astype(np.float64),
        np.log(np.maximum(tokens.duration_s * stretch, 1e-3) / 0.25) / 2.0,
        tokens.velocity / 127.0,
        in_range,
        np.log1p(tokens.gap_before_s * stretch / 0.05) / 3.0,
        np.log1p(tokens.gap_after_s * stretch / 0.05) / 3.0,
    ], axis=-1).astype(np.float32)
    return pitch.astype(np.int64), np.concatenate([variant, tokens.invariant], axis=-1)


@dataclass
class PieceNotes:
    """One voice's notes as arrays (sorted by onset): pitch [N] int64, onset_s / offset_s [N] seconds,
    velocity [N] int64, controls [N, 6] float32 or None."""

    pitch: np.ndarray
    onset_s: np.ndarray
    offset_s: np.ndarray
    velocity: np.ndarray
    instrument_id: int
    controls: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pitch)

    def window_tokens(self, lo: int, hi: int, rest_threshold_s: float, stretch: float = 1.0) -> PieceTokens:
        """Tokens of notes ``lo:hi`` alone (times multiplied by ``stretch``), as if they were the whole voice."""
        c = None if self.controls is None else self.controls[lo:hi]
        return tokenize(self.pitch[lo:hi], self.onset_s[lo:hi] * stretch, self.offset_s[lo:hi] * stretch,
                        self.velocity[lo:hi], self.instrument_id, c, rest_threshold_s)


def load_notes(path: str | Path) -> PieceNotes:
    """One ``.npz`` of the performance data contract (:mod:`midi_ddsp.performance.dataset`) as notes."""
    with np.load(path) as z:
        missing = [k for k in ("pitch", "onset_s", "offset_s", "velocity", "instrument_id", "controls")
                   if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        order = np.argsort(z["onset_s"], kind="stable")
        return PieceNotes(z["pitch"][order].astype(np.int64), z["onset_s"][order].astype(np.float64),
                          z["offset_s"][order].astype(np.float64), z["velocity"][order].astype(np.int64),
                          int(z["instrument_id"]), z["controls"][order].astype(np.float32))


def load_notes_split(directory: str | Path, split: str) -> list[PieceNotes]:
    """The pieces of one split of a data-contract directory, in stem order."""
    directory = Path(directory)
    stems = sorted(s for s, v in read_split(directory).items() if v == split)
    missing = [s for s in stems if not (directory / f"{s}.npz").is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: split.json lists pieces without .npz files: {missing[:5]}")
    return [load_notes(directory / f"{s}.npz") for s in stems]


def load_piece(path: str | Path, rest_threshold_s: float = 0.1) -> PieceTokens:
    """Read one ``.npz`` of the data contract and tokenise it (rest controls are zero)."""
    p = load_notes(path)
    return p.window_tokens(0, len(p), rest_threshold_s)


def read_split(directory: str | Path) -> dict[str, str]:
    """``split.json`` of a data directory: piece stem -> "train" | "valid" | "test"."""
    path = Path(directory) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found (the data directory needs split.json)")
    split = json.loads(path.read_text())
    bad = {v for v in split.values()} - {"train", "valid", "test"}
    if bad:
        raise ValueError(f"{path}: unknown split names {sorted(bad)}")
    return split


def load_split(directory: str | Path, split: str, rest_threshold_s: float = 0.1) -> list[PieceTokens]:
    """Tokenised pieces of one split, in stem order (stems without a file are reported)."""
    return [p.window_tokens(0, len(p), rest_threshold_s) for p in load_notes_split(directory, split)]


def pad_item(pitch, feats, controls, is_rest, instrument_id: int, length: int) -> dict[str, torch.Tensor]:
    """Tensors of one sequence, right-padded to ``length`` tokens (padding: rest pitch, zeros, mask False)."""
    n = len(pitch)
    pad = length - n
    out = {
        "pitch": torch.from_numpy(np.pad(pitch, (0, pad), constant_values=REST_PITCH)),
        "features": torch.from_numpy(np.pad(feats, ((0, pad), (0, 0)))),
        "is_rest": torch.from_numpy(np.pad(is_rest, (0, pad), constant_values=True)),
        "mask": torch.from_numpy(np.arange(length) < n),
        "instrument": torch.tensor(int(instrument_id), dtype=torch.long),
    }
    if controls is not None:
        out["controls"] = torch.from_numpy(np.pad(controls.astype(np.float32), ((0, pad), (0, 0))))
    return out


def collate_pieces(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items of possibly different lengths, right-padding to the longest."""
    length = max(len(it["pitch"]) for it in items)
    out = {}
    for k in items[0]:
        vals = []
        for it in items:
            v = it[k]
            pad = length - (len(v) if v.dim() else length)
            if pad:
                fill = REST_PITCH if k == "pitch" else (True if k == "is_rest" else 0)
                v = torch.cat([v, torch.full((pad,) + tuple(v.shape[1:]), fill, dtype=v.dtype)])
            vals.append(v)
        out[k] = torch.stack(vals)
    return out


def instrument_statistics(pieces: Sequence[PieceTokens], n_bins: int = 32,
                          control_range: Sequence[float] = (0.0, 1.0), n_instruments: int = len(INSTRUMENTS)
                          ) -> dict[str, np.ndarray]:
    """Per-instrument mean controls and per-instrument histograms over note tokens (the baseline (a)).

    Returns ``{"mean": [n_instruments, 6], "hist": [n_instruments, 6, n_bins] (counts), "count":
    [n_instruments]}``. Instruments without data fall back to the pooled statistics.
    """
    lo, hi = control_range
    mean = np.zeros((n_instruments, N_CONTROLS))
    hist = np.zeros((n_instruments, N_CONTROLS, n_bins))
    count = np.zeros(n_instruments)
    for p in pieces:
        c = np.clip(p.controls[~p.is_rest], lo, hi)
        b = np.clip(np.rint((c - lo) / (hi - lo) * (n_bins - 1)).astype(np.int64), 0, n_bins - 1)
        mean[p.instrument_id] += c.sum(0)
        count[p.instrument_id] += len(c)
        for k in range(N_CONTROLS):
            hist[p.instrument_id, k] += np.bincount(b[:, k], minlength=n_bins)
    pooled_mean = mean.sum(0) / max(count.sum(), 1)
    pooled_hist = hist.sum(0)
    seen = count > 0
    mean[seen] /= count[seen, None]
    mean[~seen] = pooled_mean
    hist[~seen] = pooled_hist
    return {"mean": mean, "hist": hist, "count": count}


# ----------------------------------------------------------------------------------------------------------
# Synthetic data with known rules (tests, smoke runs and speed measurements).

def synthetic_controls(pitch, onset_s, offset_s, velocity, instrument_id: int,
                       rng: np.random.Generator) -> np.ndarray:
    """[N, 6] controls that follow simple, learnable rules plus noise (normalised, about [0, 1]):

    - volume rises with pitch within the instrument's range and with velocity, and swells (crescendo) over
      each phrase; it also follows the previous note's volume (an autoregressive component);
    - vol_fluc is larger on long notes; vol_peak_pos is later on long notes;
    - vibrato is 0 on notes shorter than 0.3 s; longer notes have vibrato with probability 0.7 (bimodal:
      about 0.6 +- 0.08, else 0), and instruments 4..12 (winds) use less of it;
    - brightness follows volume; attack is high on phrase starts and high velocities.
    """
    tok = tokenize(pitch, onset_s, offset_s, velocity, instrument_id)
    notes = ~tok.is_rest
    n = int(notes.sum())
    inv = tok.invariant[notes]
    phrase_pos = inv[:, _INVARIANT.index("phrase_pos")]
    phrase_start = inv[:, _INVARIANT.index("phrase_start")]
    dur = np.asarray(offset_s, float) - np.asarray(onset_s, float)
    inst = by_id(int(instrument_id))
    rel = (np.asarray(pitch, float) - inst.low) / (inst.high - inst.low)
    vel = np.asarray(velocity, float) / 127.0
    target = 0.15 + 0.35 * np.clip(rel, 0, 1) + 0.2 * vel + 0.2 * phrase_pos
    volume = np.empty(n)
    prev = target[0] if n else 0.0
    for i in range(n):  # AR(1) smoothing around the target (data generation only)
        prev = 0.5 * prev + 0.5 * target[i] + rng.normal(0, 0.03)
        volume[i] = prev
    long = np.clip(np.log2(np.maximum(dur, 1e-3) / 0.25), -2, 2) / 4 + 0.5      # 0..1
    vol_fluc = 0.1 + 0.5 * long + rng.normal(0, 0.04, n)
    vol_peak = 0.15 + 0.6 * long + rng.normal(0, 0.06, n)
    has_vib = (dur >= 0.3) & (rng.random(n) < 0.7)
    vib_level = 0.6 if instrument_id < 4 else 0.35
    vibrato = np.where(has_vib, vib_level + rng.normal(0, 0.08, n), 0.0)
    brightness = 0.1 + 0.7 * volume + 0.05 * (instrument_id % 4) + rng.normal(0, 0.04, n)
    attack = 0.2 + 0.4 * phrase_start + 0.3 * vel + rng.normal(0, 0.05, n)
    out = np.stack([volume, vol_fluc, vol_peak, vibrato, brightness, attack], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def synthetic_voice(n_notes: int, instrument_id: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random melody: (pitch, onset_s, offset_s, velocity), random-walk pitches in the instrument's range,
    durations from a beat grid, occasional rests and staccato gaps."""
    inst = by_id(int(instrument_id))
    beat = rng.uniform(0.3, 0.7)
    steps = rng.choice([-4, -2, -1, 0, 1, 2, 3, 5], size=n_notes)
    centre = (inst.low + inst.high) // 2
    pitch = np.clip(centre + np.cumsum(steps) % 24 - 12, inst.low, inst.high).astype(np.int64)
    ioi = beat * rng.choice([0.5, 1.0, 1.0, 1.5, 2.0], size=n_notes)
    rest = np.where(rng.random(n_notes) < 0.1, beat * rng.choice([1.0, 2.0], size=n_notes), 0.0)
    onset = np.concatenate([[0.0], np.cumsum(ioi + rest)[:-1]]) + 0.2
    legato = rng.choice([0.6, 0.9, 1.0], size=n_notes)
    offset = np.minimum(onset + ioi * legato, np.append(onset[1:], np.inf))   # exact: never past the next onset
    velocity = np.clip(rng.normal(80, 20, n_notes), 20, 127).astype(np.int64)
    return pitch, onset, offset, velocity


def write_synthetic_corpus(directory: str | Path, n_pieces: int = 24, notes_per_piece: int = 120,
                           instruments: Sequence[int] = (0, 2, 4, 9), seed: int = 0,
                           splits: Sequence[float] = (0.7, 0.15, 0.15)) -> Path:
    """Write a data-contract directory of synthetic pieces whose controls follow
    :func:`synthetic_controls`. Returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_train = int(round(splits[0] * n_pieces))
    n_valid = max(int(round(splits[1] * n_pieces)), 1)
    split = {}
    for i in range(n_pieces):
        inst = int(instruments[i % len(instruments)])
        n = int(rng.integers(notes_per_piece // 2, notes_per_piece * 3 // 2 + 1))
        pitch, onset, offset, velocity = synthetic_voice(n, inst, rng)
        controls = synthetic_controls(pitch, onset, offset, velocity, inst, rng)
        stem = f"piece{i:04d}"
        np.savez(directory / f"{stem}.npz", pitch=pitch, onset_s=onset, offset_s=offset, velocity=velocity,
                 instrument_id=np.int64(inst), controls=controls)
        split[stem] = "train" if i < n_train else ("valid" if i < n_train + n_valid else "test")
    (directory / "split.json").write_text(json.dumps(split, indent=1))
    return directory


__all__ = [
    "REST_PITCH", "N_PITCHES", "FEATURE_NAMES", "N_FEATURES", "PieceTokens", "tokenize", "featurize",
    "PieceNotes", "load_notes", "load_notes_split", "load_piece", "read_split", "load_split", "pad_item", "collate_pieces",
    "instrument_statistics", "synthetic_controls", "synthetic_voice",
    "write_synthetic_corpus",
]
