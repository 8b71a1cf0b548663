"""The timbre measurements of eval/eval_timbre.py against signals whose answer is known by construction."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

import timbre_metrics as tm  # noqa: E402
from midi_ddsp.synthesis.ddsp.features import estimate_f0  # noqa: E402

FR = 250.0


def harmonic_tone(f0_hz: float, amps_db, sample_rate: int, seconds: float, seed: int = 0,
                  vibrato_cents: float = 0.0) -> np.ndarray:
    """Sum of harmonics k = 1.. with the given levels (dB, linear amplitude 10**(db/20) * 0.1), random phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f = f0_hz * 2.0 ** (vibrato_cents / 1200.0 * np.sin(2 * np.pi * 5.0 * t))
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    out = np.zeros_like(t)
    for k, db in enumerate(amps_db, start=1):
        if k * f0_hz * 2.0 ** (vibrato_cents / 1200.0) < sample_rate / 2:
            out += 0.1 * 10 ** (db / 20.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


AMPS_DB = np.array([-19.0, 0.0, -4.0, -9.0, -3.0, -14.0, -22.0, -8.0, -27.0, -12.0, -30.0, -17.0])


@pytest.mark.parametrize("sample_rate,pitch", [(48000, 57), (16000, 34), (48000, 34)])
def test_harmonic_profile_recovers_known_amplitudes(sample_rate, pitch):
    """A tone with a weak fundamental (bassoon-like) and irregular harmonics: every level within 0.5 dB."""
    f0 = float(tm.midi_to_hz(pitch))
    x = harmonic_tone(f0, AMPS_DB, sample_rate, 1.2)
    n_frames = x.size * int(FR) // sample_rate
    prof = tm.note_harmonic_profile(x, sample_rate, np.full(n_frames, f0), np.ones(n_frames), pitch, 0.1, 1.1)
    assert prof is not None
    want = AMPS_DB - AMPS_DB.max()
    np.testing.assert_allclose(prof, want, atol=0.5)


def test_harmonic_profile_with_tracked_f0_and_vibrato():
    """The real path: f0 tracked from the audio by estimate_f0, a +-20 cent vibrato; still within 0.5 dB."""
    sr, pitch = 48000, 50
    f0 = float(tm.midi_to_hz(pitch))
    x = harmonic_tone(f0, AMPS_DB, sr, 1.5, vibrato_cents=20.0)
    tracked, conf = estimate_f0(x, sr, FR, fmin=60.0, fmax=400.0)
    prof = tm.note_harmonic_profile(x, sr, tracked, conf, pitch, 0.1, 1.4)
    np.testing.assert_allclose(prof, AMPS_DB - AMPS_DB.max(), atol=0.5)


def test_harmonic_profile_nyquist_unvoiced_and_wrong_pitch():
    sr, pitch = 16000, 84                                                    # C6, 1047 Hz: harmonics 8.. above 8 kHz
    f0 = float(tm.midi_to_hz(pitch))
    x = harmonic_tone(f0, AMPS_DB, sr, 1.0)
    n = x.size * int(FR) // sr
    prof = tm.note_harmonic_profile(x, sr, np.full(n, f0), np.ones(n), pitch, 0.0, 1.0)
    assert np.isnan(prof[7:]).all() and np.isfinite(prof[:7]).all()
    assert tm.note_harmonic_profile(x, sr, np.full(n, f0), np.zeros(n), pitch, 0.0, 1.0) is None   # unvoiced
    assert tm.note_harmonic_profile(x, sr, np.full(n, f0 * 1.06), np.ones(n), pitch, 0.0, 1.0) is None  # +1 semitone


def test_median_profile_and_mad():
    a = np.array([0.0, -10.0, np.nan])
    b = np.array([-2.0, -6.0, -30.0])
    assert tm.profile_mad(a, b) == pytest.approx(3.0)
    med = tm.median_profile([np.array([0.0, -10.0, np.nan]), np.array([0.0, -20.0, np.nan]),
                             np.array([-1.0, -12.0, np.nan])])
    np.testing.assert_allclose(med[:2], [0.0, -12.0])
    assert np.isnan(med[2])


def test_octave_bands_of_white_noise_rise_3_db_per_octave():
    sr = 48000
    x = np.random.default_rng(1).standard_normal(sr * 10)
    levels = tm.octave_band_levels(x, sr)
    steps = np.diff(levels)
    np.testing.assert_allclose(steps, 10 * np.log10(2.0), atol=0.25)
    # the seven bands partition 177 Hz - 22.6 kHz: their energies add up to the total
    assert np.sum(10 ** (levels / 10)) == pytest.approx(1.0, rel=1e-9)
    # the 16 kHz band (11.3 - 22.6 kHz) holds half the white-noise energy of 177 Hz - 22.6 kHz
    assert levels[-1] == pytest.approx(10 * np.log10(64 / 127), abs=0.25)


def test_octave_bands_of_a_sine_and_above_nyquist():
    sr = 16000
    t = np.arange(sr * 4) / sr
    levels = tm.octave_band_levels(np.sin(2 * np.pi * 1000 * t) + 1e-3 * np.sin(2 * np.pi * 4000 * t), sr)
    assert np.isnan(levels[-1])                                             # 16 kHz band above 8 kHz Nyquist
    assert levels[2] == pytest.approx(0.0, abs=0.01)                        # nearly all in the 1 kHz band
    assert levels[4] == pytest.approx(-60.0, abs=0.5)                       # the -60 dB partial in the 4 kHz band


def _timbre_clip(kind: str, rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """A short melody of 0.5 s notes: 'bright' = 1/k harmonics (sawtooth-like), 'dark' = odd harmonics
    falling 18 dB per harmonic step plus a little noise (a stopped-pipe-like tone). Random level per clip."""
    out = []
    for _ in range(int(seconds / 0.5)):
        f0 = rng.uniform(150, 500)
        if kind == "bright":
            amps = [-20 * np.log10(k) for k in range(1, 30)]
        else:
            amps = [(-18.0 * (k // 2) if k % 2 else -200.0) for k in range(1, 30)]
        note = harmonic_tone(f0, amps, sr, 0.5, seed=int(rng.integers(1 << 30)))
        note *= np.hanning(note.size) ** 0.3
        out.append(note)
    x = np.concatenate(out)
    x += 0.002 * rng.standard_normal(x.size)
    return x * 10 ** (rng.uniform(-20, 0) / 20)


def test_classifier_separates_two_synthetic_timbres():
    sr = 16000
    feats, labels = {}, {}
    for split, seed in (("train", 0), ("test", 1)):
        rng = np.random.default_rng(seed)
        xs, ys = [], []
        for label, kind in enumerate(("bright", "dark")):
            for _ in range(3):
                clip = _timbre_clip(kind, rng, sr, 6.0)
                starts = tm.active_windows(clip, sr)
                xs.append(tm.window_features(clip, sr, starts))
                ys.append(np.full(starts.size, label))
        feats[split], labels[split] = np.concatenate(xs), np.concatenate(ys)
    assert feats["train"].shape[0] >= 40 and np.isfinite(feats["train"]).all()
    model = tm.train_classifier(feats["train"], labels["train"])
    accuracy = np.mean(model.predict(feats["test"]) == labels["test"])
    assert accuracy >= 0.95, accuracy


def test_window_features_are_level_invariant():
    sr = 16000
    clip = _timbre_clip("bright", np.random.default_rng(3), sr, 4.0)
    starts = tm.active_windows(clip, sr)
    a = tm.window_features(clip, sr, starts)
    b = tm.window_features(clip * 0.01, sr, starts)
    np.testing.assert_allclose(a, b, atol=1e-3)
