"""Output heads: raw network outputs -> physically meaningful SynthParams (DDSP's controls step)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .ddsp.functional import exp_sigmoid
from .params import SynthParams

NOISE_BIAS = -5.0  # DDSP's initial bias: noise starts ~exp_sigmoid(-5) ~ 1e-4, quiet


def normalized_harmonics(raw: Tensor, f0_hz: Tensor, sample_rate: float, envelope: Tensor | None = None) -> Tensor:
    """exp_sigmoid (times ``envelope``, linear factors [B,F,H], when given), remove harmonics at or above
    Nyquist, renormalise to sum to 1. [B,F,H] -> [B,F,H]."""
    harmonics = exp_sigmoid(raw) if envelope is None else exp_sigmoid(raw) * envelope
    k = torch.arange(1, raw.shape[-1] + 1, device=raw.device, dtype=raw.dtype)
    below = (f0_hz * k < sample_rate / 2).to(raw.dtype)
    harmonics = harmonics * below
    return harmonics / harmonics.sum(-1, keepdim=True).clamp_min(1e-7)


ENVELOPE_LOW_HZ = 50.0       # the envelope grid: log-spaced points from here ...
ENVELOPE_HIGH_HZ = 24000.0   # ... to here (partials outside take the end points' gain)


class FrequencyEnvelope(nn.Module):
    """A gain over *frequency* (not harmonic number) for the partials: a resonance, a formant or the top-end
    cut of a recorded instrument stays where it is in Hz whatever note is played, which a distribution over
    harmonic numbers can only imitate note by note.

    A linear layer gives, per frame, ``n_points`` gains on a grid spaced evenly in log frequency from
    ``ENVELOPE_LOW_HZ`` to ``ENVELOPE_HIGH_HZ`` (one unit of its output: ``20 * LOG_GAIN_SCALE`` dB, so that
    the layer learns at the pace of the rest of the network); each partial takes the gain interpolated at its
    frequency. The layer starts at zero (no change), so a network trained without it is warm-started unchanged.
    """

    LOG_GAIN_SCALE = 2.5  # log10 amplitude per unit of the layer's output

    def __init__(self, in_features: int, n_points: int) -> None:
        super().__init__()
        self.n_points = n_points
        self.proj = nn.Linear(in_features, n_points)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, f0_hz: Tensor, n_harmonics: int) -> Tensor:
        """[B, F, in] features, [B, F, 1] f0 (Hz) -> [B, F, n_harmonics] linear amplitude factors."""
        log_gain = (self.LOG_GAIN_SCALE * self.proj(x)).clamp(-6.0, 3.0)  # log10 amplitude: -120..+60 dB
        k = torch.arange(1, n_harmonics + 1, device=x.device, dtype=x.dtype)
        span = math.log2(ENVELOPE_HIGH_HZ / ENVELOPE_LOW_HZ)
        pos = torch.log2((f0_hz * k).clamp_min(1e-3) / ENVELOPE_LOW_HZ) * ((self.n_points - 1) / span)
        pos = pos.clamp(0, self.n_points - 1)
        lo = pos.floor().long().clamp(max=self.n_points - 2)
        w = pos - lo
        g = log_gain.gather(-1, lo) * (1 - w) + log_gain.gather(-1, lo + 1) * w
        return torch.pow(10.0, g)


class SynthParamsHead(nn.Module):
    """Linear projection to ``1 + n_harmonics + n_noise_bands`` channels and DDSP's scalings; with
    ``envelope_points`` > 0 the partials also pass a :class:`FrequencyEnvelope`."""

    def __init__(self, in_features: int, n_harmonics: int = 60, n_noise_bands: int = 65,
                 envelope_points: int = 0) -> None:
        super().__init__()
        self.n_harmonics = n_harmonics
        self.n_noise_bands = n_noise_bands
        self.proj = nn.Linear(in_features, 1 + n_harmonics + n_noise_bands)
        self.envelope = FrequencyEnvelope(in_features, envelope_points) if envelope_points > 0 else None

    def forward(self, x: Tensor, f0_hz: Tensor, sample_rate: float, frame_rate: float) -> SynthParams:
        raw = self.proj(x)
        amp_raw, harm_raw, noise_raw = raw.split([1, self.n_harmonics, self.n_noise_bands], dim=-1)
        envelope = None if self.envelope is None else self.envelope(x, f0_hz, self.n_harmonics)
        return SynthParams(
            f0_hz=f0_hz,
            amplitude=exp_sigmoid(amp_raw),
            harmonic_distribution=normalized_harmonics(harm_raw, f0_hz, sample_rate, envelope),
            noise_magnitudes=exp_sigmoid(noise_raw + NOISE_BIAS),
            frame_rate=frame_rate,
        )
