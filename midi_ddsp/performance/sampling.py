"""Inference with the performance prior: NoteSequence(s) -> Performance(s), and model files.

    model = load_model("checkpoints/performance.safetensors")
    perf = predict_performance(model, sequence, temperature=1.0, seed=0)
    perfs = predict_performances(model, [soprano, alto], temperature=0.0)

Every note is performed from its neighbourhood (:mod:`.neighbourhood`), so an edit of one note changes the
controls only of notes within the neighbourhood's reach. Seeds: voice ``i`` of a call with ``seed=s`` uses
seed ``s + i``, each note's random numbers keyed to that seed and its onset, so a voice's sample does not
depend on what else is in the batch (up to float rounding)
(``predict_performances(m, [a, b], seed=3)[1] == predict_performance(m, b, seed=4)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from midi_ddsp.checkpoint import load_into, load_weights, save_weights
from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.notes import N_CONTROLS, NoteSequence, Performance

from .dataset import REST_PITCH, PieceNotes, PieceTokens, featurize, tokenize, tokenize_windows
from .model import PerformanceModel
from .neighbourhood import Neighbourhood, note_uniforms

KIND = "performance"
DEFAULT_REST_THRESHOLD_S = 0.1
WINDOWS_PER_BATCH = 512  #: neighbourhoods decoded together by predict_performances


def save_model(model: PerformanceModel, path: str | Path, rest_threshold_s: float = DEFAULT_REST_THRESHOLD_S,
               half: bool = False, extra: dict | None = None, neighbourhood: Neighbourhood | None = None) -> Path:
    """Write the model as safetensors + JSON config (``kind="performance"``).

    ``rest_threshold_s`` and ``neighbourhood`` (the tokenisation and the windows the model was trained
    with) are stored with it.
    """
    info = {"rest_threshold_s": float(rest_threshold_s),
            "neighbourhood": (neighbourhood or _neighbourhood(model)).to_dict()}
    info.update(extra or {})
    return save_weights(path, model.state_dict(), kind=KIND, config=model.config, extra=info, half=half)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> PerformanceModel:
    """Read a model written by :func:`save_model`, in eval mode. Raises ``CheckpointError`` on bad files."""
    tensors, config, extra = load_weights(path, kind=KIND)
    model = PerformanceModel(**config)
    load_into(model, tensors, path)
    model.rest_threshold_s = float(extra.get("rest_threshold_s", DEFAULT_REST_THRESHOLD_S))
    model.neighbourhood = Neighbourhood.from_dict(extra.get("neighbourhood"))
    return model.to(device).eval()


def _rest_threshold(model: PerformanceModel) -> float:
    return float(getattr(model, "rest_threshold_s", DEFAULT_REST_THRESHOLD_S))


def sequence_tokens(sequence: NoteSequence, rest_threshold_s: float = DEFAULT_REST_THRESHOLD_S) -> PieceTokens:
    """Tokens of one voice (no controls)."""
    return tokenize(sequence.pitches, sequence.onsets_s, sequence.offsets_s, sequence.velocities,
                    by_name(sequence.instrument).id, None, rest_threshold_s)


def _noise(n_tokens: int, seed: int | None) -> torch.Tensor:
    g = torch.Generator()
    if seed is None:
        g.seed()
    elif -(1 << 63) <= int(seed) < (1 << 63):
        g.manual_seed(int(seed))
    else:  # any other integer: hashed into torch's seed range
        from ..generation import derive_seed

        g.manual_seed(derive_seed(int(seed)))
    return torch.rand(n_tokens, N_CONTROLS, generator=g)


@dataclass
class _Windows:
    """Tokenised windows laid end to end as model inputs: tokens ``starts[r]:starts[r] + lengths[r]`` are
    window ``r``; ``noise`` holds each token's uniforms (0.5 on rests)."""

    pitch: np.ndarray            # [T] int64
    features: np.ndarray         # [T, N_FEATURES] float32
    is_rest: np.ndarray          # [T] bool
    noise: np.ndarray            # [T, 6] float32
    controls: np.ndarray | None  # [T, 6] float32
    starts: np.ndarray           # [R]
    lengths: np.ndarray          # [R]
    instrument: np.ndarray       # [R]

    @classmethod
    def of(cls, tokens: PieceTokens, starts: np.ndarray, noise: np.ndarray, with_controls: bool) -> "_Windows":
        pitch, features = featurize(tokens)
        controls = None
        if with_controls:
            controls = np.clip(tokens.controls, 0.0, 1.0) * (~tokens.is_rest)[:, None]
        lengths = np.diff(starts)
        return cls(pitch, features, tokens.is_rest, noise.astype(np.float32), controls, starts[:-1], lengths,
                   np.full(len(lengths), tokens.instrument_id, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence["_Windows"]) -> "_Windows":
        shift = np.cumsum([0] + [len(w.pitch) for w in parts[:-1]])
        cat = lambda f: np.concatenate([getattr(w, f) for w in parts])  # noqa: E731
        controls = None if parts[0].controls is None else cat("controls")
        return cls(cat("pitch"), cat("features"), cat("is_rest"), cat("noise"), controls,
                   np.concatenate([w.starts + d for w, d in zip(parts, shift)]), cat("lengths"), cat("instrument"))

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows ``rows`` right-padded to the longest (padding: rest pitch, zeros, mask False)."""
        L = self.lengths[rows]
        t = np.arange(max(int(L.max()), 1))
        valid = t[None] < L[:, None]
        idx = np.where(valid, self.starts[rows][:, None] + t[None], 0)
        out = {"pitch": np.where(valid, self.pitch[idx], REST_PITCH), "features": self.features[idx] * valid[..., None],
               "is_rest": np.where(valid, self.is_rest[idx], True), "mask": valid,
               "instrument": self.instrument[rows], "noise": np.where(valid[..., None], self.noise[idx], 0.5)}
        if self.controls is not None:
            out["controls"] = self.controls[idx] * valid[..., None]
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def _generate(model: PerformanceModel, batch: dict[str, torch.Tensor], temperature: float,
              n_steps: int | None = None) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"],
                              batch["mask"], temperature=float(temperature), noise=batch["noise"], n_steps=n_steps)
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_token_controls(model: PerformanceModel, pieces: Sequence[PieceTokens], temperature: float = 1.0,
                           seed: int | Sequence[int | None] | None = None) -> list[np.ndarray]:
    """Controls for tokenised voices read whole, batched: a list of [T_i, 6] float32 arrays (zeros on rests).

    ``seed``: one seed per voice, or an int ``s`` (voice ``i`` uses ``s + i``), or None (fresh entropy).
    Rendering uses :func:`predict_performances` instead (note neighbourhoods, local edits).
    """
    if not pieces:
        return []
    if seed is None or isinstance(seed, (int, np.integer)):
        seeds = [None if seed is None else int(seed) + i for i in range(len(pieces))]
    else:
        seeds = list(seed)
        if len(seeds) != len(pieces):
            raise ValueError(f"got {len(seeds)} seeds for {len(pieces)} voices")
    w = _Windows.concat([_Windows.of(p, np.array([0, len(p)]), _noise(len(p), s).numpy(), False)
                         for p, s in zip(pieces, seeds)])
    out = _generate(model, w.batch(np.arange(len(pieces))), temperature).float().numpy()
    return [out[i, :len(p)] for i, p in enumerate(pieces)]


def _neighbourhood(model: PerformanceModel) -> Neighbourhood:
    return getattr(model, "neighbourhood", None) or Neighbourhood()


def _voice_key(seed: int | None, voice: int) -> int:
    if seed is None:  # fresh entropy (a 128-bit integer)
        return int(np.random.SeedSequence().entropy)
    return int(seed) + voice


def _neighbourhoods(model: PerformanceModel, voices: Sequence[PieceNotes], keys: Sequence[int] | None,
                    with_controls: bool = False) -> tuple[_Windows, np.ndarray, np.ndarray, np.ndarray]:
    """Every note's neighbourhood as a window: (windows, the note's position in its window, voice, note)."""
    threshold, nb = _rest_threshold(model), _neighbourhood(model)
    parts, target, voice, note = [], [], [], []
    for v, notes in enumerate(voices):
        if not len(notes):
            continue
        lo, hi = nb.bounds(notes.onset_s)
        tok, starts = tokenize_windows(notes.pitch, notes.onset_s, notes.offset_s, notes.velocity,
                                       notes.instrument_id, lo, hi, notes.controls if with_controls else None,
                                       threshold)
        row = np.repeat(np.arange(len(lo)), np.diff(starts))                # window of every token
        noise = np.full((len(tok), N_CONTROLS), 0.5, dtype=np.float32)
        on_note = tok.note_index >= 0
        if keys is not None:
            noise[on_note] = note_uniforms(keys[v], notes.onset_s)[lo[row[on_note]] + tok.note_index[on_note]]
        own = np.flatnonzero(tok.note_index == (np.arange(len(lo)) - lo)[row])   # one token per window
        parts.append(_Windows.of(tok, starts, noise, with_controls))
        target.append(own - starts[:-1])
        voice.append(np.full(len(lo), v))
        note.append(np.arange(len(lo)))
    if not parts:
        return None, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return _Windows.concat(parts), np.concatenate(target), np.concatenate(voice), np.concatenate(note)


def _per_note(model: PerformanceModel, voices: Sequence[PieceNotes], keys: Sequence[int] | None,
              with_controls: bool, chunk: int, run) -> list[np.ndarray]:
    """[N_i, 6] per voice: ``run(batch, n_steps)`` ([B, T, 6]) on the notes' neighbourhoods, ``chunk`` at a
    time (similar lengths together: less padding), read at each note's own token."""
    out = [np.zeros((len(v), N_CONTROLS)) for v in voices]
    w, target, voice, note = _neighbourhoods(model, voices, keys, with_controls)
    if w is None:
        return out
    order = np.argsort(w.lengths, kind="stable")
    for a in range(0, len(order), chunk):
        rows = order[a:a + chunk]
        res = run(w.batch(rows), int(target[rows].max()) + 1)
        got = res[torch.arange(len(rows)), torch.from_numpy(target[rows])].double().numpy()
        for v in np.unique(voice[rows]):
            sel = voice[rows] == v
            out[v][note[rows][sel]] = got[sel]
    return out


