"""Multi-scale spectral loss (magenta ddsp ``SpectralLoss`` parity, L1 on magnitude and log magnitude)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["MultiScaleSpectralLoss", "stft_magnitude"]


def _complex_abs(spec: torch.Tensor) -> torch.Tensor:
    if spec.device.type == "cpu":                   # numpy's SIMD complex abs is ~5x faster than torch's on CPU
        return torch.from_numpy(np.abs(spec.numpy()))
    return spec.abs()


def _complex_times_real(spec: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if spec.device.type == "cpu":                   # same story for complex * real
        return torch.from_numpy(spec.numpy() * factor.numpy())
    return spec * factor


def _framed_rfft(audio: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
    """rfft(window * frame) of every frame audio[j*hop : j*hop + len(window)]: [B, F, K] complex."""
    return torch.fft.rfft(audio.unfold(-1, window.shape[0], hop) * window)


def _magnitude_backward(spec: torch.Tensor, factor: torch.Tensor, window: torch.Tensor, hop: int,
                        n: int) -> torch.Tensor:
    """Gradient w.r.t. the [B, n] audio of sum(G * |Y|), Y = _framed_rfft(audio), given factor = G / |Y|.

    d|Y_k| / dx = Re(conj(Y_k) dY_k) / |Y_k|, so the gradient of each frame is
    ``window * N * irfft(c * G * Y / |Y|)`` with c = 1 at DC and Nyquist and 1/2 elsewhere; the frames are
    then overlap-added (``fft_size / hop`` shifted slices, or ``fold`` for other hops).
    """
    size = window.shape[0]
    scale = torch.full((spec.shape[-1],), 0.5 * size, dtype=factor.dtype, device=factor.device)
    scale[0] = size
    if size % 2 == 0:
        scale[-1] = size
    grad_frames = torch.fft.irfft(_complex_times_real(spec, factor * scale), n=size).mul_(window)
    batch, n_frames = grad_frames.shape[:2]
    if size % hop == 0:
        ratio = size // hop
        blocks = grad_frames.new_zeros(batch, n_frames + ratio - 1, hop)
        parts = grad_frames.reshape(batch, n_frames, ratio, hop)
        for k in range(ratio):
            blocks[:, k : k + n_frames] += parts[:, :, k]
        grad_audio = blocks.reshape(batch, -1)
    else:
        grad_audio = nn.functional.fold(grad_frames.transpose(1, 2), (1, (n_frames - 1) * hop + size),
                                         (1, size), stride=(1, hop)).reshape(batch, -1)
    return nn.functional.pad(grad_audio, (0, n - grad_audio.shape[-1]))


class _FramedRfftMagnitude(torch.autograd.Function):
    """|rfft(window * frames)| with a hand-written backward (see ``_magnitude_backward``).

    Autograd through ``torch.stft`` is slow on CPU: the rfft backward runs a full-size complex FFT on a
    zero-padded gradient and the framing (as_strided) backward scatters element by element.
    """

    @staticmethod
    def forward(ctx, audio: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
        spec = _framed_rfft(audio, window, hop)
        mag = _complex_abs(spec)
        ctx.save_for_backward(spec, mag, window)
        ctx.hop, ctx.n = hop, audio.shape[-1]
        return mag

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mag: torch.Tensor):
        spec, mag, window = ctx.saved_tensors
        factor = grad_mag / mag.clamp_min(1e-20)                           # Y == 0 contributes 0
        return _magnitude_backward(spec, factor, window, ctx.hop, ctx.n), None, None


class _ScaleSpectralL1(torch.autograd.Function):
    """One scale of the loss, fused: (mean|S_p - S_t|, mean|log S_p - log S_t|) with log = log(max(., eps)).

    Writing the whole scale as one Function keeps the backward to a few elementwise passes, one irfft and an
    overlap-add per signal that needs a gradient.
    """

    @staticmethod
    def forward(ctx, pred: torch.Tensor, target: torch.Tensor, window: torch.Tensor, hop: int, eps: float):
        spec_p, spec_t = _framed_rfft(pred, window, hop), _framed_rfft(target, window, hop)
        mag_p, mag_t = _complex_abs(spec_p), _complex_abs(spec_t)
        log_p, log_t = mag_p.clamp_min(eps).log_(), mag_t.clamp_min(eps).log_()
        diff_mag, diff_log = mag_p - mag_t, log_p.sub_(log_t)
        need_p, need_t = ctx.needs_input_grad[:2]
        if need_p or need_t:                                               # keep what backward needs
            ctx.save_for_backward(spec_p if need_p else None, spec_t if need_t else None,
                                  mag_p if need_p else None, mag_t if need_t else None,
                                  torch.sign(diff_mag), torch.sign(diff_log), window)
            ctx.hop, ctx.eps, ctx.n = hop, eps, pred.shape[-1]
        return diff_mag.abs_().mean(), diff_log.abs_().mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mag_term: torch.Tensor, grad_logmag_term: torch.Tensor):
        spec_p, spec_t, mag_p, mag_t, sign_mag, sign_log, window = ctx.saved_tensors
        count = sign_mag.numel()
        grads = []
        for spec, mag, sign in ((spec_p, mag_p, 1.0), (spec_t, mag_t, -1.0)):
            if spec is None:
                grads.append(None)
                continue
            inv = mag.clamp_min(1e-20).reciprocal_()
            # dL/d|Y| = (g_mag * sign_mag + g_log * sign_log * [|Y| > eps] / |Y|) / count, then / |Y|
            dlog = (sign_log * (mag > ctx.eps)).mul_(inv).mul_(grad_logmag_term)
            factor = sign_mag.mul(grad_mag_term).add_(dlog).mul_(inv).mul_(sign / count)
            grads.append(_magnitude_backward(spec, factor, window, ctx.hop, ctx.n))
        return grads[0], grads[1], None, None, None


def stft_magnitude(audio: torch.Tensor, fft_size: int, overlap: float = 0.75,
                   window: torch.Tensor | None = None) -> torch.Tensor:
    """|STFT| framed like ``tf.signal.stft(frame_length=fft_size, pad_end=True)``.

    hop = fft_size * (1 - overlap); n_frames = ceil(n / hop), the end zero-padded so every frame is full;
    periodic Hann window of fft_size, unnormalised, no centre padding. Differentiable w.r.t. ``audio``
    (first order only).

    Args:
        audio: [B, n] waveform.
    Returns:
        [B, n_frames, fft_size // 2 + 1] linear magnitude.
    """
    hop = int(fft_size * (1.0 - overlap))
    n = audio.shape[-1]
    n_frames = -(-n // hop)
    audio = nn.functional.pad(audio, (0, (n_frames - 1) * hop + fft_size - n))
    if window is None:
        window = torch.hann_window(fft_size, dtype=audio.dtype, device=audio.device)
    return _FramedRfftMagnitude.apply(audio, window.to(audio.dtype), hop)


class MultiScaleSpectralLoss(nn.Module):
    """Sum over FFT sizes of ``mag_weight * mean|S_p - S_t| + logmag_weight * mean|log S_p - log S_t|``.

    Matches magenta ddsp 3.7's ``SpectralLoss(loss_type='L1')`` (``compute_mag`` framing as in
    ``stft_magnitude``; its ``safe_log`` is ``log(max(S, 1e-5))``, a floor rather than ``log(S + eps)``).
    The mean runs over batch, bins and frames of each scale; scales are summed without normalisation.

    ``forward(pred, target)`` takes [B, n] waveforms and returns a scalar; gradients (first order,
    hand-written backward, checked against autograd through ``torch.stft``) reach ``pred`` and, if it
    requires grad, ``target``. Speed: ``bench/bench_losses.py``. With ``output='full'`` it returns a dict:
    ``loss`` (the scalar), ``mag`` and ``logmag`` (the unweighted sums over scales) and
    ``mag_{size}`` / ``logmag_{size}`` per scale (unweighted), all scalars; like auraloss's 'full' output.
    """

    def __init__(self, fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64), overlap: float = 0.75,
                 mag_weight: float = 1.0, logmag_weight: float = 1.0, eps: float = 1e-5,
                 output: str = "loss"):
        super().__init__()
        if output not in ("loss", "full"):
            raise ValueError(f"output must be 'loss' or 'full', got {output!r}")
        self.fft_sizes = tuple(int(s) for s in fft_sizes)
        for size in self.fft_sizes:
            if (size * (1.0 - overlap)) % 1 != 0:
                raise ValueError(f"fft size {size} with overlap {overlap} gives a fractional hop")
        self.overlap, self.mag_weight, self.logmag_weight = overlap, mag_weight, logmag_weight
        self.eps, self.output = eps, output

    def forward(self, pred: torch.Tensor, target: torch.Tensor):
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        terms: dict[str, torch.Tensor] = {}
        total = pred.new_zeros(())
        mag_sum, logmag_sum = pred.new_zeros(()), pred.new_zeros(())
        for size in self.fft_sizes:
            window = torch.hann_window(size, dtype=pred.dtype, device=pred.device)   # periodic, like TF
            hop = int(size * (1.0 - self.overlap))
            n_frames = -(-pred.shape[-1] // hop)                          # tf.signal.stft(pad_end=True)
            pad = (0, (n_frames - 1) * hop + size - pred.shape[-1])
            mag_term, logmag_term = _ScaleSpectralL1.apply(nn.functional.pad(pred, pad),
                                                           nn.functional.pad(target, pad), window, hop, self.eps)
            terms[f"mag_{size}"], terms[f"logmag_{size}"] = mag_term, logmag_term
            mag_sum, logmag_sum = mag_sum + mag_term, logmag_sum + logmag_term
            total = total + self.mag_weight * mag_term + self.logmag_weight * logmag_term
        if self.output == "loss":
            return total
        return {"loss": total, "mag": mag_sum, "logmag": logmag_sum, **terms}
