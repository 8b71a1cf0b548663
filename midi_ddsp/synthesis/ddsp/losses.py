"""Multi-scale spectral loss (magenta ddsp ``SpectralLoss`` parity, L1 on magnitude and log magnitude)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MultiScaleSpectralLoss", "stft_magnitude"]


class _FramedRfftMagnitude(torch.autograd.Function):
    """|rfft(window * frames)| with a hand-written backward.

    Autograd through ``torch.stft`` is slow on CPU: the rfft backward runs a full-size complex FFT on a
    zero-padded gradient and the framing (as_strided) backward scatters element by element. Here the
    backward is one irfft per frame plus an overlap-add of ``fft_size / hop`` shifted slices; with
    ``Y = rfft(w * frame)`` and upstream gradient ``g`` on ``|Y|``:
    ``d/dframe = w * N * irfft(c * g * Y / |Y|)``, with ``c = 1`` at DC and Nyquist and ``1/2`` elsewhere.
    """

    @staticmethod
    def forward(ctx, audio: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
        size = window.shape[0]
        frames = audio.unfold(-1, size, hop)                               # [B, F, size], a view
        spec = torch.fft.rfft(frames * window)                             # [B, F, K]
        mag = spec.abs()
        ctx.save_for_backward(spec, mag, window)
        ctx.hop, ctx.n = hop, audio.shape[-1]
        return mag

    @staticmethod
    def backward(ctx, grad_mag: torch.Tensor):
        spec, mag, window = ctx.saved_tensors
        hop, n, size = ctx.hop, ctx.n, window.shape[0]
        scale = torch.full((spec.shape[-1],), 0.5 * size, dtype=mag.dtype, device=mag.device)
        scale[0] = size
        if size % 2 == 0:
            scale[-1] = size
        unit = spec / torch.where(mag > 0, mag, torch.ones_like(mag))      # Y / |Y|, 0 where Y == 0
        grad_frames = torch.fft.irfft(unit * (grad_mag * scale), n=size) * window   # [B, F, size]
        batch, n_frames = grad_frames.shape[:2]
        if size % hop == 0:                                                # overlap-add by block slices
            ratio = size // hop
            blocks = grad_frames.new_zeros(batch, n_frames + ratio - 1, hop)
            parts = grad_frames.reshape(batch, n_frames, ratio, hop)
            for k in range(ratio):
                blocks[:, k : k + n_frames] += parts[:, :, k]
            grad_audio = blocks.reshape(batch, -1)
        else:
            grad_audio = nn.functional.fold(grad_frames.transpose(1, 2), (1, (n_frames - 1) * hop + size),
                                             (1, size), stride=(1, hop)).reshape(batch, -1)
        grad_audio = nn.functional.pad(grad_audio, (0, n - grad_audio.shape[-1]))
        return grad_audio, None, None


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

    ``forward(pred, target)`` takes [B, n] waveforms and returns a scalar. With ``output='full'`` it
    returns a dict: ``loss`` (the scalar), ``mag`` and ``logmag`` (the unweighted sums over scales) and
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
        for size in self.fft_sizes:
            self.register_buffer(f"window_{size}", torch.hann_window(size), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor):
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        terms: dict[str, torch.Tensor] = {}
        total = pred.new_zeros(())
        mag_sum, logmag_sum = pred.new_zeros(()), pred.new_zeros(())
        for size in self.fft_sizes:
            window = getattr(self, f"window_{size}")
            mag_p = stft_magnitude(pred, size, self.overlap, window)
            mag_t = stft_magnitude(target, size, self.overlap, window)
            if self.mag_weight > 0 or self.output == "full":
                term = (mag_p - mag_t).abs().mean()
                terms[f"mag_{size}"] = term
                mag_sum = mag_sum + term
                total = total + self.mag_weight * term
            if self.logmag_weight > 0 or self.output == "full":
                term = (mag_p.clamp_min(self.eps).log() - mag_t.clamp_min(self.eps).log()).abs().mean()
                terms[f"logmag_{size}"] = term
                logmag_sum = logmag_sum + term
                total = total + self.logmag_weight * term
        if self.output == "loss":
            return total
        return {"loss": total, "mag": mag_sum, "logmag": logmag_sum, **terms}
