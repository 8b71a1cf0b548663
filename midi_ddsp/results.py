"""What the API's one-call methods return: rendered audio with its performances, and timbre transfer."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .io.audio import resample_limited
from .note_level.notes import Performance
from .synthesis.params import SynthParams


@dataclass
class RenderResult:
    """What :meth:`MidiDDSP.render` produced.

    Attributes:
        mix: float32 ``[samples]``, peak <= MIX_PEAK.
        stems: float32 ``[voices, samples]``, one row per voice, scaled by the same ``gain`` as the mix
            (so ``stems.sum(0) == mix``).
        performances: the performance of every voice (the level users edit and export).
        params: the synthesis parameters of every voice (``[1, frames, ...]`` each), or None when the render
            was asked not to keep them (saves memory on long pieces).
        sample_rate: Hz.
        gain: the linear gain applied to mix and stems to avoid clipping (1.0 when none was needed).
        warnings: one line per non-fatal problem (out-of-range notes, ...).
        timings: seconds per stage (``perform``, ``generate_and_synthesize``, ...).
    """

    mix: np.ndarray
    stems: np.ndarray
    performances: list[Performance]
    params: list[SynthParams] | None
    sample_rate: int
    gain: float = 1.0
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.mix.shape[-1] / self.sample_rate

    def resampled(self, sample_rate: int | None) -> "RenderResult":
        """The same result at ``sample_rate`` Hz (None: unchanged); a resampled signal whose peak overshoots
        full scale is scaled back to it."""
        if sample_rate is None or int(sample_rate) == self.sample_rate:
            return self
        stems = np.stack([resample_limited(s, self.sample_rate, sample_rate) for s in self.stems]) \
            if len(self.stems) else self.stems
        return replace(self, mix=resample_limited(self.mix, self.sample_rate, sample_rate), stems=stems,
                       sample_rate=int(sample_rate))


@dataclass
class TransferResult:
    """What :meth:`MidiDDSP.transfer` produced.

    Attributes:
        audio: float32 ``[samples]`` at ``sample_rate``, as long as the input (resampled to the model's rate),
            peak <= ``peak`` when a peak was asked for.
        params: the synthesis parameters (``[1, frames, ...]``).
        f0_hz, confidence, loudness_db: ``[frames]`` float32 features after octave shift and loudness
            adjustment (the model's inputs); ``note_on``: ``[frames]`` bool, the detected note frames.
        octave_shift: octaves actually applied (manual + automatic).
    """

    audio: np.ndarray
    sample_rate: int
    params: SynthParams
    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray
    note_on: np.ndarray
    octave_shift: int = 0

    def resampled(self, sample_rate: int | None) -> "TransferResult":
        """The audio at ``sample_rate`` Hz (None: unchanged), scaled back to full scale if it overshoots."""
        if sample_rate is None or int(sample_rate) == self.sample_rate:
            return self
        return replace(self, audio=resample_limited(self.audio, self.sample_rate, sample_rate),
                       sample_rate=int(sample_rate))


__all__ = ["RenderResult", "TransferResult"]
