"""Output heads: raw network outputs -> physically meaningful SynthParams (DDSP's controls step)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .ddsp.functional import exp_sigmoid
from .params import SynthParams

NOISE_BIAS = -5.0  # DDSP's initial bias: noise starts ~exp_sigmoid(-5) ~ 1e-4, quiet


def normalized_harmonics(raw: Tensor, f0_hz: Tensor, sample_rate: float) -> Tensor:
    """exp_sigmoid, remove harmonics at or above Nyquist, renormalise to sum to 1. [B,F,H] -> [B,F,H]."""
    harmonics = exp_sigmoid(raw)
    k = torch.arange(1, raw.shape[-1] + 1, device=raw.device, dtype=raw.dtype)
    below = (f0_hz * k < sample_rate / 2).to(raw.dtype)
    harmonics = harmonics * below
    return harmonics / harmonics.sum(-1, keepdim=True).clamp_min(1e-7)


class SynthParamsHead(nn.Module):
    """Linear projection to ``1 + n_harmonics + n_noise_bands`` channels and DDSP's scalings."""

    def __init__(self, in_features: int, n_harmonics: int = 60, n_noise_bands: int = 65) -> None:
        super().__init__()
        self.n_harmonics = n_harmonics
        self.n_noise_bands = n_noise_bands
        self.proj = nn.Linear(in_features, 1 + n_harmonics + n_noise_bands)

    def forward(self, x: Tensor, f0_hz: Tensor, sample_rate: float, frame_rate: float) -> SynthParams:
        raw = self.proj(x)
        amp_raw, harm_raw, noise_raw = raw.split([1, self.n_harmonics, self.n_noise_bands], dim=-1)
        return SynthParams(
            f0_hz=f0_hz,
            amplitude=exp_sigmoid(amp_raw),
            harmonic_distribution=normalized_harmonics(harm_raw, f0_hz, sample_rate),
            noise_magnitudes=exp_sigmoid(noise_raw + NOISE_BIAS),
            frame_rate=frame_rate,
        )
