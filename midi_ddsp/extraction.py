"""Audio -> synthesis parameters (the analysis model) -> a Performance (the six controls of given notes).

Long recordings are processed in windows with margins (bounded memory, same result as whole): the f0
tracker, the loudness, and the analysis model's convolutions (margins of their receptive field).
Used by :meth:`MidiDDSP.analyze` / :meth:`MidiDDSP.extract_performance` and by timbre transfer.
"""
from __future__ import annotations

import numpy as np
import torch

from .checkpoint import CheckpointError
from .generation import receptive_field
from .io.audio import resample
from .model_folder import ANALYSIS_FILE
from .note_level.expression import extract_controls
from .note_level.frames import notes_to_frames
from .note_level.notes import NoteSequence, Performance
from .synthesis.params import SynthParams

F0_MARGIN_FRAMES = 64  # more than half the YIN frame (two periods of 30 Hz = 17 frames at 250 Hz)
LOUDNESS_MARGIN_FRAMES = 8  # more than half the loudness FFT
MEASURE_MARGIN_FRAMES = 130  # more than half measure_controls' longest window (0.25 s), a multiple of its steps
MEASURE_MAX_DEVIATION = 1.0  # semitones: a tracked f0 farther than this from its note's pitch is not trusted


def note_anchored_f0(f0_hz: np.ndarray, frames) -> np.ndarray:
    """``f0_hz [frames]`` (Hz) for measuring harmonics: inside notes, voiced frames whose f0 lies more than
    :data:`MEASURE_MAX_DEVIATION` from the note's pitch (a tracker's octave error, a lagging attack) take the
    note's pitch instead, so their partials are read at the right frequencies; elsewhere as given.
    ``frames``: the notes' :class:`~midi_ddsp.note_level.frames.NoteFrames` on the same grid."""
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    n = min(f0.size, frames.n_frames)
    pitch = np.asarray(frames.pitch, dtype=np.float64)[:n]
    in_note = (np.asarray(frames.note_index)[:n] >= 0) & (pitch > 0) & (f0[:n] > 0)
    note_hz = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        far = in_note & (np.abs(12.0 * np.log2(f0[:n] / note_hz)) > MEASURE_MAX_DEVIATION)
    out = f0.copy()
    out[:n][far] = note_hz[far]
    return out.astype(np.float32)


