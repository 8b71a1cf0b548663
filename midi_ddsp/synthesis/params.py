"""Frame-level DDSP synthesis parameters, the typed hand-off between models and the synthesizer."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from .ddsp.functional import amplitude_to_db


@dataclass
class SynthParams:
    """Controls for the harmonic-plus-noise synthesizer, at ``frame_rate`` frames per second.

    Attributes:
        f0_hz: fundamental frequency [batch, frames, 1], Hz.
        amplitude: overall harmonic amplitude [batch, frames, 1], linear (1.0 = full scale).
        harmonic_distribution: relative harmonic amplitudes [batch, frames, n_harmonics], non-negative,
            summing to 1 over the harmonics below Nyquist.
        noise_magnitudes: filtered-noise band magnitudes [batch, frames, n_bands], linear, bands spaced
            evenly from 0 Hz to Nyquist.
        frame_rate: frames per second (Hz).
    """

    f0_hz: Tensor
    amplitude: Tensor
    harmonic_distribution: Tensor
    noise_magnitudes: Tensor
    frame_rate: float = 250.0

    def __post_init__(self) -> None:
        shapes = {f.name: getattr(self, f.name).shape for f in fields(self) if f.name != "frame_rate"}
        batch_time = {s[:2] for s in shapes.values()}
        if len(batch_time) != 1 or any(len(s) != 3 for s in shapes.values()):
            raise ValueError(f"SynthParams tensors must share [batch, frames, channels] leading dims: {shapes}")
        if self.f0_hz.shape[-1] != 1 or self.amplitude.shape[-1] != 1:
            raise ValueError("f0_hz and amplitude must have one channel")

    @property
    def n_frames(self) -> int:
        return self.f0_hz.shape[1]

    @property
    def batch_size(self) -> int:
        return self.f0_hz.shape[0]

    def duration_s(self) -> float:
        return self.n_frames / self.frame_rate

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "frame_rate"}

    def map(self, fn) -> "SynthParams":
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t.detach()``)."""
        return replace(self, **{k: fn(v) for k, v in self.tensors().items()})

    def to(self, *args, **kwargs) -> "SynthParams":
        return self.map(lambda t: t.to(*args, **kwargs))

    def frames(self, start: int, stop: int) -> "SynthParams":
        """A time slice [start, stop) in frames."""
        return self.map(lambda t: t[:, start:stop])

    @staticmethod
    def cat(items: list["SynthParams"], dim: int = 1) -> "SynthParams":
        first = items[0]
        return replace(first, **{k: torch.cat([getattr(p, k) for p in items], dim=dim) for k in first.tensors()})


def params_l1(got: SynthParams, want: SynthParams, noise_range_db: float = 120.0) -> Tensor:
    """Distance between parameter sets: amplitude |dB difference| / 80 and noise |dB difference| /
    ``noise_range_db`` (both floored at minus their range; means over frames and bands) plus the harmonic
    distribution's L1 (summed over harmonics, mean over frames), on the common frames.

    The noise range reaches 120 dB: with an 80 dB floor a band the instrument leaves empty (a horn's 11-22 kHz
    octave lies ~100 dB below its total) cost nothing below -80 dB and the generator left broadband hiss there."""
    n = min(got.n_frames, want.n_frames)
    g, w = got.frames(0, n), want.frames(0, n)
    noise = (amplitude_to_db(g.noise_magnitudes, range_db=noise_range_db)
             - amplitude_to_db(w.noise_magnitudes, range_db=noise_range_db))
    return ((amplitude_to_db(g.amplitude) - amplitude_to_db(w.amplitude)).abs().mean() / 80.0
            + (g.harmonic_distribution - w.harmonic_distribution).abs().sum(-1).mean()
            + noise.abs().mean() / noise_range_db)


def harmonic_db_l1(got: SynthParams, want: SynthParams, floor_db: float = -60.0,
                   min_amplitude_db: float = -60.0) -> Tensor:
    """Error of the harmonic profile in dB: mean over harmonics and sounding frames of
    ``|g_k - w_k| / |floor_db|``, where ``g_k, w_k`` are ``20 log10`` of the distributions relative to the
    target's strongest harmonic of the frame, floored at ``floor_db``. Weak partials count as much as strong
    ones (a distribution L1 barely sees a fundamental 20 dB down). Frames whose target amplitude is below
    ``min_amplitude_db`` (rests, silence) are skipped; harmonics both sides put at 0 (above Nyquist) add 0."""
    n = min(got.n_frames, want.n_frames)
    g, w = got.frames(0, n), want.frames(0, n)
    w_db = amplitude_to_db(w.harmonic_distribution, range_db=200.0)
    top = w_db.amax(-1, keepdim=True)
    g_rel = (amplitude_to_db(g.harmonic_distribution, range_db=200.0) - top).clamp_min(floor_db)
    w_rel = (w_db - top).clamp_min(floor_db)
    sounding = (amplitude_to_db(w.amplitude) > min_amplitude_db).to(g_rel.dtype)       # [B, F, 1]
    err = (g_rel - w_rel).abs().mean(-1, keepdim=True) / abs(floor_db)
    return (err * sounding).sum() / sounding.sum().clamp_min(1.0)
