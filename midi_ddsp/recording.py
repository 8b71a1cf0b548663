"""A recording -> an editable performance: notes found in the audio plus the six controls measured from it.

::

    from midi_ddsp import MidiDDSP
    from midi_ddsp.recording import analyze_recording
    from midi_ddsp.io.audio import read_audio

    m = MidiDDSP.from_pretrained()
    audio, sr = read_audio("take.wav")                      # mono float32, any rate
    perf = analyze_recording(m, audio, sr, "violin")        # notes + controls (a Performance)
    perf = perf.set_control("vibrato", 0.2)                 # edit as any performance
    result = m.render(perf)                                 # re-render

Steps: the audio is resampled to the model's rate; f0 + periodicity
(:func:`~midi_ddsp.synthesis.ddsp.features.estimate_f0`, limited to the instrument's range widened by a few
semitones), A-weighted loudness and spectral-flux onset strength are measured on the model's 250 Hz frame grid;
:func:`midi_ddsp.note_level.transcription.transcribe` segments the notes; the model's
:meth:`~midi_ddsp.pipeline.MidiDDSP.extract_performance` measures the six controls of those notes from the
same audio and f0 (``measured=True`` by default: harmonics and noise measured from the spectrum as the
generator's training targets are, :func:`midi_ddsp.extraction.measure`).

Bad input raises a one-line :class:`~midi_ddsp.errors.MidiDDSPError` (:class:`RecordingError`): empty,
non-finite, shorter than :data:`MIN_DURATION_S`, silent (peak below :data:`SILENCE_DBFS`), or nothing pitched
found. Input that is usable but very noisy or looks polyphonic gives a
:class:`~midi_ddsp.errors.MidiDDSPWarning`.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import MidiDDSPError, MidiDDSPWarning
from .instruments import by_name
from .note_level.notes import NoteSequence, Performance
from .note_level.audio_evidence import correct_octaves, harmonic_energies, harmonicity, onset_strength
from .note_level.transcription import Transcription, TranscriptionConfig, transcribe

MIN_DURATION_S = 0.3
SILENCE_DBFS = -60.0
DEFAULT_ANALYSIS_RATE = 16000
FRAME_RATE = 250.0
#: below these the input gets a warning (very noisy / polyphonic); measured on clean and degraded renders
NOISY_SNR_DB = 20.0
MIN_HARMONICITY = 0.7
MIN_VOICED_FRACTION = 0.5
MIN_PERIODICITY = 0.75  # median periodicity inside the notes (one clean voice: about 0.95-1)
RANGE_MARGIN_LOW, RANGE_MARGIN_HIGH = 4, 5  # semitones around the instrument's usual range for the f0 search


class RecordingError(MidiDDSPError, ValueError):
    """A recording cannot be turned into notes (empty, too short, silent, nothing pitched)."""


@dataclass(frozen=True, eq=False)
class RecordingFeatures:
    """Frame features of a recording at ``frame_rate`` (frame i centred on sample i * hop).

    Attributes:
        audio: mono float32 [samples] at ``sample_rate`` (the rate the features were measured at).
        f0_hz, periodicity, loudness_db, onset_strength: float32 [F], F = samples // hop.
    """

    audio: np.ndarray
    sample_rate: int
    frame_rate: float
    f0_hz: np.ndarray
    periodicity: np.ndarray
    loudness_db: np.ndarray
    onset_strength: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


@dataclass(frozen=True, eq=False)
class RecordingAnalysis:
    """Everything :func:`analyze_recording_full` found: the performance, the transcription it is built on,
    the features, the warnings (one line each) and timings (seconds)."""

    performance: Performance | None
    transcription: Transcription
    features: RecordingFeatures
    warnings: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def sequence(self) -> NoteSequence:
        return self.transcription.sequence


# ------------------------------------------------------------------------------------------------ input
def as_mono(audio) -> np.ndarray:
    """float32 [samples] from [samples], [channels, samples] or [samples, channels] (channels averaged)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1)
    elif x.ndim != 1:
        raise RecordingError(f"audio must be [samples] or [channels, samples], got shape {list(x.shape)}")
    return np.ascontiguousarray(x)


