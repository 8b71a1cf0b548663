"""SynthParams of many voices -> audio, window by window, through the synthesizer's streaming chain.

Each voice has its own block renderer (:meth:`Synthesizer.stream`: oscillator phase, noise-filter state and
reverb tail carried from window to window), so consecutive windows join without a seam and the output of
any window layout equals the whole-signal render to float rounding. The noise excitation is a fixed function
of (seed, voice, sample index) (:func:`noise_excitation`). A voice that is silent in a window (no notes:
zero amplitude and noise) costs almost nothing there: its phase is advanced and its reverb tail rung out.

:class:`SynthWorker` runs the synthesis of one window on a second thread while the generator computes the
next one (one torch thread on each side: on two cores this beats splitting every op over two threads).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from .generation import derive_seed
from .synthesis.params import SynthParams
from .synthesis.synthesizer import Synthesizer

NOISE_BLOCK = 1 << 16  # samples per independently seeded block of the noise excitation
MIX_PEAK = 0.99
TAIL_DROP_DB = 60.0  # renders end where the tail after the last note falls this far below the mix peak
TAIL_FADE_S = 0.02  # ... after a short fade (below that level already)


def noise_excitation(seed: int, voice: int, start: int, stop: int) -> Tensor:
    """Uniform noise in [-1, 1) for samples ``[start, stop)`` of voice ``voice``: ``[stop - start]`` float32.

    A fixed function of (seed, voice, sample index), made of independently seeded blocks of
    :data:`NOISE_BLOCK` samples, so any window of a render sees the same excitation as the whole render.
    """
    if stop <= start:
        return torch.zeros(0)
    first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
    parts = []
    for b in range(first, last + 1):
        g = torch.Generator().manual_seed(derive_seed(seed, voice, 0x4E015E, b))
        parts.append(torch.rand(NOISE_BLOCK, generator=g) * 2 - 1)
    x = torch.cat(parts)
    off = start - first * NOISE_BLOCK
    return x[off:off + stop - start]


def ir_decay_s(ir: Tensor | np.ndarray, sample_rate: float, drop_db: float = 60.0) -> float:
    """Seconds until the energy left in impulse response ``ir [taps]`` falls ``drop_db`` below its total
    (Schroeder backward integration); 0 for a silent IR."""
    x = np.asarray(ir.detach().cpu() if isinstance(ir, Tensor) else ir, dtype=np.float64).reshape(-1)
    energy = np.cumsum((x ** 2)[::-1])[::-1]
    if energy.size == 0 or energy[0] <= 0:
        return 0.0
    above = np.flatnonzero(energy > energy[0] * 10.0 ** (-drop_db / 10.0))
    return float(above[-1] + 1) / sample_rate if above.size else 0.0


def peak_abs(x: np.ndarray) -> float:
    """``max |x|`` without a temporary copy of ``x`` (0 for an empty array)."""
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def tail_end(tail_mix: np.ndarray, start: int, peak: float, hop: int = 1, drop_db: float = TAIL_DROP_DB,
             fade: int = 0) -> int:
    """Where a render ends: ``fade`` samples after the last sample at or after ``start`` whose level is
    above ``peak`` (the whole mix's) minus ``drop_db``, rounded up to a whole ``hop``, at least ``start``
    rounded up, and at most ``len(tail_mix)``. Samples before ``start`` (the last note's offset) all stay."""
    n = tail_mix.shape[0]
    s = min(max(int(start), 0), n)
    end = s
    if peak > 0:
        loud = np.flatnonzero(np.abs(tail_mix[s:]) > peak * 10.0 ** (-drop_db / 20.0))
        if loud.size:
            end = s + int(loud[-1]) + 1 + int(fade)
    return min(n, -(-end // hop) * hop)


def fade_out(rows: np.ndarray, end: int, fade: int) -> None:
    """Raised-cosine fade over the ``fade`` samples before ``end`` of ``rows [..., n]``, in place."""
    a = max(0, end - int(fade))
    if end > a:
        w = 0.5 + 0.5 * np.cos(np.pi * (np.arange(a, end) - a + 1) / (end - a + 1))
        rows[..., a:end] *= w.astype(rows.dtype)


def mix_stems(stems: np.ndarray, peak: float = MIX_PEAK, mix: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Sum ``stems [voices, samples]`` (or take the given ``mix``, summed already: then ``stems`` may be
    empty); if the mix peak exceeds ``peak``, scale mix and stems by the same gain, in place.

    Returns:
        (mix [samples], stems, gain).
    """
    stems = np.asarray(stems, dtype=np.float32)
    if mix is None:
        mix = stems.sum(0) if stems.shape[0] else np.zeros(stems.shape[1], np.float32)
    top = peak_abs(mix)
    gain = 1.0
    if top > peak:
        gain = peak / top
        mix *= np.float32(gain)
        stems *= np.float32(gain)  # in place: stems can be large
    return mix.astype(np.float32, copy=False), stems, gain


def impulse_responses(synth: Synthesizer, instrument_ids: Sequence[int], impulse_response=None) -> Tensor:
    """``[V, taps]``: each voice's learned IR, or the user's ``impulse_response`` (``[taps]`` or ``[V, taps]``)."""
    V = len(instrument_ids)
    if impulse_response is None:
        return synth.reverb.irs.detach()[torch.as_tensor(list(instrument_ids), dtype=torch.long)]
    ir = torch.as_tensor(np.asarray(impulse_response, dtype=np.float32))
    if ir.dim() == 1:
        ir = ir[None].expand(V, -1)
    if ir.dim() != 2 or ir.shape[0] not in (1, V) or ir.shape[1] < 1:
        raise ValueError(f"impulse_response must be [taps] or [voices, taps], got {tuple(ir.shape)}")
    return ir.expand(V, -1).contiguous()


class VoiceBank:
    """One streaming synthesizer per voice. :meth:`process` takes a window's parameters and returns each
    voice's newly completed samples; :meth:`flush` the rest. In all, each voice gives ``hop`` samples per
    frame.

    Args:
        synth: the Synthesizer; instrument_ids: ``[V]`` (select each voice's reverb).
        hop: samples per frame; sample_rate: Hz; seed: the noise seed.
        reverb: add the reverb; impulse_response: optional user IR (see :func:`impulse_responses`).
        voice_keys: the integer each voice's noise is keyed to (default: its position).
    """

    def __init__(self, synth: Synthesizer, instrument_ids: Sequence[int], hop: int, sample_rate: int, seed: int,
                 reverb: bool = True, impulse_response=None, voice_keys: Sequence[int] | None = None) -> None:
        self.synth, self.hop, self.sample_rate, self.seed = synth, int(hop), int(sample_rate), int(seed)
        self.ids = [int(i) for i in instrument_ids]
        self.keys = list(range(len(self.ids))) if voice_keys is None else [int(k) for k in voice_keys]
        self.irs = impulse_responses(synth, self.ids, impulse_response) if reverb else None
        self.streams = [synth.stream(self.hop, self.sample_rate) for _ in self.ids]
        self.frames = [0] * len(self.ids)  # frames given to each voice so far

    def _controls(self, v: int, params: SynthParams):
        a = self.frames[v] * self.hop
        n = params.n_frames * self.hop
        self.frames[v] += params.n_frames
        silent = not (bool(params.amplitude.abs().max() > 0) or bool(params.noise_magnitudes.abs().max() > 0))
        noise = torch.zeros(1, n) if silent else noise_excitation(self.seed, self.keys[v], a, a + n)[None]
        ir = None if self.irs is None else self.irs[v:v + 1]
        return self.synth.controls(params, reverb=ir is not None, impulse_response=ir, noise=noise)

    def process(self, params: Sequence[SynthParams]) -> list[np.ndarray]:
        """``params``: one ``[1, n, ...]`` SynthParams per voice (the next ``n`` frames of each)."""
        return [self.streams[v].process(self._controls(v, p))[0].numpy() for v, p in enumerate(params)]

    def flush(self) -> list[np.ndarray]:
        out = []
        for s in self.streams:
            y = s.flush()
            out.append(y[0].numpy() if y.numel() else np.zeros(0, np.float32))
        return out


class SynthWorker:
    """Runs submitted jobs in order on one background thread, at most one job ahead of the caller (so memory
    stays bounded to two windows), with torch and NumPy's BLAS limited to one thread each meanwhile (BLAS
    threads that spin between the f0 sampler's small products took the synthesizer's core: the sampler ran
    2x slower); or, with
    ``parallel=False``, runs each job at once on the calling thread. :meth:`submit` returns the result of the
    job before (or, run at once, of this one) wrapped in a list (empty when there is none); :meth:`drain`
    the last result. Errors surface in the caller."""

    def __init__(self, parallel: bool | None) -> None:
        self.parallel = torch.get_num_threads() >= 2 if parallel is None else bool(parallel)
        self.pool: ThreadPoolExecutor | None = None
        self.pending: Future | None = None

    def __enter__(self) -> "SynthWorker":
        if self.parallel:
            self.blas_limit = threadpool_limits(1, user_api="blas")  # first: restored last, below
            self.limit = torch_threads(1)
            self.limit.__enter__()
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="midi-ddsp-synth")
        return self

    def submit(self, fn, *args) -> list:
        if self.pool is None:
            return [fn(*args)]
        done = self.drain()
        # inference mode is thread-local: enter it on the worker too
        self.pending = self.pool.submit(_in_inference_mode, fn, *args)
        return done

    def drain(self) -> list:
        if self.pending is None:
            return []
        pending, self.pending = self.pending, None
        return [pending.result()]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.limit.__exit__(None, None, None)
                self.blas_limit.restore_original_limits()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Limit torch's intra-op threads to ``n`` inside the block (never raises the count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _in_inference_mode(fn, *args):
    with torch.inference_mode():
        return fn(*args)


__all__ = ["noise_excitation", "ir_decay_s", "peak_abs", "mix_stems", "tail_end", "fade_out", "TAIL_DROP_DB", "TAIL_FADE_S", "impulse_responses", "VoiceBank", "SynthWorker",
           "torch_threads", "MIX_PEAK", "NOISE_BLOCK"]
