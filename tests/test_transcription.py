"""Recording -> notes (:mod:`midi_ddsp.note_level.transcription`, :mod:`midi_ddsp.recording`) and audio-only
training data (``cache-features source=audio``), on synthetic recordings whose notes are known
(:mod:`transcription_signals`).

Notes are scored with mir_eval's note-onset matching (onset within 50 ms, pitch within 50 cents, offsets
ignored), the measure of the issue; a second, independent greedy matcher (written here) must agree.
No model is involved: the transcription is signal processing only.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from midi_ddsp.errors import MidiDDSPWarning
from midi_ddsp.recording import RecordingError, transcribe_recording

from transcription_signals import add_noise, add_reverb, melody

mir_eval = pytest.importorskip("mir_eval")
SR = 16000


# ---------------------------------------------------------------------------------------------- scoring
def _hz(p):
    return 440.0 * 2.0 ** ((np.asarray(p, np.float64) - 69.0) / 12.0)


def mir_onset_f1(ref, seq) -> float:
    """mir_eval note onset F1 (50 ms, 50 cents, no offsets) of ``seq`` against ``ref`` [(pitch, on, off)]."""
    if len(seq) == 0:
        return 0.0
    r = np.array(ref, np.float64)
    ri, ei = r[:, 1:3], np.stack([seq.onsets_s, seq.offsets_s], 1)
    _, _, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ri, _hz(r[:, 0]), ei, _hz(seq.pitches), onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None)
    return float(f)


def greedy_onset_f1(ref, seq, tol_s: float = 0.05) -> float:
    """Own matcher: each reference note (in time order) takes the closest unused estimated note of the same
    MIDI pitch whose onset lies within ``tol_s``."""
    used = np.zeros(len(seq), bool)
    est_on, est_p = np.asarray(seq.onsets_s), np.asarray(seq.pitches)
    hits = 0
    for p, a, _ in ref:
        d = np.where((est_p == p) & ~used, np.abs(est_on - a), np.inf)
        j = int(np.argmin(d)) if d.size else -1
        if j >= 0 and d[j] <= tol_s:
            used[j] = True
            hits += 1
    if hits == 0:
        return 0.0
    prec, rec = hits / len(seq), hits / len(ref)
    return 2 * prec * rec / (prec + rec)


def transcribed(audio, instrument="violin", sr=SR):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MidiDDSPWarning)
        tr, feats, messages = transcribe_recording(audio, sr, instrument)
    return tr, messages


def check(ref, seq, min_f1=1.0):
    f1, own = mir_onset_f1(ref, seq), greedy_onset_f1(ref, seq)
    found = [(n.pitch, round(n.onset_s, 3)) for n in seq]
    assert f1 >= min_f1, f"F1 {f1:.3f}; expected {[(p, a) for p, a, _ in ref]}, found {found}"
    assert abs(f1 - own) < 0.05, (f1, own)
    return f1


# -------------------------------------------------------------------------------------------- melodies
LEGATO = [(67, 0.30, 0.70), (69, 0.70, 1.10), (71, 1.10, 1.50), (72, 1.50, 1.90), (74, 1.90, 2.30),
          (72, 2.30, 2.70), (71, 2.70, 3.40)]
REPEATED = [(69, 0.30, 0.70), (69, 0.75, 1.10), (69, 1.15, 1.40), (69, 1.45, 1.80), (72, 1.80, 2.30),
            (72, 2.34, 2.70), (72, 2.74, 3.30)]


def test_legato_pitch_changes_without_a_gap_are_new_notes():
    tr, messages = transcribed(melody(LEGATO, SR))
    check(LEGATO, tr.sequence)
    assert len(tr.sequence) == len(LEGATO) and messages == []


def test_repeated_notes_of_one_pitch_are_separated_by_their_articulation():
    tr, _ = transcribed(melody(REPEATED, SR, release_s=0.03))
    check(REPEATED, tr.sequence)
    assert len(tr.sequence) == len(REPEATED)


@pytest.mark.parametrize("cents,rate", [(35.0, 5.5), (60.0, 6.5)])
def test_vibrato_does_not_split_notes(cents, rate):
    notes = [(64, 0.3, 1.5), (67, 1.6, 3.0), (65, 3.1, 4.4)]
    tr, _ = transcribed(melody(notes, SR, vibrato_cents=cents, vibrato_hz=rate))
    check(notes, tr.sequence)
    assert len(tr.sequence) == 3


def test_slides_between_notes_do_not_make_notes_of_the_semitones_crossed():
    notes = [(62, 0.3, 1.0), (69, 1.0, 1.8), (64, 1.8, 2.6), (71, 2.6, 3.4)]  # legato, 150 ms glides
    tr, _ = transcribed(melody(notes, SR, glide_s=0.15, vibrato_cents=20))
    assert [n.pitch for n in tr.sequence] == [62, 69, 64, 71]
    # the onset of a slid-into note lies within the slide (it starts where the pitch leaves the old note)
    assert np.all(np.abs(tr.sequence.onsets_s - np.array([a for _, a, _ in notes])) <= 0.16)


def test_silence_noise_and_breaths_between_phrases_make_no_notes():
    rng = np.random.default_rng(5)
    phrase1 = [(65, 0.3, 0.8), (67, 0.8, 1.3), (69, 1.3, 2.0)]
    phrase2 = [(72, 3.5, 4.0), (70, 4.0, 4.6), (69, 4.7, 5.4)]
    y = melody(phrase1 + phrase2, SR, vibrato_cents=25)
    breath = rng.standard_normal(int(0.4 * SR)) * np.hanning(int(0.4 * SR)) * 0.03  # a breath before phrase 2
    a = int(2.8 * SR)
    y[a:a + breath.size] += breath.astype(np.float32)
    y = add_noise(y, 35.0)
    tr, _ = transcribed(y)
    check(phrase1 + phrase2, tr.sequence)
    assert len(tr.sequence) == 6
    assert not np.any((tr.sequence.onsets_s > 2.1) & (tr.sequence.onsets_s < 3.4))


def test_a_little_reverb_keeps_the_notes():
    notes = LEGATO[:4] + [(72, 1.95, 2.4), (72, 2.46, 2.9), (67, 3.0, 3.8)]
    y = add_reverb(melody(notes, SR, vibrato_cents=25), SR, rt60_s=0.5, wet=0.3)
    tr, _ = transcribed(y)
    check(notes, tr.sequence, min_f1=0.85)


def test_stereo_44k_input_and_tuning_offset():
    """A stereo 44.1 kHz take played 30 cents sharp: the same notes; the tuning is measured."""
    y = melody(LEGATO, 44100, detune_cents=30.0)
    tr, _ = transcribed(np.stack([y, 0.5 * y]), sr=44100)
    check(LEGATO, tr.sequence)
    assert 20.0 <= tr.tuning_cents <= 40.0


def test_low_instrument_range():
    notes = [(40, 0.3, 0.9), (43, 0.9, 1.5), (47, 1.6, 2.2), (47, 2.27, 2.9), (45, 2.9, 3.6)]
    tr, _ = transcribed(melody(notes, SR, release_s=0.03, vibrato_cents=20), instrument="cello")
    check(notes, tr.sequence)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case,match", [
    ("short", "too short"), ("silent", "silent"), ("nan", "non-finite"), ("noise", "no pitched notes"),
    ("empty", "empty")])
def test_unusable_recordings_raise_one_line_errors(case, match):
    rng = np.random.default_rng(0)
    audio = {"short": melody([(69, 0.0, 0.1)], SR, tail_s=0.05),
             "silent": np.zeros(2 * SR, np.float32) + 1e-5,
             "nan": np.full(SR, np.nan, np.float32),
             "noise": (0.3 * rng.standard_normal(2 * SR)).astype(np.float32),
             "empty": np.zeros(0, np.float32)}[case]
    with pytest.raises(RecordingError, match=match) as err:
        transcribe_recording(audio, SR, "violin")
    assert "\n" not in str(err.value)


def test_noisy_and_polyphonic_input_gives_warnings():
    notes = [(67, 0.3, 1.0), (69, 1.0, 1.7), (71, 1.8, 2.6)]
    y = melody(notes, SR)
    tr, _, noisy = transcribe_recording(add_noise(y, 15.0), SR, "violin")
    assert any("noisy" in m for m in noisy), noisy
    check(notes, tr.sequence)  # still usable: the notes are found, with a warning
    for interval in (3, 4, 7):  # a second voice a minor third, a major third, a fifth below
        lower = melody([(p - interval, a, b) for p, a, b in notes], SR, seed=3)
        _, _, poly = transcribe_recording(y + lower, SR, "violin")
        assert any("monophonic" in m for m in poly), (interval, poly)
    _, _, clean = transcribe_recording(add_reverb(melody(notes, SR, vibrato_cents=40), SR), SR, "violin")
    assert clean == []


# -------------------------------------------------------------------------- audio-only training data
def test_cache_features_source_audio_transcribes_each_recording(tmp_path):
    import pretty_midi

    from midi_ddsp.data.cache import CacheConfig, cache_features, load_features, load_manifest

    src = tmp_path / "takes"
    (src / "day2").mkdir(parents=True)
    notes1 = [(67, 0.3, 0.9), (69, 0.9, 1.5), (71, 1.6, 2.2), (71, 2.27, 3.0), (74, 3.0, 4.4)]
    notes2 = [(60, 0.2, 1.0), (64, 1.1, 2.0), (67, 2.0, 3.2), (72, 3.3, 4.6)]
    sf.write(src / "take1.wav", melody(notes1, SR, release_s=0.03, vibrato_cents=20), SR)
    sf.write(src / "day2" / "take2.flac", melody(notes2, 22050, vibrato_cents=20), 22050)  # resampled
    sf.write(src / "noise.wav", (0.2 * np.random.default_rng(1).standard_normal(5 * SR)).astype(np.float32), SR)
    out = tmp_path / "cache"
    cfg = CacheConfig(source="audio", source_dir=str(src), out_dir=str(out), instrument="violin", sample_rate=SR,
                      f0_sample_rate=SR, resample=True, n_workers=1, progress=False)
    summary = cache_features(cfg)
    assert summary["n_ok"] == 2 and "transcription" in summary["skipped"]["noise"], summary
    for entry, ref in zip(sorted(load_manifest(out), key=lambda e: e["id"]), (notes2, notes1)):
        mid = pretty_midi.PrettyMIDI(str(out / entry["transcription"]))
        written = mid.instruments[0].notes
        assert mid.instruments[0].program == 40  # the violin's GM program
        feats = load_features(out, entry)
        # the cached notes are the written transcription, and they are the notes played
        np.testing.assert_array_equal(feats["note_pitch"], [n.pitch for n in written])
        np.testing.assert_allclose(feats["note_onset_s"], [n.start for n in written], atol=1e-3)
        assert greedy_onset_f1(ref, _Seq(feats)) == 1.0
        assert entry["group"] in ("take1", "day2/take2") and entry["id"] in ("take1", "day2__take2")
        assert feats["frame_pitch"].max() == max(p for p, _, _ in ref)
    with pytest.raises(ValueError, match="instrument"):
        cache_features(CacheConfig(source="audio", source_dir=str(src), out_dir=str(tmp_path / "c2"),
                                   progress=False))


class _Seq:
    """The cached note arrays in the shape greedy_onset_f1 reads."""

    def __init__(self, feats):
        self.onsets_s, self.pitches = feats["note_onset_s"], feats["note_pitch"]

    def __len__(self):
        return len(self.pitches)


_MODEL_FREE = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from transcription_signals import melody
from midi_ddsp.data.loaders import audio_pieces
from midi_ddsp.data.cache import transcribed
from midi_ddsp.recording import transcribe_recording
tr, _, _ = transcribe_recording(melody([(69, 0.2, 0.8), (71, 0.8, 1.4)], 16000), 16000, 'flute')
assert len(tr.sequence) == 2
print(json.dumps(sorted(k for k in sys.modules if k.startswith('midi_ddsp'))))
"""


def test_transcription_and_the_data_layer_load_no_neural_network():
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", _MODEL_FREE, here], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    nets = {"midi_ddsp.pipeline", "midi_ddsp.synthesis.generator", "midi_ddsp.synthesis.analysis",
            "midi_ddsp.performance.model", "midi_ddsp.model_folder"}
    assert not loaded & nets, loaded & nets
