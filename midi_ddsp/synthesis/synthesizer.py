"""The full DDSP signal chain: harmonic + filtered noise, then the per-instrument reverb.

One chain (:class:`~midi_ddsp.synthesis.ddsp.processors.Chain`) serves training and rendering:
:meth:`Synthesizer.forward` renders a whole signal through it, :meth:`Synthesizer.stream` returns the same
chain as a stateful block renderer (phase, filter and reverb tails carried), whose concatenated blocks equal
``forward`` to float rounding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .ddsp.effects import Reverb, ReverbControls
from .ddsp.processors import Chain, ChainBlocks, ChainControls, Sum
from .ddsp.synths import FilteredNoise, HarmonicControls, HarmonicSynth, NoiseControls
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
        self.chain = Chain(Sum(self.harmonic, self.noise), self.reverb)  # a plain object: no state-dict keys

    def controls(self, params: SynthParams, instrument: Tensor | None = None, reverb: bool = True,
                 impulse_response: Tensor | None = None, noise: Tensor | None = None,
                 generator: torch.Generator | None = None) -> ChainControls:
        """The chain's controls for ``params`` ``[batch, frames, ...]``.

        Args:
            instrument: instrument ids ``[batch]`` selecting each item's impulse response (with ``reverb``).
            reverb: False bypasses the reverb.
            impulse_response: IR ``[taps]`` or ``[batch or 1, taps]`` to use instead of the learned one.
            noise: the noise excitation ``[batch, samples]`` (of these frames), else drawn from ``generator``.
        """
        ir = self.reverb.select(instrument, impulse_response) if reverb else None
        return ChainControls(
            (HarmonicControls(params.amplitude, params.harmonic_distribution, params.f0_hz),
             NoiseControls(params.noise_magnitudes, noise, generator)),
            (ReverbControls(ir),))

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
        controls = self.controls(params, instrument, reverb, impulse_response, generator=generator)
        return self.chain.render(controls, n_samples, sample_rate)

    def stream(self, hop: int, sample_rate: float) -> ChainBlocks:
        """The chain as a block renderer: ``process(self.controls(block_params, ...))`` returns the samples
        complete so far (the harmonic part lags a hop, the noise filter a hop plus half its length), and
        ``flush()`` the rest; ``hop`` samples per frame in all."""
        return self.chain.stream(hop, sample_rate)
