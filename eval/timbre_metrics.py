"""Timbre measurements shared by ``eval/eval_timbre.py`` and its tests (numpy / librosa / scikit-learn).

Three measurements, each symmetric (the same code runs on our render and on the reference render):

* **harmonic profile** of a note (:func:`note_harmonic_profile`): amplitudes of harmonics 1..H in the
  middle of the note, dB relative to the strongest; per instrument the median over notes
  (:func:`median_profile`), compared by the mean absolute difference (:func:`profile_mad`);
* **long-term average spectrum in octave bands** (:func:`octave_band_levels`): each band's energy relative
  to the energy of all the bands together, dB;
* **window features for an instrument classifier** (:func:`window_features`, :func:`train_classifier`):
  log-mel means/stds, MFCCs, spectral centroid / roll-off / flatness of 1 s windows.

Frame convention: 250 Hz frames, frame ``i`` centred on sample ``i * hop`` (as in
:mod:`midi_ddsp.synthesis.ddsp.features`).
"""
from __future__ import annotations

import math

import librosa
import numpy as np
import scipy.fft
import scipy.signal

from midi_ddsp.synthesis.ddsp.features import frame_hop, measured_harmonic_distribution, window_samples

#: Octave-band centres of the long-term average spectrum (Hz); band edges are centre / sqrt 2 .. centre * sqrt 2.
OCTAVE_CENTRES_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
#: Harmonic-profile levels are floored here (dB below the strongest harmonic).
PROFILE_FLOOR_DB = -80.0
#: Octave-band levels are floored here (dB below the total).
BAND_FLOOR_DB = -120.0


