"""Stateless differentiable DSP ops.

Conventions: frame-rate tensors are ``[batch, n_frames, channels]``, audio is ``[batch, n_samples]``,
frequencies in Hz, gains linear unless the name says dB. Frame ``i`` of ``n_frames`` frames spanning
``n_samples`` samples is centred on sample ``i * n_samples / n_frames``; after the last frame its value is held.

Every op is differentiable with autograd, works in float32 or float64, and keeps memory bounded on long
inputs by working in chunks (time chunks for the oscillator, frame groups for the filters).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Elements per intermediate [batch, chunk, channels] tensor; ~4 MB in float32, small enough to stay in cache.
CHUNK_ELEMENTS = 2**20


# --------------------------------------------------------------------------------------------- scales, units
def exp_sigmoid(x: Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> Tensor:
    """Positive, bounded scale for network outputs: ``max_value * sigmoid(x) ** ln(exponent) + threshold``.

    Same definition and defaults as magenta ddsp: output in (threshold, max_value + threshold], about x10 per
    unit of ``x`` in its log-like region.
    """
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def power_to_db(power: Tensor, ref_db: float = 0.0, range_db: float = 80.0) -> Tensor:
    """Power -> dB re ``ref_db``, floored at ``-range_db`` (ddsp's definition)."""
    db = 10.0 * torch.log10(power.clamp_min(10.0 ** (-range_db / 10.0))) - ref_db
    return db.clamp_min(-range_db)


def amplitude_to_db(amplitude: Tensor, ref_db: float = 0.0, range_db: float = 80.0) -> Tensor:
    """Linear amplitude -> dB (20 log10 |a|) re ``ref_db``, floored at ``-range_db``."""
    return power_to_db(amplitude**2, ref_db, range_db)


def db_to_power(db: Tensor) -> Tensor:
    """dB -> power (10 ** (db / 10))."""
    return 10.0 ** (db / 10.0)


def db_to_amplitude(db: Tensor) -> Tensor:
    """dB -> linear amplitude (10 ** (db / 20))."""
    return 10.0 ** (db / 20.0)


def hz_to_midi(hz: Tensor) -> Tensor:
    """Frequency in Hz -> fractional MIDI pitch (A4 = 440 Hz = 69). 0 Hz (or below) maps to MIDI 0."""
    midi = 69.0 + 12.0 * torch.log2(hz.clamp_min(1e-10) / 440.0)
    return torch.where(hz > 0, midi, torch.zeros_like(midi))


def midi_to_hz(midi: Tensor, zero_is_silence: bool = False) -> Tensor:
    """Fractional MIDI pitch -> Hz. With ``zero_is_silence``, MIDI 0 (or below) maps to 0 Hz."""
    hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return torch.where(midi > 0, hz, torch.zeros_like(hz)) if zero_is_silence else hz


def nyquist_gain(freq_hz: Tensor, sample_rate: float, fade_start: float | None = 0.9) -> Tensor:
    """Anti-alias gain of an oscillator at ``freq_hz``.

    1 below ``fade_start * nyquist``, a raised-cosine fade to 0 at Nyquist, 0 at and above Nyquist. With
    ``fade_start=None``: magenta ddsp's hard cut (1 below Nyquist, 0 at or above). Differentiable in
    ``freq_hz`` inside the fade.
    """
    nyquist = sample_rate / 2.0
    if fade_start is None or fade_start >= 1.0:
        return (freq_hz < nyquist).to(freq_hz.dtype)
    start = fade_start * nyquist
    half_angle = ((freq_hz - start) * (0.5 * math.pi / (nyquist - start))).clamp_(0.0, 0.5 * math.pi)
    return torch.cos(half_angle).square()  # = 0.5 + 0.5 cos(pi x), x = position in the fade


# ------------------------------------------------------------------------------------------------ upsampling
def _frame_positions(t0: int, t1: int, n_frames: int, n_samples: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """For samples ``t0..t1-1``: left frame index j, right frame index (clamped), fraction in [0, 1) (float64).

    Sample t sits at frame position ``t * n_frames / n_samples`` (exact integer arithmetic, any n_samples).
    """
    num = torch.arange(t0, t1, device=device, dtype=torch.int64) * n_frames
    j = torch.div(num, n_samples, rounding_mode="floor")
    frac = (num - j * n_samples).to(torch.float64) / n_samples
    return j, (j + 1).clamp_max(n_frames - 1), frac


def _hann_fraction(frac: Tensor) -> Tensor:
    """Raised-cosine crossfade weight of the right frame: 0.5 - 0.5 cos(pi * frac)."""
    return 0.5 - 0.5 * torch.cos(math.pi * frac)


def upsample_linear(x: Tensor, n_samples: int) -> Tensor:
    """Linear interpolation of frames to samples (for f0). ``[B, F, C] -> [B, n_samples, C]``.

    Matches ddsp's ``resample(method='linear')`` (TF v1 bilinear resize, corners not aligned).
    """
    j, j1, frac = _frame_positions(0, n_samples, x.shape[1], n_samples, x.device)
    return torch.lerp(x[:, j], x[:, j1], frac.to(x.dtype)[:, None])


def upsample_hann(x: Tensor, n_samples: int) -> Tensor:
    """Overlap-add of Hann windows (for amplitude envelopes). ``[B, F, C] -> [B, n_samples, C]``.

    Each frame value is spread by a Hann window of two hops centred on the frame; with 50 % overlap the windows
    sum to one, so between two frames the value follows a raised-cosine crossfade with no corners. Written as
    that crossfade it works for any ``n_samples`` (ddsp's ``method='window'`` needs divisibility); when
    ``n_samples`` is a multiple of ``F`` it equals ddsp's output.
    """
    j, j1, frac = _frame_positions(0, n_samples, x.shape[1], n_samples, x.device)
    return torch.lerp(x[:, j], x[:, j1], _hann_fraction(frac).to(x.dtype)[:, None])


# ---------------------------------------------------------------------------------------------- oscillators
def harmonic_oscillator(
    f0_hz: Tensor,
    harmonic_amplitudes: Tensor,
    n_samples: int,
    sample_rate: float,
    *,
    fade_start: float | None = 0.9,
    amplitude_upsampling: str = "hann",
    chunk_elements: int = CHUNK_ELEMENTS // 2,
    initial_phase: Tensor | None = None,
    stop: int | None = None,
    return_phase: bool = False,
    recurrence: bool = True,
) -> Tensor | tuple[Tensor, Tensor]:
    """Bank of harmonic sinusoids: ``sum_k A_k(t) * g_k(t) * sin(2 pi * k * phi(t))``.

    Args:
        f0_hz: fundamental, ``[B or 1, F, 1]`` Hz (linearly upsampled).
        harmonic_amplitudes: ``[B, F, H]`` linear amplitude A_k of harmonic k = 1..H (Hann-upsampled, or
            linearly with ``amplitude_upsampling='linear'``).
        n_samples, sample_rate: output length (any, not only multiples of F) and rate in Hz.
        fade_start: anti-alias gain g_k = :func:`nyquist_gain` of the instantaneous harmonic frequency
            ``k * f0(t)``, evaluated per sample: a raised-cosine fade from ``fade_start * nyquist`` to Nyquist;
            ``None`` = ddsp's hard cut at Nyquist.
        chunk_elements: size budget of the per-chunk ``[B, chunk, H]`` intermediates.
        initial_phase: fundamental phase in cycles ``[B]`` (float64) before sample 0 (default 0): the phase
            a previous block returned, so that blocks join without a seam.
        stop: compute only samples ``[0, stop)`` of the ``n_samples`` (default all), e.g. to leave out the
            last frame interval of a block until the next frame is known.
        return_phase: also return the phase (cycles in [0, 1), ``[B]`` float64) after sample ``stop - 1``.
        recurrence: when no gradient is needed, make ``sin(k phi)`` by the Chebyshev recurrence
            (:func:`_recurrence_sines`, ~2x faster here) instead of one ``sin`` per harmonic and sample;
            with gradients the direct ``sin`` is used.

    Returns:
        ``[B, stop]`` audio (and the phase with ``return_phase``).

    Numerics: the fundamental phase ``phi`` is accumulated in cycles in float64 (inclusive cumulative sum of
    f0 / sample_rate, like ddsp) and wrapped to [0, 1) at every chunk, so it does not drift on long signals;
    harmonic phases are ``k * phi``. Work is done in time chunks, so memory does not grow with
    harmonics x samples, and harmonics at or above Nyquist throughout a chunk are skipped, not computed.
    """
    batch, n_frames, n_harmonics = harmonic_amplitudes.shape
    dtype, device = harmonic_amplitudes.dtype, harmonic_amplitudes.device
    nyquist = sample_rate / 2.0
    f0 = f0_hz[..., 0].expand(batch, n_frames)
    k = torch.arange(1, n_harmonics + 1, device=device, dtype=dtype)
    with torch.no_grad():  # which harmonics can sound / need the fade, per frame interval (f0 is linear in it)
        f0_next = torch.cat([f0[:, 1:], f0[:, -1:]], 1)
        lo, hi = torch.minimum(f0, f0_next).amin(0), torch.maximum(f0, f0_next).amax(0)  # [F] Hz
        full_below = nyquist if fade_start is None else min(fade_start, 1.0) * nyquist
        n_audible = (k[:, None] * lo < nyquist).sum(0)
        n_audible_list = n_audible.tolist()
        n_full_list = torch.minimum(n_audible, (k[:, None] * hi < full_below).sum(0)).tolist()
    # Frame-rate inputs with the last frame repeated, so "frame j + 1" exists everywhere.
    f0_pad = torch.cat([f0, f0[:, -1:]], 1)
    f0_pad64 = f0_pad.to(torch.float64)
    amps_pad = torch.cat([harmonic_amplitudes, harmonic_amplitudes[:, -1:]], 1)

    aligned = n_samples % n_frames == 0
    hop = n_samples // n_frames
    in_place = not (torch.is_grad_enabled() and (f0_hz.requires_grad or harmonic_amplitudes.requires_grad))
    recurrence = recurrence and in_place and aligned
    # the recurrence works on rows of samples: longer chunks amortise its per-harmonic op calls
    chunk = max(1, chunk_elements * (4 if recurrence else 1) // (batch * n_harmonics))
    if aligned:  # whole frame intervals per chunk: interpolate by broadcasting, crossfade amplitudes by matmul
        chunk = max(hop, chunk // hop * hop)
        w_lin = _frame_positions(0, hop, 1, hop, device)[2]  # [hop] float64, d / hop
        w_amp = (_hann_fraction(w_lin) if amplitude_upsampling == "hann" else w_lin).to(dtype)

    stop = n_samples if stop is None else int(stop)
    phase_offset = torch.zeros(batch, dtype=torch.float64, device=device)
    if initial_phase is not None:
        phase_offset = phase_offset + torch.as_tensor(initial_phase, dtype=torch.float64, device=device)
    outputs = []
    for t0 in range(0, stop, chunk):
        t1 = min(stop, t0 + chunk)
        if aligned:
            c0, c1 = t0 // hop, t1 // hop

            def interp(x: Tensor, w: Tensor) -> Tensor:  # [B, F + 1] frames -> [B, T] samples
                return torch.lerp(x[:, c0:c1, None], x[:, c0 + 1 : c1 + 1, None], w.to(x.dtype)).reshape(batch, -1)
            i0, i1 = c0, c1
        else:
            j, _, frac = _frame_positions(t0, t1, n_frames, n_samples, device)

            def interp(x: Tensor, w: Tensor) -> Tensor:
                return torch.lerp(x[:, j], x[:, j + 1], w.to(x.dtype))
            w_lin, i0, i1 = frac, int(j[0]), int(j[-1]) + 1
        cycles = torch.cumsum(interp(f0_pad64, w_lin), 1) / sample_rate + phase_offset[:, None]
        phase_offset = torch.frac(cycles[:, -1])
        radians = (2 * math.pi * torch.frac(cycles)).to(dtype)  # [B, T] fundamental phase in [0, 2 pi)

        n_aud, n_full = max(n_audible_list[i0:i1]), min(n_full_list[i0:i1])
        if recurrence:
            outputs.append(_recurrence_chunk(radians, n_aud, amps_pad[:, c0:c1 + 1], f0_pad[:, c0:c1 + 1],
                                             w_lin, w_amp, hop, sample_rate, fade_start))
            continue
        out = radians.new_zeros(batch, t1 - t0)
        for h0, h1 in ((0, n_full), (n_full, n_aud)):  # harmonics at full gain, then those in the fade
            if h1 <= h0:
                continue
            # k * phase in radians, not wrapped again: float32 rounding of phi already limits the accuracy to
            # k * 4e-7 rad, and the error is a function of phi alone, so it cannot create inharmonic partials.
            sines = radians[..., None] @ k[None, h0:h1]  # [B, T, h1 - h0]
            sines = sines.sin_() if in_place else sines.sin()
            if h0 == n_full:
                sines = sines * _fade_gain(interp(f0_pad, w_lin), k[h0:h1], sample_rate, fade_start, in_place)
            if aligned:
                pair = torch.stack([amps_pad[:, c0:c1, h0:h1], amps_pad[:, c0 + 1 : c1 + 1, h0:h1]], -1)
                ends = sines.view(batch, c1 - c0, hop, h1 - h0) @ pair  # [B, c, hop, 2]: left/right frame
                out = out + torch.lerp(ends[..., 0], ends[..., 1], w_amp).reshape(batch, -1)
            else:
                w = (_hann_fraction(frac) if amplitude_upsampling == "hann" else frac).to(dtype)[:, None]
                amps = torch.lerp(amps_pad[:, j, h0:h1], amps_pad[:, j + 1, h0:h1], w)  # [B, T, h1 - h0]
                out = out + (amps * sines).sum(-1)
        outputs.append(out)
    audio = torch.cat(outputs, 1) if outputs else harmonic_amplitudes.new_zeros(batch, 0)
    return (audio, phase_offset) if return_phase else audio


def _recurrence_chunk(radians: Tensor, n_aud: int, amps: Tensor, f0: Tensor, w_lin: Tensor, w_amp: Tensor,
                      hop: int, sample_rate: float, fade_start: float | None) -> Tensor:
    """One aligned chunk of the oscillator from recurrence sines: ``[B, T]``.

    ``amps [B, c + 1, H]`` and ``f0 [B, c + 1]`` (Hz) the frames of the chunk's ``c`` intervals and the next;
    ``w_lin [hop]`` the samples' positions between two frames, ``w_amp [hop]`` their amplitude crossfade
    weights. The sines stay ``[B, h, T]`` (rows of samples) and each interval's left/right frame amplitudes
    are applied by one batched matmul.

    The anti-alias gain is 1 in an interval whose harmonic stays under the fade and 0 in one that stays at or
    above Nyquist, so it is computed per sample only for the (interval, harmonic) pairs that touch the fade
    band (a few per interval); the others are kept or zeroed in the interval's amplitude pair.
    """
    batch, length = radians.shape
    c = length // hop
    if n_aud <= 0:
        return radians.new_zeros(batch, length)
    rows = _recurrence_sines(radians, n_aud)
    signed = amps[:, :, :n_aud] * _recurrence_signs(n_aud, amps.dtype, amps.device)
    pair = torch.stack([signed[:, :c], signed[:, 1:c + 1]], 2)  # [B, c, 2, h]
    nyquist = sample_rate / 2.0
    full_below = nyquist if fade_start is None else min(fade_start, 1.0) * nyquist
    k = torch.arange(1, n_aud + 1, dtype=f0.dtype, device=f0.device)
    lo = torch.minimum(f0[:, :c], f0[:, 1:c + 1])[..., None] * k  # [B, c, h] lowest / highest frequency of
    hi = torch.maximum(f0[:, :c], f0[:, 1:c + 1])[..., None] * k  # each harmonic in each interval, Hz
    above = lo >= nyquist
    pair.masked_fill_(above[:, :, None, :], 0.0)
    b, i, h = torch.nonzero((hi >= full_below) & ~above, as_tuple=True)
    if b.numel():
        freq = torch.lerp(f0[b, i, None], f0[b, i + 1, None], w_lin.to(f0.dtype)) * k[h, None]  # [P, hop] Hz
        view = rows.view(batch, n_aud, c, hop)
        view[b, h, i] = view[b, h, i] * nyquist_gain(freq, sample_rate, fade_start)
    ends = pair @ rows.view(batch, n_aud, c, hop).permute(0, 2, 1, 3)  # [B, c, 2, hop]
    return torch.lerp(ends[:, :, 0], ends[:, :, 1], w_amp).reshape(batch, length)


def _recurrence_sines(radians: Tensor, n: int) -> Tensor:
    """``sin(k * theta)`` for k = 1..n up to sign, ``[B, n, T]``, by the Chebyshev recurrence
    ``s_k = 2 cos(theta) s_(k-1) - s_(k-2)``: two transcendentals per sample instead of one per harmonic.

    Row ``k - 1`` holds ``sigma_k s_k`` with ``sigma = +, +, -, -, +, +, ...`` (:func:`_recurrence_signs`): so
    signed, each step is one fused ``q_k = q_(k-2) +- 2 cos(theta) q_(k-1)`` (``addcmul``) instead of a
    multiply and a subtraction. Multiply the amplitudes by the signs.

    Rounding grows about like ``k eps / |sin theta|`` (1e-4 of full scale for k = 60 at 30 Hz, 16 kHz), and,
    being a function of theta alone, it cannot create inharmonic partials.
    """
    batch, length = radians.shape
    rows = radians.new_empty(batch, max(n, 1), length)
    q = rows.unbind(1)
    torch.sin(radians, out=q[0])
    if n >= 2:
        twice_cos = torch.cos(radians).mul_(2.0)
        torch.mul(twice_cos, q[0], out=q[1])
        for j in range(2, n):  # q[j] holds harmonic j + 1; sigma_(j+1) sigma_j alternates -, +, -, ...
            torch.addcmul(q[j - 2], twice_cos, q[j - 1], value=-1.0 if j % 2 == 0 else 1.0, out=q[j])
    return rows[:, :n]


def _recurrence_signs(n: int, dtype=torch.float32, device=None) -> Tensor:
    """``[n]`` the signs ``+, +, -, -, +, +, ...`` of :func:`_recurrence_sines`' rows (harmonics 1..n)."""
    return torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=dtype, device=device).repeat((n + 3) // 4)[:n]


def _fade_gain(f0: Tensor, k: Tensor, sample_rate: float, fade_start: float | None, in_place: bool) -> Tensor:
    """``nyquist_gain(f0[..., None] * k)`` fused for the oscillator's inner loop. ``[B, T] Hz, [K] -> [B, T, K]``."""
    nyquist = sample_rate / 2.0
    if fade_start is None or fade_start >= 1.0:
        return (f0[..., None] @ k[None] < nyquist).to(f0.dtype)
    scale = 0.5 * math.pi / (nyquist * (1.0 - fade_start))  # radians of half angle per Hz
    bias = torch.tensor(-fade_start * nyquist * scale, dtype=f0.dtype, device=f0.device)
    half_angle = torch.baddbmm(bias, (f0 * scale)[..., None], k.expand(f0.shape[0], 1, -1))
    if in_place:
        return half_angle.clamp_(0.0, 0.5 * math.pi).cos_().square_()
    return half_angle.clamp(0.0, 0.5 * math.pi).cos().square()


# ---------------------------------------------------------------------------------------- filters, convolution
def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (2^a 3^b 5^c) >= n: an efficient FFT size."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p235 = p35
            while p235 < n:
                p235 *= 2
            best = min(best, p235)
            p35 *= 3
        p5 *= 5
    return best


def frequency_impulse_response(magnitudes: Tensor) -> Tensor:
    """Linear-phase FIR by frequency sampling. ``[B, F, K] -> [B, F, 2 * (K - 1)]``.

    ``magnitudes`` are linear gains at K frequencies spaced evenly from 0 Hz to Nyquist. They are taken as a
    zero-phase spectrum, inverse-rFFT'd, centred (made causal: the IR's peak is at tap ``ir_size // 2``), and
    Hann-windowed (periodic window). Same as ddsp's ``frequency_impulse_response`` with the full window.
    """
    ir = torch.fft.irfft(magnitudes)
    ir_size = ir.shape[-1]
    window = torch.hann_window(ir_size, periodic=True, dtype=ir.dtype, device=ir.device)
    return torch.roll(ir, ir_size // 2, -1) * window


def _overlap_add(frames: Tensor, hop: int) -> Tensor:
    """``[B, G, L]`` frames placed ``hop`` apart and summed -> ``[B, (G - 1) * hop + L]``."""
    batch, n, length = frames.shape
    if n == 1:
        return frames[:, 0]
    r = -(-length // hop)  # each frame spans r hop-sized slots
    out = frames.new_zeros(batch, n + r - 1, hop)
    for s in range(r):
        piece = frames[..., s * hop : (s + 1) * hop]
        out[:, s : s + n, : piece.shape[-1]] += piece
    return out.view(batch, -1)[:, : (n - 1) * hop + length]


def _framed_convolution(
    x: Tensor, irs: Tensor, frame_len: int, hop: int, n_frames: int, window: Tensor | None,
    start: int, n_out: int, chunk_elements: int,
) -> Tensor:
    """Convolve frames of ``x`` with per-frame FIRs and overlap-add; return output samples [start, start+n_out).

    Frame i is ``x[:, i*hop : i*hop + frame_len]`` (times ``window`` if given), convolved (linear, via rFFT)
    with ``irs[:, i]`` (the last IR for frames past the end; ``irs[:, 0]`` for every frame when ``irs`` has one
    frame), and placed back at ``i*hop``.
    ``x``: ``[B, >= (n_frames - 1) * hop + frame_len]``; ``irs``: ``[B or 1, <= n_frames or 1, L]``.
    Frames are processed in groups so that memory stays bounded on long inputs.
    """
    batch, ir_len = max(x.shape[0], irs.shape[0]), irs.shape[-1]
    n_fft = next_fast_len(frame_len + ir_len - 1)
    frames = x.unfold(-1, frame_len, hop)
    shared_ir = irs.shape[1] == 1
    ir_fft = torch.fft.rfft(irs, n_fft) if shared_ir else None
    group = max(1, chunk_elements // (batch * n_fft))
    n_frames = min(n_frames, -(-(start + n_out) // hop))  # later frames start after the requested output
    out = None if n_frames <= group else x.new_zeros(batch, n_out)
    for g0 in range(0, n_frames, group):
        g1 = min(n_frames, g0 + group)
        seg = frames[:, g0:g1] if window is None else frames[:, g0:g1] * window
        if shared_ir:
            spectrum = ir_fft
        else:  # frames past the last IR hold it
            seg_irs = irs[:, g0:g1]
            if seg_irs.shape[1] < g1 - g0:
                held = irs[:, -1:].expand(-1, g1 - g0 - seg_irs.shape[1], -1)
                seg_irs = torch.cat([seg_irs, held], 1)
            spectrum = torch.fft.rfft(seg_irs, n_fft)
        y = _overlap_add(torch.fft.irfft(torch.fft.rfft(seg, n_fft) * spectrum, n_fft), hop)
        if out is None:  # one group: y covers the whole output
            return y[:, start : start + n_out]
        a = g0 * hop - start  # where y starts in output coordinates
        lo, hi = max(a, 0), min(a + y.shape[-1], n_out)
        if hi > lo:
            out[:, lo:hi] += y[:, lo - a : hi - a]
    return out


def fft_convolve(audio: Tensor, ir: Tensor, *, max_fft_size: int = 2**17,
                 chunk_elements: int = CHUNK_ELEMENTS, full: bool = False) -> Tensor:
    """Causal linear convolution, output truncated to the input length. ``[B, n] * [B or 1, m] -> [B, n]``.

    ``y[t] = sum_s ir[s] * audio[t - s]``. One FFT when ``n + m - 1 <= max_fft_size``, else overlap-add in
    blocks (FFT size ``max_fft_size`` or ``~2 m``), a group of blocks (``chunk_elements`` FFT bins) at a time,
    so long inputs use bounded memory. ``full=True`` returns the whole ``[B, n + m - 1]`` convolution (the
    tail too).
    """
    n, m = audio.shape[-1], ir.shape[-1]
    block = n if n + m - 1 <= max_fft_size else max(max_fft_size - m + 1, m)
    block = min(n, next_fast_len(block + m - 1) - m + 1)
    n_blocks = -(-n // block)
    x = F.pad(audio, (0, n_blocks * block - n))
    n_out = n + m - 1 if full else n
    return _framed_convolution(x, ir[:, None, :], block, block, n_blocks, None, 0, n_out, chunk_elements)


def ltv_fir_filter(audio: Tensor, irs: Tensor, *, delay: int = 0, windowed: bool = True,
                   chunk_elements: int = CHUNK_ELEMENTS) -> Tensor:
    """Time-varying FIR filter, one impulse response per frame. ``[B, n], [B or 1, F, L] -> [B, n]``.

    Windowed (default): the input is cut into Hann-windowed frames of ``2 * hop`` samples at 50 % overlap,
    frame i centred on sample ``i * hop`` (``hop = ceil(n / F)``, i.e. exactly ``n / F`` when F divides n, as
    the synths use it; the last IR is held for a closing frame);
    each is convolved with its frame's IR and the results are overlap-added. Because the windows sum to one,
    a constant IR gives exactly ordinary convolution, and a changing IR is crossfaded over a hop instead of
    switching at block edges (no clicks).

    ``windowed=False`` reproduces magenta ddsp's ``fft_convolve`` (unwindowed, non-overlapping blocks of
    ``hop`` samples; clicks when the IR changes), for parity checks.

    ``delay``: samples dropped from the start of the output to compensate the IR's latency, e.g.
    ``L // 2`` for IRs from :func:`frequency_impulse_response` (zero-phase overall). ``0 <= delay < L``.

    Frames are filtered in groups of about ``chunk_elements`` FFT bins, so memory stays bounded.
    """
    n, (n_frames, ir_len) = audio.shape[-1], irs.shape[-2:]
    if not 0 <= delay < ir_len:
        raise ValueError(f"delay must be in [0, {ir_len}), got {delay}")
    hop = -(-n // n_frames)
    if not windowed:
        x = F.pad(audio, (0, n_frames * hop - n))
        return _framed_convolution(x, irs, hop, hop, n_frames, None, delay, n, chunk_elements)
    x = F.pad(audio, (hop, (n_frames + 1) * hop - n))  # + a closing frame centred on n, holding the last IR
    window = torch.hann_window(2 * hop, periodic=True, dtype=audio.dtype, device=audio.device)
    return _framed_convolution(x, irs, 2 * hop, hop, n_frames + 1, window, hop + delay, n, chunk_elements)
