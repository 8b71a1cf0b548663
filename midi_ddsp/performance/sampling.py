"""Inference with the performance prior: NoteSequence(s) -> Performance(s), and model files.

    model = load_model("checkpoints/performance.safetensors")
    perf = predict_performance(model, sequence, temperature=1.0, seed=0)
    perfs = predict_performances(model, [soprano, alto], temperature=0.0)

Seeds: voice ``i`` of a call with ``seed=s`` uses seed ``s + i``, and its random numbers are drawn for that
voice alone, so a voice's sample does not depend on what else is in the batch (up to float rounding)
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

from .dataset import PieceTokens, collate_pieces, featurize, pad_item, tokenize
from .model import PerformanceModel

KIND = "performance"
DEFAULT_REST_THRESHOLD_S = 0.1


def save_model(model: PerformanceModel, path: str | Path, rest_threshold_s: float = DEFAULT_REST_THRESHOLD_S,
               half: bool = False, extra: dict | None = None) -> Path:
    """Write the model as safetensors + JSON config (``kind="performance"``).

    ``rest_threshold_s`` (the tokenisation the model was trained with) is stored with it.
    """
    info = {"rest_threshold_s": float(rest_threshold_s)}
    info.update(extra or {})
    return save_weights(path, model.state_dict(), kind=KIND, config=model.config, extra=info, half=half)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> PerformanceModel:
    """Read a model written by :func:`save_model`, in eval mode. Raises ``CheckpointError`` on bad files."""
    tensors, config, extra = load_weights(path, kind=KIND)
    model = PerformanceModel(**config)
    load_into(model, tensors, path)
    model.rest_threshold_s = float(extra.get("rest_threshold_s", DEFAULT_REST_THRESHOLD_S))
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


@torch.no_grad()
def predict_token_controls(model: PerformanceModel, pieces: Sequence[PieceTokens], temperature: float = 1.0,
                           seed: int | Sequence[int | None] | None = None) -> list[np.ndarray]:
    """Controls for tokenised voices, batched: a list of [T_i, 6] float32 arrays (zeros on rest tokens).

    ``seed``: one seed per voice, or an int ``s`` (voice ``i`` uses ``s + i``), or None (fresh entropy).
    """
    if not pieces:
        return []
    if seed is None or isinstance(seed, (int, np.integer)):
        seeds = [None if seed is None else int(seed) + i for i in range(len(pieces))]
    else:
        seeds = list(seed)
        if len(seeds) != len(pieces):
            raise ValueError(f"got {len(seeds)} seeds for {len(pieces)} voices")
    device = next(model.parameters()).device
    lengths = [len(p) for p in pieces]
    T = max(max(lengths), 1)
    items, noises = [], []
    for i, p in enumerate(pieces):
        pitch, feats = featurize(p)
        items.append(pad_item(pitch, feats, None, p.is_rest, p.instrument_id, T))
        noises.append(torch.nn.functional.pad(_noise(len(p), seeds[i]), (0, 0, 0, T - len(p)), value=0.5))
    batch = {k: v.to(device) for k, v in collate_pieces(items).items()}
    was_training = model.training
    model.eval()
    try:
        out = model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"],
                             batch["mask"], temperature=float(temperature), noise=torch.stack(noises).to(device))
    finally:
        model.train(was_training)
    out = out.float().cpu().numpy()
    return [out[i, :n] for i, n in enumerate(lengths)]


def predict_performances(model: PerformanceModel, sequences: Sequence[NoteSequence], temperature: float = 1.0,
                         seed: int | None = None) -> list[Performance]:
    """One :class:`Performance` per voice (all voices decoded together in one batch).

    Args:
        temperature: 0 gives the typical performance (every control at the median of its distribution
            given the notes and the controls before it; deterministic); 1 samples the model's distribution;
            in between scales the same take's deviations from the typical one (same seed); above 1 flattens
            the distributions. Ignored by a regression model (always deterministic).
        seed: reproducible sampling; voice ``i`` uses ``seed + i``. ``None`` draws fresh randomness.
    """
    threshold = _rest_threshold(model)
    tokens = [sequence_tokens(s, threshold) for s in sequences]
    nonempty = [i for i, t in enumerate(tokens) if len(t)]
    # Seeds follow the voice's position among all given sequences (empty voices included).
    seeds = [None if seed is None else int(seed) + i for i in nonempty]
    controls = predict_token_controls(model, [tokens[i] for i in nonempty], temperature, seeds)
    out = [np.zeros((0, N_CONTROLS))] * len(sequences)
    for j, i in enumerate(nonempty):
        out[i] = controls[j][tokens[i].note_index >= 0].astype(np.float64)
    return [Performance(s, c) for s, c in zip(sequences, out)]


def predict_performance(model: PerformanceModel, sequence: NoteSequence, temperature: float = 1.0,
                        seed: int | None = None) -> Performance:
    """The :class:`Performance` of one voice (see :func:`predict_performances`)."""
    return predict_performances(model, [sequence], temperature, seed)[0]


__all__ = ["KIND", "save_model", "load_model", "sequence_tokens", "predict_token_controls",
           "predict_performances", "predict_performance"]