def check_recording(audio, sample_rate: int, what: str = "the recording") -> np.ndarray:
    """Mono float32 audio, or a :class:`RecordingError` naming why it is not a usable recording."""
    x = as_mono(audio)
    if not (isinstance(sample_rate, (int, np.integer)) or float(sample_rate).is_integer()) or sample_rate <= 0:
        raise RecordingError(f"{what}: sample rate must be a positive whole number of Hz, got {sample_rate}")
    if x.size == 0:
        raise RecordingError(f"{what} is empty")
    if not np.all(np.isfinite(x)):
        raise RecordingError(f"{what} holds non-finite samples (NaN or inf)")
    dur = x.size / float(sample_rate)
    if dur < MIN_DURATION_S:
        raise RecordingError(f"{what} is too short ({dur:.2f} s; at least {MIN_DURATION_S} s)")
    peak = float(np.max(np.abs(x)))
    peak_db = 20 * np.log10(peak + 1e-12)
    if peak_db < SILENCE_DBFS:
        raise RecordingError(f"{what} is silent (peak {peak_db:.0f} dBFS, below {SILENCE_DBFS:.0f} dBFS)")
    return x


def f0_range(instrument: str) -> tuple[float, float]:
    """(fmin, fmax) Hz searched for ``instrument``: its usual range widened by a few semitones."""
    inst = by_name(instrument)
    lo = 440.0 * 2 ** ((inst.low - RANGE_MARGIN_LOW - 69) / 12)
    hi = 440.0 * 2 ** ((inst.high + RANGE_MARGIN_HIGH - 69) / 12)
    return max(30.0, lo), hi