@torch.no_grad()
def perform_notes(model: PerformanceModel, voices: Sequence[PieceNotes], temperature: float = 1.0,
                  keys: Sequence[int] | None = None, chunk: int = WINDOWS_PER_BATCH) -> list[np.ndarray]:
    """[N_i, 6] controls of every voice, each note decoded from its neighbourhood
    (:mod:`midi_ddsp.performance.neighbourhood`), ``chunk`` neighbourhoods per batch (bounds the memory).

    ``keys``: one integer per voice to which its notes' random draws are keyed (required when sampling).
    """
    if keys is None and temperature > 0 and model.head_type == "bins":
        raise ValueError("keys are required when sampling (temperature > 0)")
    return _per_note(model, voices, keys, False, chunk,
                     lambda b, n_steps: _generate(model, b, temperature, n_steps=n_steps))


@torch.no_grad()
def teacher_forced_notes(model: PerformanceModel, voices: Sequence[PieceNotes],
                         chunk: int = WINDOWS_PER_BATCH) -> list[np.ndarray]:
    """[N_i, 6] per voice, each note read from its neighbourhood with the true controls (``voices`` carry
    them, clamped to the model's range): log-probabilities of the true bins (bins head) or the predicted
    values (regression head)."""
    model.eval()

    def run(b, n_steps):
        b["controls"] = b["controls"].clamp(model.lo, model.hi)
        if model.head_type == "bins":
            return model.log_prob_bins(b)
        return model(b["pitch"], b["features"], b["instrument"], b["controls"], b["mask"])

    return _per_note(model, voices, None, True, chunk, run)