def midi_to_hz(pitch) -> np.ndarray | float:
    """MIDI pitch -> Hz (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


# ------------------------------------------------------------------------------------------ harmonic profile
def inner_frames(onset_s: float, offset_s: float, frame_rate: float, n_frames: int, inner: float = 0.6) -> np.ndarray:
    """Frame indices whose centres lie in the middle ``inner`` fraction of the note (int array, maybe empty)."""
    cut = 0.5 * (1.0 - inner) * (offset_s - onset_s)
    a = int(math.ceil((onset_s + cut) * frame_rate))
    b = int(math.floor((offset_s - cut) * frame_rate))
    return np.arange(max(a, 0), min(b, n_frames - 1) + 1)


def profile_n_fft(sample_rate: int, f0_hz: float) -> int:
    """Window for the harmonic profile: max(64 ms, 4.5 periods), so neighbouring harmonics of the note fall
    in separate Hann main lobes (samples, even)."""
    return window_samples(sample_rate, max(0.064, 4.5 / max(float(f0_hz), 1.0)))


def note_harmonic_profile(audio: np.ndarray, sample_rate: int, f0_hz: np.ndarray, confidence: np.ndarray,
                          pitch: int, onset_s: float, offset_s: float, frame_rate: float = 250.0,
                          n_harmonics: int = 12, inner: float = 0.6, tolerance_cents: float = 50.0,
                          voicing_threshold: float = 0.5, min_frames: int = 3) -> np.ndarray | None:
    """Harmonic profile of one note: dB of harmonics 1..``n_harmonics`` relative to the strongest.

    Frames: the middle ``inner`` of the note, voiced (``confidence >= voicing_threshold``) and with the tracked
    f0 within ``tolerance_cents`` of the note. Per frame the harmonic amplitudes at the tracked f0 come from the
    power spectrum (Hann window of :func:`profile_n_fft` of the note's frequency; the bins within half a harmonic
    spacing of each harmonic summed, see ``measured_harmonic_distribution(normalize=False)``), in dB relative to
    that frame's strongest harmonic; the median over frames is taken per harmonic and shifted so that its
    maximum is 0 dB. Levels are floored at :data:`PROFILE_FLOOR_DB`.

    Args:
        audio: [n] mono waveform at ``sample_rate`` (Hz). f0_hz, confidence: [frames] at ``frame_rate`` (Hz),
            e.g. from ``estimate_f0`` of this same audio. pitch: the note's MIDI pitch. onset_s, offset_s: s.
    Returns:
        [n_harmonics] float64 dB (NaN for harmonics at or above Nyquist), or None with fewer than
        ``min_frames`` usable frames.
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hop = frame_hop(sample_rate, frame_rate)
    n_frames = min(f0.size, conf.size, -(-audio.size // hop))
    idx = inner_frames(onset_s, offset_s, frame_rate, n_frames, inner)
    note_hz = float(midi_to_hz(pitch))
    if idx.size:
        cents = 1200.0 * np.log2(np.maximum(f0[idx], 1e-3) / note_hz)
        idx = idx[(conf[idx] >= voicing_threshold) & (np.abs(cents) <= tolerance_cents)]
    if idx.size < min_frames:
        return None
    n_fft = profile_n_fft(sample_rate, note_hz)
    margin = n_fft // (2 * hop) + 2                                          # whole windows inside the slice
    lo, hi = max(0, int(idx[0]) - margin), min(n_frames, int(idx[-1]) + margin + 1)
    segment = audio[lo * hop:hi * hop]
    amps = measured_harmonic_distribution(segment, f0[lo:hi], sample_rate, frame_rate, n_harmonics,
                                          n_fft=n_fft, normalize=False)[idx - lo].astype(np.float64)
    db = 20.0 * np.log10(np.maximum(amps, 1e-12))
    db -= db.max(axis=1, keepdims=True)
    profile = np.median(db, axis=0)
    profile = np.maximum(profile - profile.max(), PROFILE_FLOOR_DB)
    above = np.arange(1, n_harmonics + 1) * note_hz * 2.0 ** (tolerance_cents / 1200.0) >= sample_rate / 2.0
    profile[above] = np.nan
    return profile


def median_profile(profiles: list[np.ndarray], n_harmonics: int = 12) -> np.ndarray:
    """Median over notes per harmonic (NaNs ignored; NaN where no note has the harmonic), [n_harmonics] dB."""
    if not profiles:
        return np.full(n_harmonics, np.nan)
    stack = np.stack(profiles)
    out = np.full(stack.shape[1], np.nan)
    have = np.isfinite(stack).any(axis=0)
    out[have] = np.nanmedian(stack[:, have], axis=0)
    return out


def profile_mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (dB) over the harmonics finite in both profiles (NaN when none are)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")


# ------------------------------------------------------------------------------------------ octave-band LTAS
def octave_band_levels(audio: np.ndarray, sample_rate: int, centres_hz=OCTAVE_CENTRES_HZ,
                       segment_s: float = 0.085) -> np.ndarray:
    """Long-term average spectrum in octave bands, each band's energy relative to all bands together (dB).

    Welch power spectral density (Hann segments of ``segment_s``, half overlap); band ``c`` sums the bins in
    ``[c / sqrt 2, c * sqrt 2)`` Hz, clipped at Nyquist; the total is the sum over all bands (from the lowest
    band's lower edge to the highest band's upper edge or Nyquist: 177 Hz - 22.6 kHz for the default bands).
    Bands whose lower edge is at or above Nyquist are NaN; levels are floored at :data:`BAND_FLOOR_DB`.

    Args:
        audio: [n] mono waveform. sample_rate: Hz. centres_hz: band centres, Hz.
    Returns:
        [len(centres_hz)] float64 dB.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    nper = min(window_samples(sample_rate, segment_s), max(2, x.size))
    freqs, psd = scipy.signal.welch(x, fs=sample_rate, window="hann", nperseg=nper, noverlap=nper // 2,
                                    detrend=False, scaling="density")
    nyquist = sample_rate / 2.0
    energy = np.full(len(centres_hz), np.nan)
    for i, c in enumerate(centres_hz):
        lo, hi = c / math.sqrt(2.0), min(c * math.sqrt(2.0), nyquist)
        if lo >= nyquist:
            continue
        energy[i] = psd[(freqs >= lo) & (freqs < hi)].sum()
    total = np.nansum(energy)
    if total <= 0:
        return np.where(np.isfinite(energy), BAND_FLOOR_DB, np.nan)
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(energy / total)
    return np.where(np.isfinite(energy), np.maximum(levels, BAND_FLOOR_DB), np.nan)


# ---------------------------------------------------------------------------------------- classifier features
def _frame_features(audio: np.ndarray, sample_rate: int, n_mels: int, n_mfcc: int):
    """Per-STFT-frame features: [T, D] (log-mel dB, MFCC 1..n_mfcc-1, log2 centroid, log2 roll-off, flatness
    dB), frame power [T], hop (samples)."""
    n_fft = window_samples(sample_rate, 0.0427)                              # 2048 at 48 kHz
    hop = n_fft // 4
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    x = (x / max(float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0, 1e-9)).astype(np.float32)  # floors relative
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    power = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, center=True)) ** 2   # [K, T]
    power = power.astype(np.float64)
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=50.0, fmax=sample_rate / 2.0)
    mel_db = 10.0 * np.log10(basis @ power + 1e-12)                         # [M, T]
    mfcc = scipy.fft.dct(mel_db, type=2, norm="ortho", axis=0)[1:n_mfcc]    # c0 is the level: left out
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)[:, None]
    frame_power = power.sum(axis=0)
    denom = np.maximum(frame_power, 1e-20)
    centroid = (freqs * power).sum(axis=0) / denom
    cum = np.cumsum(power, axis=0) / denom
    rolloff = freqs[np.minimum(np.argmax(cum >= 0.85, axis=0), freqs.size - 1), 0]
    flatness = 10.0 * (np.mean(np.log10(power + 1e-20), axis=0) - np.log10(np.mean(power, axis=0) + 1e-20))
    feats = np.concatenate([mel_db, mfcc, np.log2(np.maximum(centroid, 20.0))[None],
                            np.log2(np.maximum(rolloff, 20.0))[None], flatness[None]], axis=0).T
    return feats, frame_power, hop, n_mels


def active_windows(audio: np.ndarray, sample_rate: int, window_s: float = 1.0, hop_s: float = 0.5,
                   min_active: float = 0.5, below_peak_db: float = 40.0) -> np.ndarray:
    """Start samples of the ``window_s`` windows (every ``hop_s``) at least ``min_active`` of whose 10 ms
    frames are within ``below_peak_db`` of the signal's loudest frame. [W] int64."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    step = max(1, int(round(0.01 * sample_rate)))
    n = x.size // step
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    e = 10.0 * np.log10(np.mean(x[:n * step].reshape(n, step) ** 2, axis=1) + 1e-20)
    on = (e > e.max() - below_peak_db).astype(np.float64)
    win, hop = int(round(window_s * sample_rate)), int(round(hop_s * sample_rate))
    starts = np.arange(0, max(0, x.size - win) + 1, hop, dtype=np.int64)
    csum = np.concatenate([[0.0], np.cumsum(on)])
    a = np.minimum(starts // step, n)
    b = np.minimum((starts + win) // step, n)
    frac = (csum[b] - csum[a]) / np.maximum(b - a, 1)
    return starts[frac >= min_active]


def window_features(audio: np.ndarray, sample_rate: int, starts: np.ndarray, window_s: float = 1.0,
                    n_mels: int = 48, n_mfcc: int = 20, below_peak_db: float = 50.0) -> np.ndarray:
    """Features of the ``window_s`` windows starting at ``starts`` (samples): mean and std over the window's
    STFT frames of log-mel dB, MFCC 1..19, log2 centroid, log2 85 % roll-off and flatness dB.

    Level-invariant: each window's log-mel means are taken relative to the window's mean frame power (in dB)
    and MFCC 0 is left out. Frames more than ``below_peak_db`` below the signal's loudest frame are skipped
    (all frames are used in a window that has none louder). Returns [W, 2 * D] float64.
    """
    feats, frame_power, hop, m = _frame_features(audio, sample_rate, n_mels, n_mfcc)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if starts.size == 0:
        return np.zeros((0, 2 * feats.shape[1]))
    db = 10.0 * np.log10(frame_power + 1e-20)
    active = (db > db.max() - below_peak_db).astype(np.float64)
    t = feats.shape[0]
    a = np.clip(np.rint(starts / hop).astype(np.int64), 0, t)
    b = np.clip(np.rint((starts + window_s * sample_rate) / hop).astype(np.int64), 0, t)
    b = np.maximum(b, np.minimum(a + 1, t))

    def window_sums(w):
        cw = np.concatenate([np.zeros(1), np.cumsum(w)])
        cx = np.concatenate([np.zeros((1, feats.shape[1])), np.cumsum(w[:, None] * feats, axis=0)])
        cxx = np.concatenate([np.zeros((1, feats.shape[1])), np.cumsum(w[:, None] * feats ** 2, axis=0)])
        cp = np.concatenate([np.zeros(1), np.cumsum(w * frame_power)])
        return cw[b] - cw[a], cx[b] - cx[a], cxx[b] - cxx[a], cp[b] - cp[a]

    n_act, sx, sxx, sp = window_sums(active)
    n_all, sx_all, sxx_all, sp_all = window_sums(np.ones(t))
    use_all = n_act < 1
    n = np.where(use_all, n_all, n_act)[:, None]
    sx = np.where(use_all[:, None], sx_all, sx)
    sxx = np.where(use_all[:, None], sxx_all, sxx)
    sp = np.where(use_all, sp_all, sp)
    mean = sx / np.maximum(n, 1)
    std = np.sqrt(np.maximum(sxx / np.maximum(n, 1) - mean ** 2, 0.0))
    level_db = 10.0 * np.log10(np.maximum(sp / np.maximum(n[:, 0], 1), 1e-20))
    mean[:, :m] -= level_db[:, None]
    return np.concatenate([mean, std], axis=1)


def train_classifier(features: np.ndarray, labels: np.ndarray, c: float = 0.3, seed: int = 0):
    """A standardised multinomial logistic regression (scikit-learn) fitted on ``features`` [N, D] and integer
    ``labels`` [N]. Returns the fitted estimator (``predict``, ``predict_proba``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))
    model.fit(np.asarray(features, dtype=np.float64), np.asarray(labels))
    return model