def _loudness(x: np.ndarray, sample_rate: int, frame_rate: float, window_s: float = 30.0) -> np.ndarray:
    """A-weighted loudness [x.size // hop] in windows with margins (bounded memory on long recordings)."""
    import torch

    from .synthesis.ddsp.features import a_weighted_loudness

    hop = int(round(sample_rate / frame_rate))
    n = x.size // hop
    L, margin = int(window_s * frame_rate), 8  # margin > half the 512-sample FFT
    out = np.zeros(n, np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        for a in range(0, n, L):
            b = min(a + L, n)
            ta, tb = max(0, a - margin), min(n, b + margin)
            seg = xt[ta * hop:tb * hop]
            out[a:b] = a_weighted_loudness(seg[None], sample_rate, frame_rate)[0, a - ta:b - ta, 0].numpy()
    return out


def recording_features(audio, sample_rate: int, instrument: str, analysis_rate: int = DEFAULT_ANALYSIS_RATE,
                       frame_rate: float = FRAME_RATE, correct_octave: bool = True) -> RecordingFeatures:
    """Resample to ``analysis_rate`` (a multiple of ``frame_rate``) and measure the frame features.

    ``correct_octave``: fix the tracker's octave errors from the harmonic evidence
    (:func:`~midi_ddsp.note_level.transcription.correct_octaves`).
    """
    from .io.audio import resample
    from .synthesis.ddsp.features import estimate_f0

    x = check_recording(audio, sample_rate)
    if int(sample_rate) != int(analysis_rate):
        x = resample(x, int(sample_rate), int(analysis_rate)).astype(np.float32)
    sr = int(analysis_rate)
    fmin, fmax = f0_range(instrument)
    fmax = min(fmax, 0.45 * sr)
    f0, conf = estimate_f0(x, sr, frame_rate=frame_rate, fmin=fmin, fmax=fmax)
    if correct_octave:
        f0 = correct_octaves(f0, *harmonic_energies(x, sr, f0, frame_rate), fmin=fmin, fmax=fmax)
    loud = _loudness(x, sr, frame_rate)
    ons = onset_strength(x, sr, frame_rate)
    n = min(f0.size, loud.size, ons.size)
    return RecordingFeatures(x, sr, frame_rate, f0[:n], conf[:n], loud[:n], ons[:n])


# ------------------------------------------------------------------------------------------ transcription
def _quality_warnings(tr: Transcription, feats: RecordingFeatures) -> list[str]:
    out = []
    st = tr.stats
    frames = np.flatnonzero(tr.frame_pitch > 0)
    h = harmonicity(feats.audio, feats.sample_rate, feats.f0_hz, frames, feats.frame_rate) if frames.size else 1.0
    st["harmonicity"] = float(h)
    if st["snr_db"] < NOISY_SNR_DB:
        out.append(f"the recording is very noisy (its notes are only {st['snr_db']:.0f} dB above the noise "
                   f"floor); notes may be missed, split or invented")
    if np.isfinite(h) and (h < MIN_HARMONICITY or st["voiced_fraction"] < MIN_VOICED_FRACTION
                           or st["median_periodicity"] < MIN_PERIODICITY):
        out.append(f"the recording does not look like one clean monophonic voice (harmonic share "
                   f"{h:.2f}, pitched share of the sounding frames {st['voiced_fraction']:.2f}, periodicity "
                   f"{st['median_periodicity']:.2f}): polyphonic or very noisy input gives unreliable notes")
    return out


def transcribe_recording(audio, sample_rate: int, instrument: str, config: TranscriptionConfig | None = None,
                         analysis_rate: int = DEFAULT_ANALYSIS_RATE, name: str = ""
                         ) -> tuple[Transcription, RecordingFeatures, list[str]]:
    """Notes of a monophonic recording (no model): (transcription, features, warning lines).

    Raises:
        RecordingError: not a usable recording (see the module docstring).
    """
    inst = by_name(instrument).name
    feats = recording_features(audio, sample_rate, inst, analysis_rate)
    tr = transcribe(feats.f0_hz, feats.periodicity, feats.loudness_db, feats.onset_strength, feats.frame_rate,
                    inst, config, name=name)
    if len(tr.sequence) == 0:
        raise RecordingError("no pitched notes found in the recording (is it a monophonic melody of a pitched "
                             "instrument?)")
    return tr, feats, _quality_warnings(tr, feats)


# --------------------------------------------------------------------------------------------- analysis
def measure_performance(model, transcription: Transcription, features: RecordingFeatures, measured: bool = True
                        ) -> tuple[Performance, list[str]]:
    """The six controls of ``transcription``'s notes measured from the recording by ``model`` (whose rate
    ``features`` must be at): (performance, warning lines about the notes found)."""
    if int(features.sample_rate) != int(model.sample_rate):
        raise ValueError(f"features at {features.sample_rate} Hz, the model runs at {model.sample_rate} Hz")
    seq = transcription.sequence
    perf = model.extract_performance(features.audio, features.sample_rate, seq, f0_hz=features.f0_hz,
                                     measured=measured)
    messages = []
    out_of_range = seq.out_of_range()
    if out_of_range:
        info = seq.instrument_info
        messages.append(f"{len(out_of_range)} of {len(seq)} notes found lie outside the usual range of "
                        f"the {info.name} (MIDI {info.low}-{info.high}): wrong --instrument, or octave errors")
    return perf, messages


def analyze_recording_full(model, audio, sample_rate: int, instrument: str,
                           config: TranscriptionConfig | None = None, measured: bool = True,
                           name: str = "") -> RecordingAnalysis:
    """Like :func:`analyze_recording` but returns the transcription, features, warnings and timings too
    (the warnings are returned, not emitted)."""
    t0 = time.perf_counter()
    inst = model._instrument(instrument).name if hasattr(model, "_instrument") else by_name(instrument).name
    tr, feats, messages = transcribe_recording(audio, sample_rate, inst, config, int(model.sample_rate), name)
    t1 = time.perf_counter()
    perf, more = measure_performance(model, tr, feats, measured)
    t2 = time.perf_counter()
    return RecordingAnalysis(perf, tr, feats, messages + more,
                             {"transcribe": t1 - t0, "controls": t2 - t1, "total": t2 - t0})


def analyze_recording(model, audio, sample_rate: int, instrument: str, config: TranscriptionConfig | None = None,
                      measured: bool = True, name: str = "") -> Performance:
    """A monophonic recording -> a :class:`~midi_ddsp.note_level.notes.Performance` of ``instrument``.

    Args:
        model: a :class:`~midi_ddsp.pipeline.MidiDDSP` with its analysis model.
        audio: [samples] or [channels, samples] float, any ``sample_rate`` (Hz).
        instrument: the instrument playing (sets the f0 search range and the controls' normalisation).
        config: transcription thresholds (:class:`~midi_ddsp.note_level.transcription.TranscriptionConfig`).
        measured: brightness and attack from the harmonics and noise measured from the spectrum as the
            training targets are (else read through the analysis model).
    Returns:
        The performance (normalised controls, notes in seconds of the input).
    Raises:
        RecordingError: not a usable recording. Warns (:class:`MidiDDSPWarning`) on very noisy or
            polyphonic-looking input.
    """
    res = analyze_recording_full(model, audio, sample_rate, instrument, config, measured, name)
    for m in res.warnings:
        warnings.warn(m, MidiDDSPWarning, stacklevel=2)
    return res.performance


__all__ = ["RecordingError", "RecordingFeatures", "RecordingAnalysis", "check_recording", "recording_features",
           "transcribe_recording", "measure_performance", "analyze_recording", "analyze_recording_full", "f0_range",
           "as_mono", "MIN_DURATION_S", "SILENCE_DBFS"]
