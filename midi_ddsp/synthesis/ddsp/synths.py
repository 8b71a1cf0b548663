"""Synthesizers: harmonic oscillator bank and filtered noise.

Each synth splits *controls* from *signal*: ``get_controls(raw...)`` turns unconstrained network outputs into
physical controls (positive amplitudes, normalised distributions); ``forward(controls..., n_samples, ...)``
renders audio from controls, so a user can drive it directly with hand-made physical values. Frame-rate
tensors are ``[batch, n_frames, channels]``, audio ``[batch, n_samples]``; ``n_samples`` and ``sample_rate``
are call arguments, never constructor constants.

As sources of a :mod:`~midi_ddsp.synthesis.ddsp.processors` chain, each synth also has
``render(controls, n_samples, sample_rate)`` (its typed controls in one tuple) and
``stream(hop, sample_rate)``, a stateful block renderer from :mod:`~midi_ddsp.synthesis.ddsp.streaming`
whose concatenated blocks equal ``render``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import functional as DF
from .streaming import FIRStream, HarmonicStream


class HarmonicControls(NamedTuple):
    """Controls of :class:`HarmonicSynth` (unpack into its ``forward``)."""

    amplitude: Tensor  # [B, F, 1] overall linear amplitude
    harmonic_distribution: Tensor  # [B, F, H] relative harmonic amplitudes, sum of audible ones = 1
    f0_hz: Tensor  # [B, F, 1] fundamental in Hz


class HarmonicSynth(nn.Module):
    """Additive synth of ``n_harmonics`` integer harmonics of f0.

    Args:
        n_harmonics: number of harmonics H (default 60).
        fade_start: harmonics fade out smoothly between ``fade_start * nyquist`` and Nyquist (see
            :func:`functional.nyquist_gain`); ``None`` gives magenta ddsp's hard cut.
        amplitude_upsampling: ``'hann'`` (overlapping Hann windows, no corners) or ``'linear'``.
    """

    def __init__(self, n_harmonics: int = 60, fade_start: float | None = 0.9, amplitude_upsampling: str = "hann"):
        super().__init__()
        self.n_harmonics = n_harmonics
        self.fade_start = fade_start
        self.amplitude_upsampling = amplitude_upsampling

    def get_controls(self, raw_amplitude: Tensor, raw_harmonic_distribution: Tensor, f0_hz: Tensor,
                     sample_rate: float) -> HarmonicControls:
        """Raw network outputs -> controls.

        ``raw_amplitude [B, F, 1]`` and ``raw_harmonic_distribution [B, F, H]`` go through ``exp_sigmoid``;
        the distribution is weighted by each harmonic's Nyquist gain g at the frame's f0 (0 at or above
        Nyquist) and normalised to sum to 1. With the hard cut this is exactly ddsp's
        ``normalize_below_nyquist``. With the fade, :meth:`forward` applies g again per sample (so that no
        control can alias), so a harmonic inside the fade band sounds at about g^2 of its share; renormalising
        over the smoothly fading weights keeps the other harmonics from jumping when one crosses Nyquist.
        """
        amplitude = DF.exp_sigmoid(raw_amplitude)
        distribution = DF.exp_sigmoid(raw_harmonic_distribution)
        k = torch.arange(1, distribution.shape[-1] + 1, device=f0_hz.device, dtype=distribution.dtype)
        distribution = distribution * DF.nyquist_gain(f0_hz * k, sample_rate, self.fade_start)
        distribution = distribution / distribution.sum(-1, keepdim=True).clamp_min(1e-7)
        return HarmonicControls(amplitude, distribution, f0_hz)

    def forward(self, amplitude: Tensor, harmonic_distribution: Tensor, f0_hz: Tensor, n_samples: int,
                sample_rate: float) -> Tensor:
        """Controls (``[B, F, 1]`` amplitude, ``[B, F, H]`` distribution, ``[B, F, 1]`` f0 in Hz) ->
        ``[B, n_samples]`` audio. Harmonics are additionally faded per sample at their instantaneous
        frequency, so no control can alias."""
        if harmonic_distribution.shape[-1] != self.n_harmonics:
            raise ValueError(f"expected {self.n_harmonics} harmonics, got {harmonic_distribution.shape[-1]}")
        return DF.harmonic_oscillator(
            f0_hz, amplitude * harmonic_distribution, n_samples, sample_rate,
            fade_start=self.fade_start, amplitude_upsampling=self.amplitude_upsampling)


    def render(self, controls: HarmonicControls, n_samples: int, sample_rate: float) -> Tensor:
        """:meth:`forward` on a :class:`HarmonicControls` tuple."""
        return self(*controls, n_samples=n_samples, sample_rate=sample_rate)

    def stream(self, hop: int, sample_rate: float) -> "HarmonicBlocks":
        """A block renderer: ``process(HarmonicControls of the next frames)`` -> the samples complete so far."""
        return HarmonicBlocks(self, HarmonicStream(hop, sample_rate, self.fade_start, self.amplitude_upsampling))


class HarmonicBlocks:
    """:class:`HarmonicSynth` block by block (phase carried; see :class:`streaming.HarmonicStream`)."""

    def __init__(self, synth: HarmonicSynth, stream: HarmonicStream) -> None:
        self.synth, self.inner = synth, stream

    def process(self, controls: HarmonicControls) -> Tensor:
        if controls.harmonic_distribution.shape[-1] != self.synth.n_harmonics:
            raise ValueError(f"expected {self.synth.n_harmonics} harmonics, got "
                             f"{controls.harmonic_distribution.shape[-1]}")
        return self.inner.process(controls.f0_hz, controls.amplitude * controls.harmonic_distribution)

    def flush(self) -> Tensor:
        return self.inner.flush()


class NoiseControls(NamedTuple):
    """Controls of :class:`FilteredNoise`.

    ``magnitudes [B, F, K]`` linear band gains; ``excitation [B, n_samples]`` the white noise to filter (for a
    block: the block's samples), or None to draw uniform noise in [-1, 1) from ``generator``.
    """

    magnitudes: Tensor
    excitation: Tensor | None = None
    generator: torch.Generator | None = None


class FilteredNoise(nn.Module):
    """Uniform white noise through a time-varying linear-phase FIR filter.

    Args:
        n_bands: number K of filter magnitudes, evenly spaced from 0 Hz to Nyquist (default 65, giving
            2 * (K - 1) = 128-tap filters).
        initial_bias: added to raw outputs before ``exp_sigmoid`` in :meth:`get_controls` (ddsp: -5, so an
            untrained network starts quiet).
    """

    def __init__(self, n_bands: int = 65, initial_bias: float = -5.0):
        super().__init__()
        self.n_bands = n_bands
        self.initial_bias = initial_bias

    def get_controls(self, raw_magnitudes: Tensor) -> Tensor:
        """``[B, F, K]`` raw outputs -> positive linear band magnitudes ``[B, F, K]``."""
        return DF.exp_sigmoid(raw_magnitudes + self.initial_bias)

    def forward(self, noise_magnitudes: Tensor, n_samples: int, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> Tensor:
        """Band magnitudes ``[B, F, K]`` -> ``[B, n_samples]`` filtered noise.

        The excitation is uniform noise in [-1, 1) drawn from ``generator`` (or pass your own ``noise``
        ``[B, n_samples]``). Filtering uses windowed overlap-add (no block clicks) and compensates the
        filters' latency, so frame i is heard at sample ``i * n_samples / F``.
        """
        irs = DF.frequency_impulse_response(noise_magnitudes)
        if noise is None:
            noise = self.excitation(noise_magnitudes, n_samples, generator)
        return DF.ltv_fir_filter(noise, irs, delay=irs.shape[-1] // 2)

    @staticmethod
    def excitation(like: Tensor, n_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Uniform white noise in [-1, 1), ``[B, n_samples]`` (batch, dtype and device of ``like``)."""
        return torch.rand(like.shape[0], n_samples, generator=generator, dtype=like.dtype,
                          device=like.device) * 2 - 1

    def render(self, controls: NoiseControls, n_samples: int, sample_rate: float | None = None) -> Tensor:
        """:meth:`forward` on a :class:`NoiseControls` tuple (``sample_rate`` is not needed: bands span 0..Nyquist)."""
        return self(controls.magnitudes, n_samples, generator=controls.generator, noise=controls.excitation)

    def stream(self, hop: int, sample_rate: float | None = None) -> "NoiseBlocks":
        """A block renderer: ``process(NoiseControls of the next frames, with their excitation)``."""
        return NoiseBlocks(hop)


class NoiseBlocks:
    """:class:`FilteredNoise` block by block (filter state carried; see :class:`streaming.FIRStream`)."""

    def __init__(self, hop: int) -> None:
        self.hop = int(hop)
        self.inner: FIRStream | None = None

    def process(self, controls: NoiseControls) -> Tensor:
        m = controls.magnitudes
        if bool(m.any()):
            irs = DF.frequency_impulse_response(m)
        else:  # a silent block: zero filters of the same length, without the FFTs
            irs = m.new_zeros(m.shape[0], m.shape[1], 2 * (m.shape[-1] - 1))
        if self.inner is None:
            self.inner = FIRStream(self.hop, delay=irs.shape[-1] // 2)
        n = controls.magnitudes.shape[1] * self.hop
        noise = controls.excitation
        if noise is None:
            noise = FilteredNoise.excitation(controls.magnitudes, n, controls.generator)
        return self.inner.process(noise, irs)

    def flush(self) -> Tensor:
        return self.inner.flush() if self.inner is not None else torch.zeros(0, 0)
