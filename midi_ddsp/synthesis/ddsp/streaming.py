"""Stateful, seam-free block processing of the synths and effects.

Each stream takes consecutive blocks of frame-rate controls (``[batch, n_frames, channels]``) or audio
(``[batch, n_samples]``) and returns the audio samples that are complete so far; :meth:`flush` ends the
signal and returns the rest. State carried between blocks replaces any pre-roll or overlap:

- :class:`HarmonicStream`: the oscillator's fundamental phase (cycles, float64) goes out of one block and
  into the next, and the block's last frame is kept, because the samples between two frames need both;
- :class:`FIRStream`: the time-varying FIR filter of :func:`functional.ltv_fir_filter` (windowed
  overlap-add): the excitation's last hop and the filtered frames' tails are carried;
- :class:`ConvolutionStream`: a convolution reverb: the tail of every block (as long as the impulse
  response) is carried into the next ones.

Concatenating the blocks of a stream gives the whole-signal result of the same op (to float rounding, which
differs only where FFT sizes do), for any split into blocks. Latencies differ (the oscillator lags one hop,
the filter one hop plus its delay); :class:`Aligner` holds the earlier stream back so streams can be summed.
Knows nothing of MIDI, notes or models.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import functional as DF


class Aligner:
    """Sums several streams whose outputs arrive with different latencies: buffers each one and releases the
    samples that every stream has produced. ``push(i, audio)`` adds stream ``i``'s next samples; ``pop()``
    returns the complete part of the sum ``[batch, n]``."""

    def __init__(self, n_inputs: int) -> None:
        self.buffers: list[Tensor | None] = [None] * n_inputs

    def push(self, index: int, audio: Tensor) -> None:
        held = self.buffers[index]
        self.buffers[index] = audio if held is None else torch.cat([held, audio], -1)

    def pop(self) -> Tensor:
        if any(b is None for b in self.buffers):
            return _first(self.buffers).new_zeros(_first(self.buffers).shape[0], 0)
        n = min(b.shape[-1] for b in self.buffers)
        out = self.buffers[0][..., :n]
        for b in self.buffers[1:]:
            out = out + b[..., :n]
        self.buffers = [b[..., n:].clone() for b in self.buffers]  # clones: a slice would pin the whole block
        return out


def _first(items):
    return next(b for b in items if b is not None)


class HarmonicStream:
    """Block-wise :func:`functional.harmonic_oscillator`: phase in, phase out.

    Args:
        hop: samples per frame (an integer); sample_rate: Hz; fade_start, amplitude_upsampling: as the
            oscillator's.
    Each :meth:`process` takes the next frames (``f0_hz [B, n, 1]`` Hz, ``harmonic_amplitudes [B, n, H]``
    linear) and returns ``[B, hop * (frames so far - 1) - emitted]`` samples: the samples between the last
    frame of a block and the first of the next wait for that next frame. :meth:`flush` returns the last
    frame's own hop (its values held), so the total is ``hop`` per frame, as the whole-signal oscillator.
    """

    def __init__(self, hop: int, sample_rate: float, fade_start: float | None = 0.9,
                 amplitude_upsampling: str = "hann") -> None:
        self.hop, self.sample_rate = int(hop), float(sample_rate)
        self.fade_start, self.amplitude_upsampling = fade_start, amplitude_upsampling
        self.phase: Tensor | None = None  # [B] cycles in [0, 1) after the last emitted sample
        self.last: tuple[Tensor, Tensor] | None = None  # the last frame seen (f0, amplitudes)

    def _run(self, f0: Tensor, amps: Tensor, n_intervals: int) -> Tensor:
        n = f0.shape[1]
        if not bool(amps.any()):  # silence: only the phase moves on
            return self._advance(f0, n_intervals)
        audio, self.phase = DF.harmonic_oscillator(
            f0, amps, n * self.hop, self.sample_rate, fade_start=self.fade_start,
            amplitude_upsampling=self.amplitude_upsampling, initial_phase=self.phase,
            stop=n_intervals * self.hop, return_phase=True)
        return audio

    def _advance(self, f0: Tensor, n_intervals: int) -> Tensor:
        """Silent samples; the phase advances by the sum of the linearly interpolated f0 / sample_rate."""
        f = f0[..., 0].to(torch.float64)
        f_next = torch.cat([f[:, 1:], f[:, -1:]], 1)[:, :n_intervals]
        hop = self.hop
        gained = (f[:, :n_intervals] * (hop + 1) / 2 + f_next * (hop - 1) / 2).sum(1) / self.sample_rate
        start = self.phase if self.phase is not None else torch.zeros_like(gained)
        self.phase = torch.frac(start + gained)
        return f0.new_zeros(f0.shape[0], n_intervals * hop)

    def process(self, f0_hz: Tensor, harmonic_amplitudes: Tensor) -> Tensor:
        if self.last is not None:
            f0_hz = torch.cat([self.last[0], f0_hz], 1)
            harmonic_amplitudes = torch.cat([self.last[1], harmonic_amplitudes], 1)
        self.last = (f0_hz[:, -1:].clone(), harmonic_amplitudes[:, -1:].clone())
        return self._run(f0_hz, harmonic_amplitudes, f0_hz.shape[1] - 1)

    def flush(self) -> Tensor:
        if self.last is None:
            return torch.zeros(0, 0)
        f0, amps = self.last
        self.last = None
        return self._run(f0, amps, 1)


class FIRStream:
    """Block-wise windowed time-varying FIR filter (:func:`functional.ltv_fir_filter` with ``windowed=True``).

    Frame ``i`` filters the Hann-windowed excitation around sample ``i * hop`` (two hops long) with its own
    impulse response; the filtered frames overlap-add. :meth:`process` takes ``audio [B, n * hop]`` and
    ``irs [B or 1, n, L]`` for the next ``n`` frames; ``delay`` samples of latency are removed as in the
    whole-signal filter. Output is complete up to one hop plus ``delay`` before the end of the input seen.
    """

    def __init__(self, hop: int, delay: int = 0, chunk_elements: int = DF.CHUNK_ELEMENTS) -> None:
        self.hop, self.delay, self.chunk_elements = int(hop), int(delay), chunk_elements
        self.prev: Tensor | None = None  # the excitation's last hop
        self.acc: Tensor | None = None  # pending output from (frames seen - 1) * hop on (before the delay)
        self.last_ir: Tensor | None = None
        self.skip = self.hop + self.delay  # samples before output sample 0 still to drop
        self.frames = 0
        self.emitted = 0

    def _add(self, x: Tensor, irs: Tensor) -> None:
        n, hop = irs.shape[1], self.hop
        window = torch.hann_window(2 * hop, periodic=True, dtype=x.dtype, device=x.device)
        n_out = (n + 1) * hop + irs.shape[-1] - 1
        if bool(irs.any()):
            y = DF._framed_convolution(x, irs, 2 * hop, hop, n, window, 0, n_out, self.chunk_elements)
        else:  # silent filters: nothing to convolve
            y = x.new_zeros(x.shape[0], n_out)
        if self.acc is not None:
            y[:, : self.acc.shape[-1]] += self.acc
        self.acc = y

    def _emit(self, n: int) -> Tensor:
        out, self.acc = self.acc[:, :n], self.acc[:, n:].clone()
        if self.skip:
            dropped = min(self.skip, out.shape[-1])
            out, self.skip = out[:, dropped:], self.skip - dropped
        self.emitted += out.shape[-1]
        return out

    def process(self, audio: Tensor, irs: Tensor) -> Tensor:
        n, hop = irs.shape[1], self.hop
        if audio.shape[-1] != n * hop:
            raise ValueError(f"expected {n * hop} samples for {n} frames, got {audio.shape[-1]}")
        batch = max(audio.shape[0], irs.shape[0])
        prev = self.prev if self.prev is not None else audio.new_zeros(batch, hop)
        x = torch.cat([prev.expand(batch, -1), audio.expand(batch, -1)], -1)
        self.prev, self.last_ir = x[:, -hop:].clone(), irs[:, -1:].clone()
        self._add(x, irs)
        self.frames += n
        return self._emit(n * hop)

    def flush(self) -> Tensor:
        """The closing frame (centred on the end, holding the last IR) and everything still pending."""
        if self.prev is None:
            return torch.zeros(0, 0)
        x = torch.cat([self.prev, torch.zeros_like(self.prev)], -1)
        self._add(x, self.last_ir)
        out = self._emit(self.acc.shape[-1])
        keep = self.frames * self.hop - (self.emitted - out.shape[-1])
        self.prev = self.acc = None
        return out[:, :keep]


class ConvolutionStream:
    """Block-wise causal convolution with a fixed impulse response ``ir [B or 1, m]``, tails carried.

    ``process(audio [B, n])`` returns ``[B, n]``: this block convolved plus the tails of earlier blocks that
    fall into it; :meth:`flush` returns nothing (like :func:`functional.fft_convolve`, the output is as long
    as the input). ``dry`` adds the input itself (a reverb's direct sound).
    """

    def __init__(self, ir: Tensor, dry: bool = False) -> None:
        self.ir, self.dry = ir, bool(dry)
        self.tail: Tensor | None = None

    def process(self, audio: Tensor) -> Tensor:
        n = audio.shape[-1]
        if n == 0:
            return audio
        y = audio.new_zeros(audio.shape[0], n + self.ir.shape[-1] - 1)
        sounding = torch.nonzero(audio.abs().amax(0)).flatten()
        if sounding.numel():  # convolve only the sounding part: silence stays exactly silent (no FFT rounding)
            i, j = int(sounding[0]), int(sounding[-1]) + 1
            part = DF.fft_convolve(audio[:, i:j], self.ir.to(audio.dtype), full=True)
            y[:, i:i + part.shape[-1]] = part
        if self.dry:
            y[:, :n] += audio
        if self.tail is not None:
            m = min(self.tail.shape[-1], y.shape[-1])
            y[:, :m] += self.tail[:, :m]
            if self.tail.shape[-1] > y.shape[-1]:  # a block shorter than the IR: the old tail reaches further
                y = torch.cat([y, self.tail[:, y.shape[-1]:]], -1)
        self.tail = y[:, n:].clone()  # carried state is copied: a slice would keep the whole block alive
        return y[:, :n]

    def flush(self) -> Tensor:
        self.tail = None
        return torch.zeros(0, 0)


__all__ = ["Aligner", "HarmonicStream", "FIRStream", "ConvolutionStream"]
