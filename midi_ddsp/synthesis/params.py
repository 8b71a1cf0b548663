"""Frame-level DDSP synthesis parameters, the typed hand-off between models and the synthesizer."""
from __future__ import annotations

import math
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

    def curves(self) -> "SynthParams":
        """f0 and amplitude only: the harmonic and noise channels emptied (``[batch, frames, 0]``)."""
        return replace(self, harmonic_distribution=self.harmonic_distribution[..., :0],
                       noise_magnitudes=self.noise_magnitudes[..., :0])

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


def band_powers(params: SynthParams, sample_rate: float, lowest_hz: float = 44.0, bands_per_octave: int = 2,
                excitation_power: float = 1.0 / 3.0) -> Tensor:
    """Expected power of the synthesizer's output in log-spaced bands, per frame: [B, frames, n_bands].

    Harmonic ``k`` (``f0 * k`` Hz, amplitude ``a * d_k``) adds ``(a d_k)^2 / 2``; noise band ``j`` (centre
    ``j / (K - 1)`` of Nyquist, magnitude ``m_j``) adds ``excitation_power * m_j^2 / (K - 1)``, the power of
    white noise of that variance through the band's share of the filter, spread evenly over the band's
    interval (centre +- half the spacing). Bands are ``1 / bands_per_octave`` octave wide from ``lowest_hz`` (everything below falls in the first) to Nyquist.
    """
    n_bands = int(math.ceil(math.log2(sample_rate / 2 / lowest_hz) * bands_per_octave))

    def index(freq: Tensor) -> Tensor:
        octaves = torch.log2(freq.clamp_min(1e-3) / lowest_hz) * bands_per_octave
        return octaves.floor().clamp(0, n_bands - 1).long()

    h = params.harmonic_distribution.shape[-1]
    k = torch.arange(1, h + 1, device=params.f0_hz.device, dtype=params.f0_hz.dtype)
    harm = (params.amplitude * params.harmonic_distribution) ** 2 / 2
    out = torch.zeros(*harm.shape[:2], n_bands, dtype=harm.dtype, device=harm.device)
    out = out.scatter_add(-1, index(params.f0_hz * k), harm)
    n_noise = params.noise_magnitudes.shape[-1]
    noise = excitation_power * params.noise_magnitudes ** 2 / (n_noise - 1)
    return out + noise @ _noise_to_bands(n_noise, n_bands, sample_rate, lowest_hz, bands_per_octave).to(noise)


def _noise_to_bands(n_noise: int, n_bands: int, sample_rate: float, lowest_hz: float,
                    bands_per_octave: int) -> Tensor:
    """[n_noise, n_bands]: the share of each noise band's interval (its centre +- half the spacing, inside
    0 .. Nyquist) that lies in each log band."""
    nyquist = sample_rate / 2
    step = nyquist / (n_noise - 1)
    centres = torch.arange(n_noise, dtype=torch.float64) * step
    lo, hi = (centres - step / 2).clamp(0, nyquist), (centres + step / 2).clamp(0, nyquist)
    edges = lowest_hz * 2.0 ** (torch.arange(n_bands + 1, dtype=torch.float64) / bands_per_octave)
    edges[0], edges[-1] = 0.0, nyquist
    overlap = (torch.minimum(hi[:, None], edges[None, 1:]) - torch.maximum(lo[:, None], edges[None, :-1]))
    return (overlap.clamp_min(0) / (hi - lo)[:, None]).float()


def _share_db(power: Tensor, floor_db: float) -> Tensor:
    """Each band's share of the last axis's total power, in dB, floored at ``floor_db``."""
    share = power / power.sum(-1, keepdim=True).clamp_min(1e-20)
    return (10.0 * torch.log10(share.clamp_min(1e-20))).clamp_min(floor_db)


def ltas_db_l1(got: SynthParams, want: SynthParams, sample_rate: float, floor_db: float = -100.0,
               min_amplitude_db: float = -60.0) -> Tensor:
    """Error of the long-term average spectrum of each clip: per half-octave band (:func:`band_powers`), the
    power summed over the clip's sounding frames as ``10 log10`` of the clip's total, floored at ``floor_db``;
    mean over bands and clips of ``|g_b - w_b| / |floor_db|``. Power-weighted where :func:`band_db_l1` weighs
    every frame alike: a band a few loud frames over-fill (a bright attack, the top notes) counts here as a
    listener hears it in the long-term spectrum. Frames whose target amplitude is below ``min_amplitude_db`` are
    skipped."""
    n = min(got.n_frames, want.n_frames)
    g, w = got.frames(0, n), want.frames(0, n)
    sounding = (amplitude_to_db(w.amplitude) > min_amplitude_db).to(g.amplitude.dtype)

    def clip_db(p: SynthParams) -> Tensor:
        return _share_db((band_powers(p, sample_rate) * sounding).sum(1), floor_db)

    has = (sounding.sum(1) > 0).to(g.amplitude.dtype)
    err = (clip_db(g) - clip_db(w)).abs().mean(-1, keepdim=True) / abs(floor_db)
    return (err * has).sum() / has.sum().clamp_min(1.0)


def band_db_l1(got: SynthParams, want: SynthParams, sample_rate: float, floor_db: float = -100.0,
               min_amplitude_db: float = -60.0) -> Tensor:
    """Error of the spectral envelope in half-octave bands (harmonics and noise together, :func:`band_powers`):
    mean over bands and sounding frames of ``|g_b - w_b| / |floor_db|``, each ``10 log10`` of the band's share
    of its own frame's power, floored at ``floor_db``. Unlike the distribution L1 and the harmonic profile
    (floored at -60 dB below the strongest partial) it sees a band tens of dB down that many weak partials or
    a noise floor fill: the long-term spectrum a listener hears in the upper octaves and below the fundamental.
    Frames whose target amplitude is below ``min_amplitude_db`` are skipped."""
    n = min(got.n_frames, want.n_frames)
    g, w = got.frames(0, n), want.frames(0, n)

    def rel_db(p: SynthParams) -> Tensor:
        return _share_db(band_powers(p, sample_rate), floor_db)

    sounding = (amplitude_to_db(w.amplitude) > min_amplitude_db).to(g.amplitude.dtype)
    err = (rel_db(g) - rel_db(w)).abs().mean(-1, keepdim=True) / abs(floor_db)
    return (err * sounding).sum() / sounding.sum().clamp_min(1.0)
