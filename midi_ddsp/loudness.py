"""Output level: renders and transfers normalised to a loudness target (ITU-R BS.1770-4).

The CLI writes ``render`` and ``transfer`` outputs at ``TARGET_LUFS`` (-16 LUFS integrated, the usual level
for streamed and downloaded music) with the true peak (4x oversampled, BS.1770-4 Annex 2) at most
``TRUE_PEAK_DBFS`` (-1 dBFS): one gain for the whole piece, so stems keep their balance and sum to the mix.
When reaching the target would put the true peak above the ceiling, a look-ahead peak limiter (20 ms, the
same gain curve for every stem) takes the loudest moments down, by at most 6 dB; a piece that would need
more stays below the target (reported). ``--loudness LUFS`` sets another target, ``--no-normalize``
keeps the models' raw level (then only the anti-clipping gain of the mix applies). The Python API renders
at the raw level; :func:`normalize` is the same step for its results.

The signal is read in chunks into a **1 ms block profile** (:class:`Profile`: K-weighted energy and true
peak per block); the gating, the limiter's gain curve and its make-up work on that profile, and one more
pass measures what was written. A 10-minute 48 kHz piece thus costs a few float32 passes and no
whole-signal float64 copy. The K-weighting is pyloudnorm's design (two biquads at any rate), applied as an
FFT convolution with their impulse response; the tests hold the result against pyloudnorm's own meter.
NumPy only: scipy.signal alone took 0.8 s to import in every render.

A global gain depends on the whole piece, so with normalisation an edit of one note changes the level of
everything a little; the local-edit promise (README) is about the raw level (``--no-normalize``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TARGET_LUFS = -16.0
TRUE_PEAK_DBFS = -1.0
MIN_LUFS, MAX_LUFS = -70.0, 0.0
SILENT_LUFS = -70.0  # BS.1770's absolute gate: quieter audio is not normalised
MAX_LIMIT_DB = 6.0  # the peak limiter takes at most this much off the loudest moments
LIMITER_WINDOW_S = 0.02  # its gain changes over this long (no clicks, little distortion)
BLOCK_S = 0.001  # resolution of the profile and of the limiter's gain curve
GATE_S, GATE_STEP_S = 0.4, 0.1  # BS.1770 gating blocks (400 ms, 75 % overlap)
CHUNK = 1 << 18  # samples per step of a pass
RUN_GAP = 32  # blocks between two blocks needing exact true peaks that are computed as well
_MARGIN = 16  # samples each side of a chunk that the 4x interpolation filter reaches (it uses 10)


#: BS.1770's K-weighting as two RBJ-cookbook biquads (pyloudnorm's design at any rate): a high shelf of
#: +4 dB at 1500 Hz (Q 1/sqrt 2) and a high-pass at 38 Hz (Q 0.5).
K_SHELF_DB, K_SHELF_HZ, K_SHELF_Q = 4.0, 1500.0, 1.0 / math.sqrt(2.0)
K_HIGHPASS_HZ, K_HIGHPASS_Q = 38.0, 0.5
K_IR_S = 0.1  # the cascade's impulse response is kept this long (its tail is below 1e-10 of its peak by then)


def k_weighting_biquads(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The K-weighting stages as ``(b, a)`` coefficient triples (``a[0] = 1``) at ``sample_rate`` Hz."""
    out = []
    for kind, fc, q in (("shelf", K_SHELF_HZ, K_SHELF_Q), ("highpass", K_HIGHPASS_HZ, K_HIGHPASS_Q)):
        w0 = 2.0 * math.pi * fc / sample_rate
        cos, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
        if kind == "shelf":
            a_ = 10.0 ** (K_SHELF_DB / 40.0)
            r = 2.0 * math.sqrt(a_) * alpha
            b = [a_ * ((a_ + 1) + (a_ - 1) * cos + r), -2 * a_ * ((a_ - 1) + (a_ + 1) * cos),
                 a_ * ((a_ + 1) + (a_ - 1) * cos - r)]
            a = [(a_ + 1) - (a_ - 1) * cos + r, 2 * ((a_ - 1) - (a_ + 1) * cos), (a_ + 1) - (a_ - 1) * cos - r]
        else:
            b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
            a = [1 + alpha, -2 * cos, 1 - alpha]
        out.append((np.asarray(b) / a[0], np.asarray(a) / a[0]))
    return out


