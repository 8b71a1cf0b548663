"""The six note expression controls, computed from frame-level synthesis parameters and note boundaries.

Meaning follows MIDI-DDSP (``interpretable_conditioning.py``); raw values are in physical units and a
:class:`ControlNormalizer` fitted on the training corpus maps them to about [0, 1] per instrument, instead
of MIDI-DDSP's hand-picked constants. Per note (frames ``on .. on+L-1``), with ``A_t`` the harmonic
amplitude in dB (``20 log10 max(a, 1e-4)``, so >= -80 dB):

============  =======================================================================  ===================
control       raw definition                                                           unit
============  =======================================================================  ===================
volume        mean_t A_t                                                               dB
vol_fluc      population std_t A_t                                                     dB
vol_peak_pos  (argmax_t A_t - on) / L  (first maximum)                                 fraction [0, 1)
vibrato       depth of the strongest 3-9 Hz pitch modulation, 0 if none (see below)    semitones (peak)
brightness    mean_t of the harmonic centroid sum_k k H_tk / sum_k H_tk, k = 1..K      harmonic number
attack        mean noise level (mean_j dB(noise_magnitudes_tj)) over the note's first  dB
              40 ms (10 frames at 250 Hz)
============  =======================================================================  ===================

Vibrato: the pitch deviation ``D_t = midi(f0_t) - note_pitch`` (set to 0 where f0 is 0 or ``|D_t| > 2``
semitones, as MIDI-DDSP does, to drop octave errors and transitions) is detrended with a weighted straight
line (MIDI-DDSP only removes the mean; a line also removes intonation drift), Hann-windowed over the note
and zero-padded to at least 4096 frames. The spectrum is scaled so a sinusoid of depth ``d`` semitones
reads ``d``. Fixing MIDI-DDSP's global-peak test, the peak is searched **inside 3-9 Hz**, and it counts
only if it is a true local maximum of the whole spectrum (not the skirt of a slower wobble or faster
flutter), at least ``LEAKAGE_RATIO`` of the strongest modulation at any rate (Hann sidelobes stay below
3%), at least 0.001 semitone deep, one full cycle fits in the note and the note is longer than 50 frames
(200 ms). Notes longer than 4 s are analysed over their central 4 s.

Notes that have no frame in the window get NaN for every control. Rests have no controls (notes only).
Everything is vectorised over frames and notes (segment reductions and one batched FFT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midi_ddsp.instruments import INSTRUMENTS, by_name
from midi_ddsp.note_level.frames import NoteFrames
from midi_ddsp.note_level.notes import CONTROL_NAMES, N_CONTROLS

VIBRATO_BAND_HZ = (3.0, 9.0)
VIBRATO_MIN_FRAMES = 50  # MIDI-DDSP: notes of 50 frames (200 ms) or fewer have no vibrato
VIBRATO_MAX_S = 4.0
VIBRATO_MIN_DEPTH = 1e-3  # semitones
LEAKAGE_RATIO = 0.05
ATTACK_S = 0.04
DB_FLOOR = -80.0
MAX_DEVIATION = 2.0  # semitones


def amplitude_db(x):
    """Linear amplitude -> dB, floored at -80 dB (numpy)."""
    return 20.0 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), 10.0 ** (DB_FLOOR / 20.0)))


def extract_controls(f0_hz, amplitude, harmonic_distribution, noise_magnitudes, note_frames: NoteFrames,
                     normalizer: "ControlNormalizer | None" = None, instrument=None) -> np.ndarray:
    """Per-note expression controls of one example.

    Args:
        f0_hz: ``[F]``, ``[F, 1]`` or ``[1, F, 1]`` fundamental frequency in Hz (0 where unvoiced).
        amplitude: same shapes, global harmonic amplitude (linear, after the synth's scaling).
        harmonic_distribution: ``[F, K]`` or ``[1, F, K]`` non-negative harmonic weights (any scale per frame).
        noise_magnitudes: ``[F, B]`` or ``[1, F, B]`` linear noise-band magnitudes.
        note_frames: the notes on the same ``F`` frames (:func:`~midi_ddsp.note_level.frames.notes_to_frames`
            or :meth:`NoteFrames.from_flags`). Numpy arrays or torch tensors are accepted.
        normalizer: if given, the result is normalised with it for ``instrument`` (name or id; ``None`` uses the
            all-instrument statistics).

    Returns:
        float64 ``[n_notes, 6]`` in :data:`CONTROL_NAMES` order: raw (units in the module docstring) unless a
        normalizer is given. NaN rows for notes with no frame in the window.
    """
    f0 = _frames(f0_hz, 1)[:, 0]
    amp = _frames(amplitude, 1)[:, 0]
    harm = _frames(harmonic_distribution, None)
    noise = _frames(noise_magnitudes, None)
    n_frames = note_frames.n_frames
    for name, x in (("f0_hz", f0), ("amplitude", amp), ("harmonic_distribution", harm),
                    ("noise_magnitudes", noise)):
        if x.shape[0] != n_frames:
            raise ValueError(f"{name} has {x.shape[0]} frames but the notes span {n_frames}")

    starts, ends = note_frames.note_start, note_frames.note_end
    present = ends > starts
    out = np.full((note_frames.n_notes, N_CONTROLS), np.nan)
    if present.any():
        s, e = starts[present], ends[present]
        length = (e - s).astype(np.float64)
        a_db = amplitude_db(amp)

        # Volume, fluctuation and peak position: segment reductions over each note's frames.
        mean = _segment_sum(a_db, s, e) / length
        note_mean = np.zeros(note_frames.n_notes)
        note_mean[present] = mean
        centred = np.where(note_frames.note_index >= 0, a_db - note_mean[note_frames.note_index], 0.0)
        var = _segment_sum(centred ** 2, s, e) / length
        peak = _segment_argmax(a_db, s, e) - s

        # Brightness: mean harmonic centroid over frames with any harmonic energy.
        k = np.arange(1, harm.shape[1] + 1, dtype=np.float64)
        total = harm.sum(axis=1)
        valid = total > 0
        centroid = np.where(valid, (harm @ k) / np.where(valid, total, 1.0), 0.0)
        n_valid = _segment_sum(valid.astype(np.float64), s, e)
        brightness = np.where(n_valid > 0, _segment_sum(centroid, s, e) / np.maximum(n_valid, 1), 0.0)

        # Attack: mean noise level in dB over the first 40 ms.
        noise_level = amplitude_db(noise).mean(axis=1)
        n_attack = max(1, int(round(ATTACK_S * note_frames.frame_rate)))
        e_att = np.minimum(e, s + n_attack)
        attack = _segment_sum(noise_level, s, e_att) / (e_att - s)

        # Vibrato: pitch deviation from the written note, in semitones.
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 12.0 * np.log2(np.maximum(f0, 1e-12) / 440.0) + 69.0 - note_frames.pitch
        dev = np.where((f0 > 0) & (note_frames.pitch > 0) & (np.abs(dev) <= MAX_DEVIATION), dev, 0.0)
        vibrato = vibrato_depth(dev, s, e, note_frames.frame_rate)

        out[present] = np.stack(
            [mean, np.sqrt(np.maximum(var, 0.0)), peak / length, vibrato, brightness, attack], axis=1
        )
    if normalizer is not None:
        out = normalizer.normalize(out, instrument)
    return out


def vibrato_depth(deviation, starts, ends, frame_rate: float = 250.0, band_hz=VIBRATO_BAND_HZ,
                  chunk: int = 256) -> np.ndarray:
    """Vibrato depth in semitones (peak deviation) of each note segment ``deviation[starts:ends]``.

    See the module docstring for the detection rule. Vectorised: notes are padded to a common length and
    transformed with one batched FFT per chunk of ``chunk`` notes.
    """
    deviation = np.asarray(deviation, dtype=np.float64)
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    length = ends - starts
    max_len = int(round(VIBRATO_MAX_S * frame_rate))
    use = np.minimum(length, max_len)
    first = starts + (length - use) // 2  # central part of long notes
    out = np.zeros(len(starts))
    eligible = np.flatnonzero(length > VIBRATO_MIN_FRAMES)  # shorter notes have no vibrato: skip their FFT
    if eligible.size < len(starts):
        if eligible.size:
            out[eligible] = vibrato_depth(deviation, starts[eligible], ends[eligible], frame_rate, band_hz, chunk)
        return out
    n_fft = max(4096, 1 << int(np.ceil(np.log2(4 * use.max()))))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / frame_rate)
    band = np.flatnonzero((freqs >= band_hz[0]) & (freqs <= band_hz[1]))
    for c0 in range(0, len(starts), chunk):
        sl = slice(c0, c0 + chunk)
        L, f = use[sl], first[sl]
        j = np.arange(L.max())
        mask = j[None, :] < L[:, None]
        x = np.where(mask, deviation[np.minimum(f[:, None] + j[None, :], len(deviation) - 1)], 0.0)
        Lf = np.maximum(L, 1)[:, None].astype(np.float64)
        w = np.where(mask, np.sin(np.pi * (j[None, :] + 0.5) / Lf) ** 2, 0.0)
        # Weighted least-squares line (removes offset and drift), then window.
        t = j[None, :] / Lf
        s0, s1, s2 = w.sum(1), (w * t).sum(1), (w * t * t).sum(1)
        sy, sty = (w * x).sum(1), (w * t * x).sum(1)
        det = np.where(np.abs(s0 * s2 - s1 * s1) > 1e-12, s0 * s2 - s1 * s1, 1.0)
        slope = (s0 * sty - s1 * sy) / det
        icpt = (sy - slope * s1) / np.maximum(s0, 1e-12)
        y = w * (x - icpt[:, None] - slope[:, None] * t)
        mag = np.abs(np.fft.rfft(y, n=n_fft, axis=1)) * 2.0 / np.maximum(s0, 1e-12)[:, None]
        kb = band[np.argmax(mag[:, band], axis=1)]
        rows = np.arange(len(L))
        peak = mag[rows, kb]
        is_local_max = (peak > mag[rows, kb - 1]) & (peak > mag[rows, np.minimum(kb + 1, mag.shape[1] - 1)])
        not_leakage = peak >= LEAKAGE_RATIO * mag[:, 1:].max(axis=1)
        long_enough = (length[sl] > VIBRATO_MIN_FRAMES) & (freqs[kb] > frame_rate / np.maximum(L, 1))
        ok = is_local_max & not_leakage & long_enough & (peak >= VIBRATO_MIN_DEPTH)
        out[sl] = np.where(ok, peak, 0.0)
    return out


@dataclass(eq=False)
class ControlNormalizer:
    """Maps raw controls to about [0, 1] with robust statistics fitted on a training corpus.

    For each instrument and control, ``low`` / ``high`` are the 1% / 99% quantiles of the raw values
    (``normalised = (raw - low) / (high - low)``, clipped to [0, 1] by default). Fixed by meaning:
    ``vol_peak_pos`` keeps [0, 1] and ``vibrato`` has ``low = 0`` (no vibrato stays 0). Instruments with
    fewer than ``min_notes`` notes use the all-instrument statistics, which are also stored (row
    ``len(INSTRUMENTS)``) and used when no instrument is given.

    Attributes:
        low, high: float64 ``[len(INSTRUMENTS) + 1, 6]``.
    """

    low: np.ndarray
    high: np.ndarray

    PREFIX = "control_normalizer."

    def __post_init__(self):
        self.low = np.asarray(_np(self.low), dtype=np.float64)
        self.high = np.asarray(_np(self.high), dtype=np.float64)
        shape = (len(INSTRUMENTS) + 1, N_CONTROLS)
        if self.low.shape != shape or self.high.shape != shape:
            raise ValueError(f"ControlNormalizer statistics must have shape {list(shape)}")

    @classmethod
    def identity(cls) -> "ControlNormalizer":
        """low 0, high 1 everywhere (for raw controls that are already in [0, 1], or for tests)."""
        shape = (len(INSTRUMENTS) + 1, N_CONTROLS)
        return cls(np.zeros(shape), np.ones(shape))

    @classmethod
    def fit(cls, raw, instrument_ids=None, quantiles=(0.01, 0.99), min_notes: int = 50) -> "ControlNormalizer":
        """Fit on raw controls ``[N, 6]`` (NaN rows ignored) with ``instrument_ids`` ``[N]`` (ids or names)."""
        raw = np.asarray(_np(raw), dtype=np.float64).reshape(-1, N_CONTROLS)
        ids = _ids(instrument_ids, raw.shape[0])
        keep = np.all(np.isfinite(raw), axis=1)
        raw, ids = raw[keep], ids[keep]
        if raw.shape[0] == 0:
            raise ValueError("cannot fit a ControlNormalizer on no notes")

        def stats(x):
            lo, hi = np.quantile(x, quantiles[0], axis=0), np.quantile(x, quantiles[1], axis=0)
            lo[CONTROL_NAMES.index("vol_peak_pos")], hi[CONTROL_NAMES.index("vol_peak_pos")] = 0.0, 1.0
            lo[CONTROL_NAMES.index("vibrato")] = 0.0
            hi = np.where(hi - lo > 1e-6, hi, lo + 1.0)  # degenerate (constant) control
            return lo, hi

        g_lo, g_hi = stats(raw)
        low, high = np.tile(g_lo, (len(INSTRUMENTS) + 1, 1)), np.tile(g_hi, (len(INSTRUMENTS) + 1, 1))
        for i in range(len(INSTRUMENTS)):
            sel = ids == i
            if sel.sum() >= min_notes:
                low[i], high[i] = stats(raw[sel])
        return cls(low, high)

    def _rows(self, instrument, n: int):
        ids = _ids(instrument, n)
        return self.low[ids], self.high[ids]

    def normalize(self, raw, instrument=None, clip: bool = True):
        """Raw controls ``[..., 6]`` -> normalised, for ``instrument`` (name, id, or per-row ids ``[...]``).

        Numpy in, numpy out; torch in, torch out (same device and dtype).
        """
        return self._apply(raw, instrument, inverse=False, clip=clip)

    def denormalize(self, controls, instrument=None):
        """Inverse of :meth:`normalize` (without clipping)."""
        return self._apply(controls, instrument, inverse=True, clip=False)

    def _apply(self, x, instrument, inverse: bool, clip: bool):
        is_torch = hasattr(x, "detach")
        arr = np.asarray(_np(x), dtype=np.float64)
        flat = arr.reshape(-1, N_CONTROLS)
        inst = instrument
        if inst is not None and not isinstance(inst, (int, np.integer, str)):
            inst = np.asarray(_np(inst)).reshape(-1)
        lo, hi = self._rows(inst, flat.shape[0])
        y = flat * (hi - lo) + lo if inverse else (flat - lo) / (hi - lo)
        if clip:
            y = np.clip(y, 0.0, 1.0)
        y = y.reshape(arr.shape)
        if is_torch:
            import torch

            return torch.as_tensor(y, dtype=x.dtype, device=x.device)
        return y

    def to_dict(self) -> dict:
        """Flat ``{name: float32 tensor}`` for safetensors (``control_normalizer.low`` / ``.high``)."""
        import torch

        return {self.PREFIX + "low": torch.tensor(self.low, dtype=torch.float32),
                self.PREFIX + "high": torch.tensor(self.high, dtype=torch.float32)}

    @classmethod
    def from_dict(cls, d: dict) -> "ControlNormalizer":
        """Inverse of :meth:`to_dict` (other keys in ``d`` are ignored)."""
        try:
            return cls(d[cls.PREFIX + "low"], d[cls.PREFIX + "high"])
        except KeyError as e:
            raise KeyError(f"no control normalizer statistics in the checkpoint (missing {e})") from None


# --- helpers ---------------------------------------------------------------------------------------------

def _np(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _frames(x, channels) -> np.ndarray:
    """Accept [F], [F, C] or [1, F, C] (numpy or torch) and return float64 [F, C]."""
    a = np.asarray(_np(x), dtype=np.float64)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(f"expected one example, got a batch of {a.shape[0]}; call per example")
        a = a[0]
    if a.ndim == 1:
        a = a[:, None]
    if channels is not None and a.shape[1] != channels:
        raise ValueError(f"expected {channels} channel(s), got shape {list(a.shape)}")
    return a


def _ids(instrument, n: int) -> np.ndarray:
    """Instrument selector -> int row indices [n] (None -> the all-instrument row)."""
    if instrument is None:
        return np.full(n, len(INSTRUMENTS), dtype=np.int64)
    if isinstance(instrument, str):
        return np.full(n, by_name(instrument).id, dtype=np.int64)
    arr = np.asarray(instrument)
    if arr.dtype.kind in "US":
        return np.array([by_name(str(v)).id for v in arr.reshape(-1)], dtype=np.int64)
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, int(arr[0]), dtype=np.int64)
    if arr.shape[0] != n or np.any((arr < 0) | (arr > len(INSTRUMENTS))):
        raise ValueError(f"bad instrument ids for {n} rows: {instrument!r}")
    return arr


def _segment_sum(x, starts, ends) -> np.ndarray:
    """Sum of ``x[s:e]`` for each non-empty segment, vectorised with a cumulative sum."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    return c[ends] - c[starts]


def _segment_argmax(x, starts, ends) -> np.ndarray:
    """Absolute index of the first maximum of ``x[s:e]`` per segment (segments disjoint and sorted)."""
    lengths = ends - starts
    seg = np.repeat(np.arange(len(starts)), lengths)
    idx = np.arange(lengths.sum()) + np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    vals = x[idx]
    order = np.lexsort((idx, -vals, seg))  # by segment, then value descending, then earliest frame
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return idx[order[first]]


__all__ = ["extract_controls", "vibrato_depth", "amplitude_db", "ControlNormalizer", "VIBRATO_BAND_HZ"]
