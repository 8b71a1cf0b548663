"""Rendered audio agrees with the performer's annotation: onsets, pitch, loudness (needs FluidSynth).

References are measured from the audio independently of our feature code: an RMS envelope for onsets,
librosa's YIN for pitch, a plain A-weighting-free RMS level in dB for loudness.
"""
from __future__ import annotations

import numpy as np
import pytest

from midi_ddsp.data.calibration import load_or_calibrate, tuning_offsets
from midi_ddsp.data.corpus_sources import Melody
from midi_ddsp.data.performer import PerformerConfig, perform
from midi_ddsp.data.render import MidiTrack, render_tracks, renderer_available
from midi_ddsp.instruments import by_name

pytestmark = pytest.mark.skipif(not renderer_available(),
                                reason="fluidsynth + a GM soundfont are needed "
                                       "(apt-get install fluidsynth fluid-soundfont-gm)")
SR = 16000


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    insts = [by_name(n) for n in ("violin", "cello", "flute", "clarinet", "trumpet", "tuba")]
    return load_or_calibrate(tmp_path_factory.mktemp("cal") / "cal.json", instruments=insts)


def detached_melody(seed=0, n=14) -> Melody:
    """Notes separated by rests, irregular lengths: every onset is preceded by silence."""
    rng = np.random.default_rng(seed)
    pitch = rng.integers(62, 74, n).tolist()
    dur = rng.choice([0.5, 1.0, 1.5], n).tolist()
    onset = np.concatenate([[0], np.cumsum(np.asarray(dur) + 1.5)[:-1]]).tolist()
    return Melody(key="t#0", source="t", pitch=pitch, onset_ql=onset, duration_ql=dur,
                  beat_strength=[1.0] * n, fermata=[False] * n, seconds_per_ql=0.5)


def long_note_melody(n=6) -> Melody:
    pitch = [64, 67, 65, 69, 67, 64][:n]
    return Melody(key="l#0", source="l", pitch=pitch, onset_ql=[8.0 * i for i in range(n)],
                  duration_ql=[7.0] * n, beat_strength=[1.0] * n, fermata=[False] * n, seconds_per_ql=0.5)


