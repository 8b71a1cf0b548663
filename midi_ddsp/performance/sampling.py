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

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from midi_ddsp.checkpoint import load_into, load_weights, save_weights
from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.notes import N_CONTROLS, NoteSequence, Performance

from .dataset import PieceNotes, PieceTokens, collate_pieces, featurize, pad_item, tokenize
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


def _generate(model: PerformanceModel, pieces: Sequence[PieceTokens], noises: Sequence[torch.Tensor],
              temperature: float, n_steps: int | None = None) -> np.ndarray:
    """Controls [B, T, 6] of tokenised windows decoded together (``noises``: [T_i, 6] uniforms each)."""
    device = next(model.parameters()).device
    T = max(max(len(p) for p in pieces), 1)
    items = [pad_item(*featurize(p), None, p.is_rest, p.instrument_id, T) for p in pieces]
    noise = torch.stack([torch.nn.functional.pad(n, (0, 0, 0, T - len(n)), value=0.5) for n in noises])
    batch = {k: v.to(device) for k, v in collate_pieces(items).items()}
    was_training = model.training
    model.eval()
    try:
        out = model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"],
                             batch["mask"], temperature=float(temperature), noise=noise.to(device), n_steps=n_steps)
    finally:
        model.train(was_training)
    return out.float().cpu().numpy()


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
    out = _generate(model, pieces, [_noise(len(p), s) for p, s in zip(pieces, seeds)], temperature)
    return [out[i, :len(p)] for i, p in enumerate(pieces)]


def _neighbourhood(model: PerformanceModel) -> Neighbourhood:
    return getattr(model, "neighbourhood", None) or Neighbourhood()


def _voice_key(seed: int | None, voice: int) -> int:
    if seed is None:  # fresh entropy (a 128-bit integer)
        return int(np.random.SeedSequence().entropy)
    return int(seed) + voice


def _rows(model: PerformanceModel, voices: Sequence[PieceNotes], keys: Sequence[int] | None):
    """Every note's neighbourhood: (voice, note, tokens, the note's token position, noise [T, 6] or None)."""
    threshold, nb = _rest_threshold(model), _neighbourhood(model)
    rows = []
    for v, notes in enumerate(voices):
        u = None if keys is None else torch.from_numpy(note_uniforms(keys[v], notes.onset_s))
        lo, hi = nb.bounds(notes.onset_s)
        for i in range(len(notes)):
            tok = notes.window_tokens(int(lo[i]), int(hi[i]), threshold)
            idx = tok.note_index
            noise = None
            if u is not None:
                noise = torch.full((len(tok), N_CONTROLS), 0.5)
                noise[idx >= 0] = u[lo[i] + idx[idx >= 0]]
            rows.append((v, i, tok, int(np.flatnonzero(idx == i - lo[i])[0]), noise))
    rows.sort(key=lambda r: len(r[2]))  # similar lengths together: less padding
    return rows


@torch.no_grad()
def perform_notes(model: PerformanceModel, voices: Sequence[PieceNotes], temperature: float = 1.0,
                  keys: Sequence[int] | None = None, chunk: int = WINDOWS_PER_BATCH) -> list[np.ndarray]:
    """[N_i, 6] controls of every voice, each note decoded from its neighbourhood
    (:mod:`midi_ddsp.performance.neighbourhood`), ``chunk`` neighbourhoods per batch (bounds the memory).

    ``keys``: one integer per voice to which its notes' random draws are keyed (required when sampling).
    """
    if keys is None and temperature > 0 and model.head_type == "bins":
        raise ValueError("keys are required when sampling (temperature > 0)")
    out = [np.zeros((len(v), N_CONTROLS)) for v in voices]
    rows = _rows(model, voices, keys)
    for a in range(0, len(rows), chunk):
        part = rows[a:a + chunk]
        noises = [torch.full((len(r[2]), N_CONTROLS), 0.5) if r[4] is None else r[4] for r in part]
        res = _generate(model, [r[2] for r in part], noises, temperature, n_steps=max(r[3] for r in part) + 1)
        for k, (v, i, _, pos, _) in enumerate(part):
            out[v][i] = res[k, pos]
    return out


@torch.no_grad()
def teacher_forced_notes(model: PerformanceModel, voices: Sequence[PieceNotes],
                         chunk: int = WINDOWS_PER_BATCH) -> list[np.ndarray]:
    """[N_i, 6] per voice, each note read from its neighbourhood with the true controls (``voices`` carry
    them): log-probabilities of the true bins (bins head) or the predicted values (regression head)."""
    out = [np.zeros((len(v), N_CONTROLS)) for v in voices]
    rows = _rows(model, voices, None)
    model.eval()
    for a in range(0, len(rows), chunk):
        part = rows[a:a + chunk]
        T = max(len(r[2]) for r in part)
        items = [pad_item(*featurize(r[2]), np.clip(r[2].controls, model.lo, model.hi) * (~r[2].is_rest)[:, None],
                          r[2].is_rest, r[2].instrument_id, T) for r in part]
        b = collate_pieces(items)
        if model.head_type == "bins":
            res = model.log_prob_bins(b)
        else:
            res = model(b["pitch"], b["features"], b["instrument"], b["controls"], b["mask"])
        for k, (v, i, _, pos, _) in enumerate(part):
            out[v][i] = res[k, pos].numpy()
    return out


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
