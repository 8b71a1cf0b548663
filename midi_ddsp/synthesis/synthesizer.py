"""The full DDSP signal chain: harmonic + filtered noise, then the per-instrument reverb."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .ddsp.effects import Reverb
from .ddsp.synths import FilteredNoise, HarmonicSynth
from .params import SynthParams


class Synthesizer(nn.Module):
    """SynthParams -> audio [batch, samples].

    The only learned part is the reverb bank (one impulse response per instrument).
    """

    def __init__(self, n_harmonics: int = 60, n_noise_bands: int = 65, n_instruments: int = 13,
                 reverb_length: int = 48000) -> None:
        super().__init__()
        self.harmonic = HarmonicSynth(n_harmonics=n_harmonics)
        self.noise = FilteredNoise(n_bands=n_noise_bands)
        self.reverb = Reverb(n_irs=n_instruments, ir_length=reverb_length)

    def forward(self, params: SynthParams, instrument: Tensor, n_samples: int, sample_rate: float,
                reverb: bool = True, impulse_response: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Render ``params``.

        Args:
            params: synthesis parameters, [batch, frames, ...].
            instrument: instrument ids [batch] (selects each item's impulse response).
            n_samples: output length in samples.
            sample_rate: output sample rate in Hz.
            reverb: False returns the dry signal.
            impulse_response: optional IR [batch or 1, taps] to use instead of the learned one.
            generator: random generator for the noise source (reproducible renders).
        """
        dry = self.harmonic(params.amplitude, params.harmonic_distribution, params.f0_hz,
                            n_samples=n_samples, sample_rate=sample_rate)
        dry = dry + self.noise(params.noise_magnitudes, n_samples=n_samples, generator=generator)
        if not reverb:
            return dry
        return self.reverb(dry, instrument, ir=impulse_response)