def at_model_rate(audio: np.ndarray, sample_rate: int, model_rate: int) -> np.ndarray:
    """Mono float32 ``[samples]`` at the model's rate."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if int(sample_rate) != int(model_rate):
        x = resample(x, int(sample_rate), int(model_rate)).astype(np.float32)
    return x


def _windows(n_frames: int, length: int, margin: int):
    for a in range(0, n_frames, length):
        b = min(a + length, n_frames)
        yield a, b, max(0, a - margin), min(n_frames, b + margin)


def windowed_f0(x: np.ndarray, sample_rate: int, frame_rate: float, n_frames: int,
                window_s: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """``estimate_f0`` on windows with margins (bounded memory on long recordings); ``[n_frames]`` each."""
    from .synthesis.ddsp.features import estimate_f0

    hop = int(sample_rate / frame_rate)
    f0 = np.zeros(n_frames, np.float32)
    conf = np.zeros(n_frames, np.float32)
    for a, b, ta, tb in _windows(n_frames, int(window_s * frame_rate), F0_MARGIN_FRAMES):
        f, c = estimate_f0(x[ta * hop:tb * hop], sample_rate, frame_rate)
        f0[a:b], conf[a:b] = f[a - ta:b - ta], c[a - ta:b - ta]
    return f0, conf


def windowed_loudness(x: np.ndarray, sample_rate: int, frame_rate: float, n_frames: int,
                      window_s: float = 30.0) -> np.ndarray:
    """A-weighted loudness (dB) ``[n_frames]`` on windows with margins."""
    from .synthesis.ddsp.features import a_weighted_loudness

    hop = int(sample_rate / frame_rate)
    out = np.zeros(n_frames, np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    with torch.inference_mode():
        for a, b, ta, tb in _windows(n_frames, int(window_s * frame_rate), LOUDNESS_MARGIN_FRAMES):
            seg = xt[ta * hop:tb * hop][None]
            out[a:b] = a_weighted_loudness(seg, sample_rate, frame_rate)[0, a - ta:b - ta, 0].numpy()
    return out


def _audio_and_f0(model, audio: np.ndarray, sample_rate: int, f0_hz: np.ndarray | None):
    """Mono float32 audio at the model's rate padded to whole frames, and its f0 ``[n_frames]`` Hz (the
    given one cut or edge-padded to the frames, else tracked)."""
    sr, fr, hop = model.sample_rate, model.frame_rate, model.hop
    x = at_model_rate(audio, sample_rate, sr)
    n_frames = -(-x.shape[0] // hop)
    x = np.pad(x, (0, n_frames * hop - x.shape[0]))
    if f0_hz is None:
        f0_hz, _ = windowed_f0(x, sr, fr, n_frames)
    f0 = np.asarray(f0_hz, dtype=np.float32).reshape(-1)[:n_frames]
    return x, np.pad(f0, (0, n_frames - f0.shape[0]), mode="edge")


def analyze(model, audio: np.ndarray, sample_rate: int, instrument: str,
            f0_hz: np.ndarray | None = None) -> SynthParams:
    """Audio -> synthesis parameters with the analysis model (see :meth:`MidiDDSP.analyze`)."""
    if model.analysis_model is None:
        raise CheckpointError(f"{model.path}: no {ANALYSIS_FILE} (the analysis model) in the model folder")
    from .synthesis.ddsp.features import a_weighted_loudness, log_mel

    inst = model._instrument(instrument)
    sr, fr, hop = model.sample_rate, model.frame_rate, model.hop
    x, f0 = _audio_and_f0(model, audio, sample_rate, f0_hz)
    n_frames = f0.shape[0]
    net = model.analysis_model
    rf = receptive_field(net)
    pieces = []
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        for a, b, ta, tb in _windows(n_frames, max(int(model.window_s * fr), 4 * rf), rf):
            seg = xt[ta * hop:tb * hop][None]
            loud = a_weighted_loudness(seg, sr, fr)
            mel = log_mel(seg, sr, fr, n_mels=net.n_mels)
            f0_t = torch.from_numpy(f0[ta:tb])[None, :, None]
            p = net(f0_t, loud, torch.tensor([inst.id]), mel, float(sr), fr)
            pieces.append(p.frames(a - ta, b - ta))
    return SynthParams.cat(pieces)


def measure(model, audio: np.ndarray, sample_rate: int, instrument: str,
            f0_hz: np.ndarray | None = None, window_s: float = 30.0) -> SynthParams:
    """Audio -> synthesis parameters measured straight from its spectrum at ``f0_hz`` (estimated when not
    given), no model: :func:`~midi_ddsp.synthesis.ddsp.inversion.measure_controls` with the instrument's
    windows, exactly as the generator's training targets are made (``midi-ddsp dump-targets``), on windows
    with margins (bounded memory; the same result as whole)."""
    from .synthesis.ddsp.inversion import measure_controls

    inst = model._instrument(instrument)
    sr, fr, hop = model.sample_rate, model.frame_rate, model.hop
    x, f0 = _audio_and_f0(model, audio, sample_rate, f0_hz)
    n_frames = f0.shape[0]
    n_harm, n_noise = model.synth.harmonic.n_harmonics, model.synth.noise.n_bands
    amp, harm, noise = (np.zeros((n_frames, c), np.float32) for c in (1, n_harm, n_noise))
    for a, b, ta, tb in _windows(n_frames, int(window_s * fr), MEASURE_MARGIN_FRAMES):
        m = measure_controls(x[ta * hop:tb * hop], f0[ta:tb], sr, fr, n_harm, n_noise, lowest_hz=inst.lowest_hz)
        amp[a:b, 0], harm[a:b], noise[a:b] = (v[a - ta:b - ta] for v in (m.amplitude, m.harmonic_distribution,
                                                                          m.noise_magnitudes))
    t = lambda v: torch.from_numpy(v)[None]  # noqa: E731
    return SynthParams(t(f0[:, None]), t(amp), t(harm), t(noise), fr)


def extract_performance(model, audio: np.ndarray, sample_rate: int, sequence: NoteSequence,
                        f0_hz: np.ndarray | None = None, params: SynthParams | None = None,
                        measured: bool = False) -> Performance:
    """The six normalised controls of ``sequence``'s notes read from audio (see
    :meth:`MidiDDSP.extract_performance`)."""
    if params is None:
        params = analyze(model, audio, sample_rate, sequence.instrument, f0_hz)
    frames = notes_to_frames(sequence, params.n_frames, model.frame_rate)
    if measured:
        m = measure(model, audio, sample_rate, sequence.instrument,
                    note_anchored_f0(params.f0_hz[0, :, 0].numpy(), frames))
        params = SynthParams(params.f0_hz, params.amplitude, m.harmonic_distribution, m.noise_magnitudes,
                             params.frame_rate)
    raw = extract_controls(params.f0_hz[0], params.amplitude[0], params.harmonic_distribution[0],
                           params.noise_magnitudes[0], frames)
    controls = model.normalizer.normalize(np.nan_to_num(raw, nan=0.0), sequence.instrument, clip=False)
    return Performance(sequence, controls)


__all__ = ["analyze", "measure", "extract_performance", "note_anchored_f0", "windowed_f0", "windowed_loudness",
           "at_model_rate"]