def rms_envelope(audio, hop=16, win=32):
    x = np.pad(audio.astype(np.float64) ** 2, (win // 2, win // 2))
    c = np.cumsum(np.concatenate([[0], x]))
    idx = np.arange(0, audio.size, hop)
    return np.sqrt((c[idx + win] - c[idx]) / win), hop


@pytest.mark.parametrize("name,transpose", [("flute", 12), ("clarinet", 0), ("trumpet", 0), ("violin", 0),
                                            ("cello", -12), ("tuba", -24)])
def test_onsets_within_15_ms(name, transpose, calibration):
    inst = by_name(name)
    p = perform(detached_melody(1), inst, seed=3, transpose=transpose,
                tuning_offsets_cents=tuning_offsets(calibration, name),
                config=PerformerConfig(min_duration_s=15, max_duration_s=25, shortest_piece_s=5))
    audio = render_tracks(p.to_tracks(), p.duration_s, SR)
    env, hop = rms_envelope(audio)
    errors = []
    for on, off in zip(p.notes["onset_s"], p.notes["offset_s"]):
        a, b = int((on - 0.06) * SR / hop), int((on + 0.3) * SR / hop)
        base = env[a:int((on - 0.02) * SR / hop)].max()
        peak = env[a:b].max()
        if base > 0.003 * peak:  # previous note still ringing: no clean onset to measure
            continue
        k = a + int(np.argmax(env[a:b] > 0.01 * peak))  # sound starts: first frame above -40 dB of the peak
        errors.append(k * hop / SR - on)
    errors = np.asarray(errors)
    assert errors.size >= 8
    assert np.abs(errors).max() <= 0.015, errors


@pytest.mark.parametrize("name,transpose", [("violin", 0), ("flute", 12), ("clarinet", 0), ("cello", -12)])
def test_true_f0_within_20_cents_on_held_notes(name, transpose, calibration):
    import librosa

    inst = by_name(name)
    mel = long_note_melody(4)
    p = perform(mel, inst, seed=2, transpose=transpose, tuning_offsets_cents=tuning_offsets(calibration, name),
                config=PerformerConfig(min_duration_s=12, max_duration_s=20, shortest_piece_s=5))
    audio = render_tracks(p.to_tracks(), p.duration_s, SR)
    f0 = librosa.yin(audio, fmin=50, fmax=2000, sr=SR, frame_length=1024, hop_length=64, center=True)
    true = p.curves["f0_hz"]
    n = min(f0.size, true.size)
    vib_notes = 0
    for i, (on, off) in enumerate(zip(p.notes["onset_s"], p.notes["offset_s"])):
        fr = np.arange(int((on + 0.15) * 250), int((off - 0.05) * 250))
        fr = fr[fr < n]
        cents = 1200 * np.log2(f0[fr] / true[fr])
        assert np.median(np.abs(cents)) < 20, (name, i, np.median(np.abs(cents)))
        assert np.percentile(np.abs(cents), 90) < 20, (name, i)
        vib_notes += p.notes["vibrato_depth_cents"][i] > 0
    if name == "violin":
        assert vib_notes >= 2  # the check covered vibrato, not only steady notes


@pytest.mark.parametrize("name", ["flute", "clarinet", "trumpet"])
def test_loudness_follows_cc11(name):
    """On held notes the audio level (dB) moves with the CC11 curve, about 1 dB per dB of 40 log10(cc/127)."""
    inst = by_name(name)
    t_end = 7.0
    tr = MidiTrack(program=inst.program)
    tr.add(0.2, "on", 67, 100)
    tr.add(t_end - 0.3, "off", 67, 0)
    frames = np.arange(int(t_end * 250))
    t = frames / 250
    # a swell plus a slower wave, between -18 and 0 dB
    db = -9 + 9 * np.sin(2 * np.pi * 0.35 * t) * np.cos(2 * np.pi * 0.11 * t)
    cc = np.clip(np.rint(127 * 10 ** (db / 40)), 1, 127).astype(int)
    tr.extend(t, "cc", 11, cc)
    audio = render_tracks([tr], t_end, SR)
    env, hop = rms_envelope(audio, hop=64, win=512)
    level = 20 * np.log10(env + 1e-9)
    expected = 40 * np.log10(cc / 127)
    sel = (t > 0.5) & (t < t_end - 0.5)
    m = min(level.size, expected.size)
    sel = sel[:m]
    r = np.corrcoef(level[:m][sel], expected[:m][sel])[0, 1]
    slope = np.polyfit(expected[:m][sel], level[:m][sel], 1)[0]
    assert r > 0.95, r
    assert 0.8 < slope < 1.2, slope


@pytest.mark.parametrize("name", ["clarinet", "trumpet", "oboe"])
def test_loudness_follows_the_performers_cc11_curve(name, calibration):
    """A performed piece: within each held note, the audio level tracks the performer's expression curve."""
    inst = by_name(name)
    p = perform(long_note_melody(6), inst, seed=5, tuning_offsets_cents=tuning_offsets(calibration, name)
                if name in calibration["instruments"] else None,
                config=PerformerConfig(min_duration_s=18, max_duration_s=30, shortest_piece_s=5))
    audio = render_tracks(p.to_tracks(), p.duration_s, SR)
    env, hop = rms_envelope(audio, hop=64, win=512)
    level = 20 * np.log10(env + 1e-9)
    expr = p.curves["expression_db"]
    xs, ys = [], []
    for on, off in zip(p.notes["onset_s"], p.notes["offset_s"]):
        fr = np.arange(int((on + 0.25) * 250), int((off - 0.1) * 250))
        fr = fr[fr < min(level.size, expr.size)]
        xs.append(expr[fr] - expr[fr].mean())
        ys.append(level[fr] - level[fr].mean())
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.std() > 1.0  # the performer really shaped these notes
    r = np.corrcoef(x, y)[0, 1]
    assert r > 0.8, r
