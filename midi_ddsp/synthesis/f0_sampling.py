"""Fast autoregressive sampling for the generator's f0 model.

Every input-dependent term is precomputed for the whole sequence with batched matrix products; the only
sequential work per step is the GRU's hidden-to-hidden product, its gates, the hidden-to-logit product and
a nucleus (top-p) draw. At these sizes (batch of voices x 128 hidden units) per-op dispatch dominates, so
the loop runs on NumPy arrays, whose per-op overhead is several times lower than eager PyTorch's.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


TOP_K = 32  # bins sorted per step; the rest only when the nucleus reaches beyond them (rare: f0 is peaked)


def _nucleus_draw(logits: np.ndarray, inv_t: float, top_p: float, u: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One nucleus draw per row of ``logits [batch, bins]``: the bins sorted by probability, the smallest
    prefix whose mass reaches ``top_p`` kept (the first always), the bin where the kept CDF crosses
    ``u [batch]`` (in [0, 1)) returned. Only the ``TOP_K`` most likely bins are sorted when the kept prefix
    lies inside them (the same draw as a full sort); rows whose nucleus is wider are sorted whole."""
    batch, n = logits.shape
    k = min(TOP_K, n)
    scaled = logits * inv_t
    top = scaled.max(1, keepdims=True)
    total = np.exp(scaled - top).sum(1, keepdims=True)
    order = np.argpartition(-scaled, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (batch, 1))
    order = np.take_along_axis(order, np.argsort(-np.take_along_axis(scaled, order, 1), axis=1), 1)
    p = np.exp(np.take_along_axis(scaled, order, 1) - top)
    cum = np.cumsum(p, axis=1)
    keep = (cum - p) < top_p * total
    wide = keep[:, -1] & (k < n)  # the nucleus may reach past the k-th bin: sort those rows whole
    if wide.any():
        w = np.flatnonzero(wide)
        full = np.argsort(-scaled[w], axis=1)
        pf = np.exp(np.take_along_axis(scaled[w], full, 1) - top[w])
        cf = np.cumsum(pf, axis=1)
        kf = (cf - pf) < top_p * total[w]
        cdf = np.cumsum(np.where(kf, pf, 0.0), axis=1)
        pick = np.minimum((cdf < (u[w] * cdf[:, -1])[:, None]).sum(1), n - 1)
    cdf = np.cumsum(np.where(keep, p, 0.0), axis=1)
    idx = np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(1), k - 1)
    out = order[rows, idx]
    if wide.any():
        out[w] = full[np.arange(w.size), pick]
    return out


def sample_gru_categorical(input_gates: np.ndarray, prev_gates: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray,
                           out_w: np.ndarray, out_bias: np.ndarray, uniforms: np.ndarray, start_bin: int,
                           temperature: float, top_p: float, lengths: np.ndarray | None = None) -> np.ndarray:
    """Sample a bin sequence from a GRU whose input is [conditioning, embedding(previous bin)].

    Args:
        input_gates: conditioning part of the input-to-hidden gates (b_ih included), [batch, steps, 3*hidden].
        prev_gates: input-to-hidden gates contributed by each possible previous bin, [n_bins, 3*hidden].
        w_hh, b_hh: GRU hidden-to-hidden weight [3*hidden, hidden] and bias [3*hidden] (PyTorch gate order
            r, z, n).
        out_w: hidden-to-logit weight [n_bins, hidden].
        out_bias: conditioning part of the logits (bias included), [batch, steps, n_bins].
        uniforms: one U(0, 1) draw per step, [batch, steps] (makes sampling reproducible).
        start_bin: bin fed as "previous" at the first step.
        temperature: softmax temperature; <= 0 takes the most likely bin.
        top_p: probability mass of the most likely bins kept before sampling (nucleus sampling).
        lengths: steps each row needs ([batch] ints, default all): rows stop being computed after their
            length (rows of unequal length in one batch cost only their own steps); the padding repeats
            each row's last bin.

    Returns:
        int64 bins [batch, steps].
    """
    batch, steps, _ = input_gates.shape
    hidden = w_hh.shape[1]
    lengths = np.full(batch, steps) if lengths is None else np.minimum(np.asarray(lengths, dtype=np.int64), steps)
    order = np.argsort(-lengths, kind="stable")  # longest first: the rows still running are a prefix
    active = np.searchsorted(-lengths[order], -np.arange(steps), side="left")  # rows with length > t
    w_hh_t = np.ascontiguousarray(w_hh.T)
    out_w_t = np.ascontiguousarray(out_w.T)
    h = np.zeros((batch, hidden), dtype=input_gates.dtype)
    prev = np.full(batch, start_bin, dtype=np.int64)
    out = np.empty((batch, steps), dtype=np.int64)
    inv_t = 1.0 / temperature if temperature > 0 else 0.0
    for t in range(steps):
        m = int(active[t])
        if m < h.shape[0]:
            out[m:h.shape[0], t:] = prev[m:, None]
            h, prev = h[:m], prev[:m]
        if m == 0:
            break
        live = order[:m]
        gi = input_gates[live, t] + prev_gates[prev]
        gh = h @ w_hh_t + b_hh
        r = _sigmoid(gi[:, :hidden] + gh[:, :hidden])
        z = _sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h = n + z * (h - n)
        logits = h @ out_w_t + out_bias[live, t]
        if inv_t == 0.0:
            prev = logits.argmax(1)
        else:
            prev = _nucleus_draw(logits, inv_t, top_p, uniforms[live, t], np.arange(m))
        out[:m, t] = prev
    result = np.empty_like(out)
    result[order] = out
    return result