def predict_performances(model: PerformanceModel, sequences: Sequence[NoteSequence], temperature: float = 1.0,
                         seed: int | None = None) -> list[Performance]:
    """One :class:`Performance` per voice, every note performed from its neighbourhood
    (:mod:`midi_ddsp.performance.neighbourhood`): editing one note changes only the controls of the notes
    within the neighbourhood's reach of it (2 s by default), with the same seed.

    Args:
        temperature: 0 gives the typical performance (every control at the median of its distribution
            given the notes and the controls before it; deterministic); 1 samples the model's distribution;
            in between scales the same take's deviations from the typical one (same seed); above 1 flattens
            the distributions. Ignored by a regression model (always deterministic).
        seed: reproducible sampling; voice ``i`` uses ``seed + i`` (its position among ``sequences``),
            every note's draws keyed to that and its onset. ``None`` draws fresh randomness.
    """
    voices = [PieceNotes(s.pitches, s.onsets_s, s.offsets_s, s.velocities, by_name(s.instrument).id)
              for s in sequences]
    keys = [_voice_key(seed, v) for v in range(len(voices))]
    controls = perform_notes(model, voices, temperature, keys)
    return [Performance(s, c) for s, c in zip(sequences, controls)]


def predict_performance(model: PerformanceModel, sequence: NoteSequence, temperature: float = 1.0,
                        seed: int | None = None) -> Performance:
    """The :class:`Performance` of one voice (see :func:`predict_performances`)."""
    return predict_performances(model, [sequence], temperature, seed)[0]


__all__ = ["KIND", "save_model", "load_model", "sequence_tokens", "predict_token_controls", "perform_notes",
           "teacher_forced_notes", "predict_performances", "predict_performance"]