@lru_cache(maxsize=4)
def _k_weighting_ir(sample_rate: int) -> np.ndarray:
    """The K-weighting cascade's impulse response, ``K_IR_S`` long: its frequency response sampled on a grid
    of 4x that length and transformed back (time aliasing below 1e-20)."""
    n_ir = int(K_IR_S * sample_rate)
    n = 1 << (4 * n_ir - 1).bit_length()
    z = np.exp(-1j * np.pi * np.arange(n // 2 + 1) / (n // 2))  # e^{-i w} on [0, pi]
    response = np.ones(z.size, complex)
    for b, a in k_weighting_biquads(sample_rate):
        response *= np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    return np.fft.irfft(response, n)[:n_ir]


class _KWeighting:
    """Streams a signal through the K-weighting: overlap-save FFT convolution with its impulse response, in
    FFTs of 8x the response's length (at least 2^15)."""

    def __init__(self, sample_rate: int) -> None:
        ir = _k_weighting_ir(int(sample_rate))
        self.n_fft = max(1 << 15, 1 << (8 * ir.size - 1).bit_length())
        self.spectrum = np.fft.rfft(ir, self.n_fft)
        self.keep = ir.size - 1  # input samples carried over from one FFT to the next
        self.history = np.zeros(self.keep)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        out, hop = np.empty(y.size), self.n_fft - self.keep
        for a in range(0, y.size, hop):
            buf = np.concatenate([self.history, y[a:a + hop]])
            out[a:a + hop] = np.fft.irfft(np.fft.rfft(buf, self.n_fft) * self.spectrum, self.n_fft)[self.keep:buf.size]
            self.history = buf[buf.size - self.keep:]
        return out


def _running(fn, x: np.ndarray, width: int) -> np.ndarray:
    """``fn`` (np.max / np.min) over a centred window of ``width`` (odd) values, edges padded with the
    nearest value."""
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    return fn(np.lib.stride_tricks.sliding_window_view(padded, width), axis=-1)


@dataclass
class Gain:
    """A gain for a whole signal: ``value`` times, where the limiter acted, a ``curve`` of per-block factors
    (``[blocks]``, <= 1, at the centres of blocks of ``block`` samples, linear in between)."""

    value: float
    curve: np.ndarray | None = None
    block: int = 1

    def samples(self, a: int, b: int) -> np.ndarray | float:
        """The gain of samples ``[a, b)``: ``[b - a]`` float32, or a number without a curve."""
        if self.curve is None:
            return self.value
        i0 = max(0, a // self.block - 1)  # the curve around [a, b) only: runs can be short and many
        i1 = min(self.curve.size, b // self.block + 2)
        centres = (np.arange(i0, i1) + 0.5) * self.block
        g = np.interp(np.arange(a, b) + 0.5, centres, self.curve[i0:i1]) * self.value
        return g.astype(np.float32)

    def block_max(self) -> np.ndarray | float:
        """Largest gain inside each block (the curve is linear between centres): for the peak bound."""
        if self.curve is None:
            return self.value
        c = self.curve
        return np.maximum(c, np.maximum(np.r_[c[:1], c[:-1]], np.r_[c[1:], c[-1:]]) * 0.5 + c * 0.5) * self.value

    def flat_blocks(self, n_blocks: int, reach: int = 1) -> np.ndarray:
        """``[n_blocks]``: the gain of each block where it is one constant over the block and ``reach`` blocks
        either side (the curve equal from ``reach + 1`` blocks before to ``reach + 1`` after: the samples there
        interpolate between those centres), NaN where it changes."""
        if self.curve is None:
            return np.full(n_blocks, float(self.value))
        c, width = self.curve, 2 * (reach + 1) + 1
        flat = _running(np.max, c, width) == _running(np.min, c, width)
        return np.where(flat, c * self.value, np.nan)

    def apply_(self, x: np.ndarray) -> np.ndarray:
        """Scale ``x [..., samples]`` in place (chunk by chunk) and return it."""
        if self.curve is None:
            if self.value != 1.0:
                x *= np.float32(self.value)
            return x
        for lo in range(0, x.shape[-1], CHUNK):
            hi = min(x.shape[-1], lo + CHUNK)
            x[..., lo:hi] *= self.samples(lo, hi)
        return x

    @property
    def min(self) -> float:
        return self.value * (float(self.curve.min()) if self.curve is not None else 1.0)

    @property
    def max(self) -> float:
        return self.value * (float(self.curve.max()) if self.curve is not None else 1.0)


@lru_cache(maxsize=1)
def _interpolator() -> np.ndarray:
    """The 4x true-peak interpolator: an 81-tap Kaiser-windowed (beta 5) sinc low-pass at the old Nyquist,
    unity gain at DC per phase (the design of scipy's ``resample_poly``), delay 10 input samples."""
    n = np.arange(81) - 40
    h = np.sinc(n / 4.0) * np.kaiser(81, 5.0)
    return h / h.sum() * 4


def _true_peak_run(x: np.ndarray, lo: int, hi: int, gain: Gain | None) -> np.ndarray:
    """Per-sample true-peak magnitude ``[hi - lo]`` of ``x * gain`` (samples and their 4x-oversampled
    values) for samples ``[lo, hi)``; the signal is zero outside ``x``. Each of the interpolator's four
    phases is a short convolution (21 taps; phase 0 is the sample itself times 1.0006)."""
    a0, b0 = max(0, lo - _MARGIN), min(x.size, hi + _MARGIN)
    seg = np.asarray(x[a0:b0], np.float64)
    if gain is not None:
        seg = seg * gain.samples(a0, b0)
    h = _interpolator()
    a, n = lo - a0, hi - lo
    out = np.abs(seg[a:a + n])
    for p in range(4):  # value at sample i + p / 4: sum_j h[4 j + p] seg[i + 10 - j]
        y = np.convolve(seg, h[p::4])[a + 10:a + 10 + n]
        np.maximum(out, np.abs(y, out=y), out=out)
    return out


@dataclass
class Profile:
    """A mono signal ``audio`` seen in blocks of ``block`` samples (about 1 ms; the last may be short):
    ``energy`` [blocks] float64 sums of squares of the K-weighted signal and ``bound`` [blocks] an upper
    bound of each block's true peak (its neighbourhood's sample peak times the interpolator's gain), from
    one chunked pass; exact true peaks are computed only where the bound matters (:meth:`peaks`)."""

    audio: np.ndarray
    energy: np.ndarray
    bound: np.ndarray
    block: int
    sample_rate: int
    _exact: np.ndarray | None = None

    @classmethod
    def of(cls, audio: np.ndarray, sample_rate: int) -> "Profile":
        """Read ``audio [samples]`` chunk by chunk (it is kept by reference, not copied)."""
        x = np.asarray(audio).reshape(-1)
        n, block = x.size, _block(sample_rate)
        energy, peak = np.zeros(-(-n // block)), np.zeros(-(-n // block))
        step = max(1, CHUNK // block) * block
        weighting = _KWeighting(sample_rate)
        for lo in range(0, n, step):
            y = np.asarray(x[lo:lo + step], np.float64)
            edges = np.arange(0, y.size, block)
            peak[lo // block:lo // block + edges.size] = np.maximum.reduceat(np.abs(y), edges)
            y = weighting(y)
            energy[lo // block:lo // block + edges.size] = np.add.reduceat(np.square(y), edges)
        reach = -(-_MARGIN // block)  # blocks the interpolator reaches into on each side
        near = _running(np.max, peak, 2 * reach + 1) if peak.size else peak
        h = _interpolator()
        worst = max(float(np.abs(h[p::4]).sum()) for p in range(4))
        return cls(x, energy, near * max(worst, 1.0), block, int(sample_rate))

    @property
    def n(self) -> int:
        return self.audio.size

    def peaks(self, threshold: float, gain: Gain | None = None) -> np.ndarray:
        """Per-block true peaks of ``audio * gain`` ``[blocks]``: exact wherever the bound (times the gain's
        block maximum) exceeds ``threshold``, the bound elsewhere (so never below the true value). Where the
        gain is constant over a block and the interpolator's reach, the true peak is that constant times the
        plain signal's (the interpolation is linear); exact values of the plain signal are kept for later calls,
        so only blocks where the gain changes are interpolated again."""
        out = self.bound * (1.0 if gain is None else gain.block_max())
        todo = np.flatnonzero(out > threshold)
        reach = -(-_MARGIN // self.block)  # blocks the interpolator reaches into on each side
        scale = np.ones(self.bound.size) if gain is None else gain.flat_blocks(self.bound.size, reach)
        flat, varying = todo[~np.isnan(scale[todo])], todo[np.isnan(scale[todo])]
        if flat.size:
            if self._exact is None:
                self._exact = np.full(self.bound.size, np.nan)
            missing = flat[np.isnan(self._exact[flat])]
            self._exact_into(self._exact, missing, None)
            out[flat] = self._exact[flat] * scale[flat]
        self._exact_into(out, varying, gain)
        return out

    def _exact_into(self, out: np.ndarray, blocks: np.ndarray, gain: Gain | None) -> None:
        """Exact true peaks of ``audio * gain`` for the (sorted) ``blocks``, written into ``out``."""
        if not blocks.size:
            return
        # runs of blocks (gaps of up to RUN_GAP blocks bridged: fewer, longer calls), in pieces of <= CHUNK
        breaks = np.flatnonzero(np.diff(blocks) > RUN_GAP)
        per = max(1, CHUNK // self.block)
        for s, e in zip(blocks[np.r_[0, breaks + 1]], blocks[np.r_[breaks, blocks.size - 1]] + 1):
            for b0 in range(int(s), int(e), per):
                b1 = min(int(e), b0 + per)
                lo, hi = b0 * self.block, min(self.n, b1 * self.block)
                tp = _true_peak_run(self.audio, lo, hi, gain)
                out[b0:b1] = np.maximum.reduceat(tp, np.arange(0, hi - lo, self.block))

    def true_peak(self, gain: Gain | None = None) -> float:
        """True peak (linear) of ``audio * gain``: exact, computed on the blocks that could hold it."""
        if self.bound.size == 0:
            return 0.0
        best = int(np.argmax(self.bound * (1.0 if gain is None else gain.block_max())))
        lo, hi = best * self.block, min(self.n, (best + 1) * self.block)
        lower = float(_true_peak_run(self.audio, lo, hi, gain).max())  # the true peak is at least this
        return float(self.peaks(lower, gain).max())

    def lufs(self, gain: Gain | None = None) -> float:
        """Integrated loudness (LUFS; -inf for silence) of ``audio * gain`` (a curve taken per block: within
        a small fraction of a dB for the limiter's smooth curve, exact for a number)."""
        e = self.energy
        if gain is not None:
            e = e * np.square(gain.value if gain.curve is None else gain.value * gain.curve)
        rate, n = self.sample_rate, self.n
        t_g = min(GATE_S, n / rate)  # a signal shorter than a gating block is one block
        count = int(np.round((n / rate - t_g) / (t_g * 0.25))) + 1
        j = np.arange(count)
        # BS.1770 block bounds in samples (pyloudnorm's rounding), then in whole profile blocks
        lo = np.round((t_g * 0.25 * j * rate).astype(np.int64) / self.block).astype(np.int64)
        hi = np.round((t_g * (0.25 * j + 1) * rate).astype(np.int64) / self.block).astype(np.int64)
        csum = np.r_[0.0, np.cumsum(e)]
        z = (csum[np.minimum(hi, e.size)] - csum[np.minimum(lo, e.size)]) / (t_g * rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            blocks = -0.691 + 10.0 * np.log10(z)
            above = blocks >= SILENT_LUFS
            if not above.any():
                return -math.inf
            relative = -0.691 + 10.0 * np.log10(z[above].mean()) - 10.0
            keep = above & (blocks > relative)
            value = -0.691 + 10.0 * np.log10(z[keep].mean()) if keep.any() else -math.inf
        return float(value) if math.isfinite(value) else -math.inf


def _block(sample_rate: int) -> int:
    """Samples per profile block: the divisor of a 100 ms gating step closest to ``BLOCK_S``, so the
    BS.1770 blocks fall on block boundaries (any divisor when the step is not a whole number of samples)."""
    step, want = int(round(GATE_STEP_S * sample_rate)), BLOCK_S * sample_rate
    divisors = [d for d in range(1, int(2 * want) + 2) if step % d == 0] or [1]
    return max(1, min(divisors, key=lambda d: abs(d - want)))


@dataclass
class Level:
    """The gain applied and the levels before and after (LUFS integrated, dBFS true peak, as measured on
    the output); ``peak_limited``: the target was not reached."""

    gain: Gain
    lufs_before: float
    lufs_after: float
    true_peak_dbfs: float
    peak_limited: bool = False


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of mono ``audio [samples]`` in LUFS (-inf for silence)."""
    x = np.asarray(audio).reshape(-1)
    if x.size < 16 or not np.any(x):
        return -math.inf
    return Profile.of(x, sample_rate).lufs()


def true_peak(audio: np.ndarray) -> float:
    """True peak (linear) of ``audio [samples]``: the largest magnitude of the signal oversampled 4x."""
    x = np.asarray(audio).reshape(-1)
    return float(_true_peak_run(x, 0, x.size, None).max()) if x.size else 0.0


def check_target(lufs: float) -> float:
    from .errors import MidiDDSPError

    if not (isinstance(lufs, (int, float)) and math.isfinite(lufs) and MIN_LUFS <= lufs <= MAX_LUFS):
        raise MidiDDSPError(f"--loudness must be between {MIN_LUFS:g} and {MAX_LUFS:g} LUFS, got {lufs}")
    return float(lufs)


def limiter_curve(peak: np.ndarray, ceiling: float, block_s: float = BLOCK_S,
                  window_s: float = LIMITER_WINDOW_S) -> np.ndarray:
    """Per-block factors ``[blocks]`` (<= 1) that keep block true peaks ``peak`` at most ``ceiling``: the
    needed reduction, held by a minimum filter over ``+-window_s`` and averaged over ``window_s`` (so it
    never falls short of the need in any block it covers, and changes over ``window_s``: 20 ms)."""
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if np.all(need >= 1.0):
        return np.ones_like(need)
    w = max(int(round(window_s / block_s)), 1)
    held = _running(np.min, need, 2 * w + 1)
    width = w | 1
    csum = np.r_[0.0, np.cumsum(np.pad(held, width // 2, mode="edge"))]
    return np.minimum((csum[width:] - csum[:-width]) / width, 1.0)


def level_gain(mix: np.ndarray, sample_rate: int, target_lufs: float = TARGET_LUFS,
               ceiling_dbfs: float = TRUE_PEAK_DBFS) -> Level:
    """The gain that takes ``mix`` to ``target_lufs`` with its true peak at most ``ceiling_dbfs``: a number,
    or with a limiter curve where peaks need it; the limiter takes at most ``MAX_LIMIT_DB`` off the loudest
    moments, beyond that the target is not reached (``peak_limited``)."""
    prof = Profile.of(mix, sample_rate)
    before, tp = prof.lufs(), prof.true_peak()
    if before < SILENT_LUFS or tp <= 0:
        return Level(Gain(1.0), before, before, 20 * math.log10(tp) if tp > 0 else -math.inf)
    ceiling = 10.0 ** (ceiling_dbfs / 20.0) * (1.0 - 1e-4)
    g = 10.0 ** ((target_lufs - before) / 20.0)
    gain, limited = Gain(g), False
    if g * tp > ceiling:
        for _ in range(4):  # limiting takes some loudness off: make it up and limit again
            curve = limiter_curve(prof.peaks(ceiling / g) * g, ceiling, prof.block / prof.sample_rate)
            if float(curve.min()) < 10.0 ** (-MAX_LIMIT_DB / 20.0):  # too deep: limit the depth, miss the target
                g = min(g, ceiling / tp * 10.0 ** (MAX_LIMIT_DB / 20.0))
                curve = limiter_curve(prof.peaks(ceiling / g) * g, ceiling, prof.block / prof.sample_rate)
                gain, limited = Gain(g, curve, prof.block), True
                break
            gain = Gain(g, curve, prof.block)
            short = target_lufs - prof.lufs(gain)
            if short < 0.05:
                break
            g *= 10.0 ** (short / 20.0)
    tp_out = prof.true_peak(gain)  # what will be written, measured
    if tp_out > ceiling:  # the curve's per-block bound is a hair short inside a block, or make-up overshot
        gain.value *= ceiling / tp_out
        tp_out = ceiling
    after = prof.lufs(gain)
    return Level(gain, before, after, 20 * math.log10(max(tp_out, 1e-12)), limited or after < target_lufs - 0.1)


def normalize(mix: np.ndarray, stems: np.ndarray | None, sample_rate: int, target_lufs: float = TARGET_LUFS,
              ceiling_dbfs: float = TRUE_PEAK_DBFS, copy: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None, Level]:
    """``(mix, stems, level)`` at the target (see the module docstring): the same gain, a number or a curve,
    for the mix and every stem, so the stems still sum to the mix; float32 (scaled in place with
    ``copy=False`` when they already are float32: saves memory on long pieces)."""
    level = level_gain(mix, sample_rate, target_lufs, ceiling_dbfs)
    mix = np.array(mix, np.float32, copy=copy or None)
    stems = None if stems is None else np.array(stems, np.float32, copy=copy or None)
    level.gain.apply_(mix)
    if stems is not None:
        level.gain.apply_(stems)
    return mix, stems, level


def describe(level: Level) -> str:
    """``-16.0 LUFS, true peak -3.2 dBFS`` (and why the target was not reached, when it was not)."""
    if not math.isfinite(level.lufs_after):
        return "silent"
    text = f"{level.lufs_after:.1f} LUFS, true peak {level.true_peak_dbfs:.1f} dBFS"
    if level.peak_limited:
        text += f" (short of the target: its peaks would need more than {MAX_LIMIT_DB:g} dB of limiting)"
    elif level.gain.curve is not None and level.gain.min < level.gain.max * 0.999:
        text += f", peaks limited by up to {20 * math.log10(level.gain.max / level.gain.min):.1f} dB"
    return text


__all__ = ["Level", "Gain", "Profile", "integrated_loudness", "true_peak", "level_gain", "normalize", "describe",
           "check_target", "TARGET_LUFS", "TRUE_PEAK_DBFS"]
