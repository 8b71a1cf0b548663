"""Realism measures against signals whose answer is known analytically."""
from __future__ import annotations

import numpy as np
import pytest

from midi_ddsp.synthesis.ddsp.metrics import (f0_micro_variation_cents, harmonic_to_noise_ratio, release_time_s,
                                              transient_ratio_db)

SR, FR, HOP = 16000, 250.0, 64


def tone(f0: float, seconds: float = 1.0, n_harmonics: int = 10) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harmonics + 1))


def test_hnr_is_high_for_a_clean_tone_and_follows_added_noise():
    x = tone(220.0)
    f0 = np.full(int(len(x) / HOP), 220.0)
    clean = harmonic_to_noise_ratio(x, f0, SR, FR)
    assert clean > 40.0
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(x))
    # White noise of variance s2 puts s2 * band / nyquist into the measured band (0.75 f0 .. 4 kHz), half of it
    # within +-f0/4 of a harmonic (counted as harmonic), half between harmonics (counted as noise).
    tone_power = np.mean(x ** 2)
    band = (4000.0 - 0.75 * 220.0) / (SR / 2)
    for gain in (0.3, 1.0, 3.0):
        between = 0.5 * band * gain ** 2
        expected = 10 * np.log10((tone_power + between) / between)
        measured = harmonic_to_noise_ratio(x + gain * noise, f0, SR, FR)
        assert measured == pytest.approx(expected, abs=1.0)


def test_transient_ratio_sees_clicks_at_events_only():
    x = tone(330.0, 2.0, 5)
    events = np.array([4000, 12000, 20000])
    smooth = transient_ratio_db(x, events, SR)
    clicked = x.copy()
    clicked[events] += 2.0
    assert smooth < 3.0
    assert transient_ratio_db(clicked, events, SR) > smooth + 10.0


def test_release_time_of_an_exponential_decay():
    frames = np.arange(500)
    loud = np.where(frames < 100, -20.0, -20.0 - 100.0 * (frames - 100) / FR)   # 100 dB/s after frame 100
    assert release_time_s(loud, np.array([100]), FR) == pytest.approx(0.2, abs=1.5 / FR)


def test_micro_variation_of_a_vibrato_ignores_octave_errors():
    n = 300
    t = np.arange(n) / FR
    cents = 40.0 * np.sin(2 * np.pi * 5.0 * t)
    f0 = 440.0 * 2 ** (cents / 1200)
    index = np.zeros(n, int)
    assert f0_micro_variation_cents(f0, index) == pytest.approx(40.0 / np.sqrt(2), rel=0.05)
    tracked = f0.copy()
    tracked[100:130] *= 2.0                                                      # a tracker's octave jump
    assert f0_micro_variation_cents(tracked, index) == pytest.approx(40.0 / np.sqrt(2), rel=0.1)
    assert f0_micro_variation_cents(np.full(n, 440.0), index) == pytest.approx(0.0, abs=1e-6)
