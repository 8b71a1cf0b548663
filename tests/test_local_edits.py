"""Note-by-note editing stays local: editing one note of an exported performance CSV (its vibrato, volume,
pitch or timing) and re-rendering with the same seed changes the audio only within 3 s before the note's
onset and 4 s after its offset (README "Limits and levels"); elsewhere the two renders agree within 1e-4.

The renders are compared sample by sample; each test also checks that the edit did change the audio near
the note (so the comparison can fail). The f0 segmentation and phase anchoring that make this hold are in
:mod:`midi_ddsp.generation`; these tests check the behaviour end to end, through the CSV file.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from midi_ddsp.generation import anchor_phase, bounded_hold, derive_seed, f0_segments
from midi_ddsp.note_level import Note, NoteSequence, Performance, to_csv

from pipeline_helpers import checkpoint_dir, model, trained_model  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

BEFORE_S, AFTER_S, TOL = 3.0, 4.0, 1e-4


def _voice(pitches, durations, start, instrument, name, gap_every=0, gap=0.0):
    notes, t = [], start
    for k, (p, d) in enumerate(zip(pitches, durations)):
        notes.append(Note(p, t, t + d))
        t += d + (gap if gap_every and (k + 1) % gap_every == 0 else 0.0)
    rng = np.random.default_rng(len(notes))
    return Performance(NoteSequence(tuple(notes), instrument, name), rng.uniform(0.2, 0.8, (len(notes), 6)))


def piece() -> list[Performance]:
    """~16 s: a legato violin line (quarter and eighth notes, a rest after every 8th note, one 2.5 s note)
    over a cello line of long notes."""
    rng = np.random.default_rng(0)
    durs = list(rng.choice([0.25, 0.5, 0.5, 0.75], 28)) + [2.5]
    violin = _voice(list(rng.integers(64, 80, len(durs))), durs, 0.3, "violin", "melody", gap_every=8, gap=0.6)
    cello = _voice([48, 43, 45, 41, 43, 48, 40], [2.0, 2.5, 1.5, 3.0, 2.0, 2.0, 2.5], 0.0, "cello", "bass")
    return [violin, cello]


def edit_csv(text: str, voice: int, note: int, **changes) -> str:
    """The CSV text with the given columns of one note (the ``note``-th row of ``voice``) replaced."""
    rows = list(csv.DictReader(io.StringIO(text)))
    mine = [r for r in rows if int(r["voice"]) == voice]
    for k, v in changes.items():  # "+N" adds N to the value there
        mine[note][k] = str(int(mine[note][k]) + int(v[1:])) if str(v).startswith("+") else str(v)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def assert_local(m, tmp_path, perfs, voice, note, seed=0, **changes):
    """Render the exported CSV and the edited one; compare outside the allowed neighbourhood."""
    base = tmp_path / "base.csv"
    base.write_text(to_csv(perfs))
    edited = tmp_path / "edited.csv"
    edited.write_text(edit_csv(base.read_text(), voice, note, **changes))
    a = m.render(base, seed=seed, progress=False)
    b = m.render(edited, seed=seed, progress=False)
    n_old = perfs[voice].sequence[note]
    onset = min(n_old.onset_s, float(changes.get("onset_s", n_old.onset_s)))
    offset = max(n_old.offset_s, float(changes.get("offset_s", n_old.offset_s)))
    sr = a.sample_rate
    n = min(a.mix.shape[0], b.mix.shape[0])
    lo, hi = int((onset - BEFORE_S) * sr), int((offset + AFTER_S) * sr)
    # the render length may change with the edit (the tail is trimmed to what is audible)
    outside = np.ones(n, bool)
    outside[max(lo, 0):max(min(hi, n), 0)] = False
    diff = np.abs(a.mix[:n] - b.mix[:n]) / a.gain  # raw level: the anti-clipping gain is global
    assert a.gain == 1.0 and b.gain == 1.0  # keep the pieces below clipping: a global gain would hide nothing
    assert diff[outside].max(initial=0.0) < TOL, (
        f"differs by {diff[outside].max():.2e} at {np.flatnonzero(outside & (diff >= TOL))[[0, -1]] / sr} s "
        f"(note {onset:.2f}-{offset:.2f} s)")
    near = diff[int(onset * sr):int((offset + 0.3) * sr)]
    assert near.max() > 10 * TOL  # the edit is audible near the note
    return diff


@pytest.mark.parametrize("change", [dict(vibrato=0.95), dict(volume=0.05), dict(pitch="+5"),
                                    dict(brightness=0.9, attack=0.9)])
def test_editing_one_note_in_the_csv_changes_the_audio_only_near_it(model, tmp_path, change):
    perfs = piece()
    assert_local(model, tmp_path, perfs, 0, 12, **change)


def test_editing_a_long_note_and_a_bass_note(model, tmp_path):
    perfs = piece()
    assert_local(model, tmp_path, perfs, 0, 28, vibrato=0.9, pitch="+3")  # the final 2.5 s note
    assert_local(model, tmp_path, perfs, 1, 3, volume=0.9)


def test_moving_one_note_changes_the_audio_only_near_it(model, tmp_path):
    perfs = piece()
    note = perfs[0].sequence[5]
    assert_local(model, tmp_path, perfs, 0, 5, onset_s=note.onset_s + 0.1, offset_s=note.offset_s - 0.05)


def test_same_seed_same_audio_is_kept_and_voices_do_not_interact(model):
    perfs = piece()
    a = model.render(perfs, seed=11, progress=False)
    assert np.array_equal(a.mix, model.render(perfs, seed=11, progress=False).mix)
    alone = model.render([perfs[0]], seed=11, progress=False)  # the violin without the cello
    n = min(alone.mix.shape[0], a.stems.shape[1])
    np.testing.assert_allclose(alone.mix[:n] / alone.gain, a.stems[0, :n] / a.gain, atol=1e-6)


def test_a_voice_rendered_alone_with_its_key_sounds_as_in_the_whole_render(trained_model):
    """What the studio's regional re-render relies on: ``voice_keys`` gives a voice rendered alone the random
    draws it has among the others (with trained weights: f0 bins of a near-uniform random model can flip
    under the batch's float rounding)."""
    model = trained_model
    perfs = piece()
    a = model.render(perfs, seed=11, progress=False)
    # the cello alone, keyed as voice 1 (what the studio does), sounds as it does in the whole render;
    # keyed as voice 0 it is another take
    cello = model.render([perfs[1]], seed=11, progress=False, voice_keys=[1], keep_params="curves")
    n = min(cello.mix.shape[0], a.stems.shape[1])
    np.testing.assert_allclose(cello.mix[:n] / cello.gain, a.stems[1, :n] / a.gain, atol=1e-4)
    other = model.render([perfs[1]], seed=11, progress=False)
    assert np.abs(other.mix[:n] / other.gain - a.stems[1, :n] / a.gain).max() > 1e-3
    # "curves": f0 and amplitude as in the full parameters, no harmonic or noise channels
    p = cello.params[0]
    assert p.harmonic_distribution.shape[-1] == 0 and p.noise_magnitudes.shape[-1] == 0
    full = model.render([perfs[1]], seed=11, progress=False, voice_keys=[1]).params[0]
    torch.testing.assert_close(p.f0_hz, full.f0_hz)
    torch.testing.assert_close(p.amplitude, full.amplitude)


@pytest.mark.parametrize("voice,note,change", [(0, 5, dict(vibrato=0.95)), (1, 10, dict(volume=0.1)),
                                                (3, 20, dict(pitch="+2"))])
def test_local_edits_with_the_shipped_model(trained_model, tmp_path, voice, note, change):
    """The example chorale's first 14 s (four wind voices), performed by the shipped expression model."""
    from pathlib import Path

    perfs = trained_model.perform(trained_model.read(Path(__file__).parents[1] / "examples" / "bach_chorale.mid")
                                  .voices, seed=0)
    cut = [Performance(NoteSequence(tuple(n for n in p.sequence if n.offset_s <= 14.0), p.instrument, p.name),
                       p.controls[[i for i, n in enumerate(p.sequence) if n.offset_s <= 14.0]]) for p in perfs]
    assert_local(trained_model, tmp_path, cut, voice, note, **change)


# ------------------------------------------------------------------------- the pieces that make it local
def test_f0_segments_are_local_and_at_least_min_len_apart():
    rng = np.random.default_rng(3)
    on = np.cumsum(rng.choice([20, 60, 125, 400], 60))
    end = on + rng.choice([15, 50, 100], 60)
    end = np.minimum(end, np.append(on[1:], 10 ** 9))
    F = int(end[-1]) + 500
    seg = f0_segments(on, end, F, 100, 150, 250)
    assert seg[0] == 0 and np.all(np.diff(seg) >= 150) and np.all(np.diff(seg) <= 250 + 2 * 150)
    # moving one note moves segment starts only near it
    on2 = on.copy()
    on2[30] += 7
    seg2 = f0_segments(on2, end, F, 100, 150, 250)
    far = lambda s: s[(s < on[30] - 600) | (s > end[30] + 600)]  # noqa: E731
    assert np.array_equal(far(seg), far(seg2))


def test_phase_anchor_makes_whole_cycles_with_a_small_smooth_glide():
    hop, sr = 64, 16000.0
    f0 = 220.0 + 5 * np.sin(np.linspace(0, 9, 251))
    out = anchor_phase(f0, 200, np.zeros(250), hop, sr)
    g = np.append(out, f0[-1])
    cycles = np.sum(g[:-1] * (hop + 1) / 2 + g[1:] * (hop - 1) / 2) / sr
    assert abs(cycles - round(cycles)) < 1e-9
    assert out[0] == f0[0] and np.max(np.abs(out - f0[:-1])) < 0.5 * np.pi / 2 / (200 / 250)  # Hz
    # the oscillator's own phase agrees: the sample at the anchor sits at a whole number of cycles
    from midi_ddsp.synthesis.ddsp.functional import harmonic_oscillator

    amps = torch.zeros(1, 251, 1)
    amps[..., 0] = 1.0
    _, phase = harmonic_oscillator(torch.from_numpy(g)[None, :, None].float().double(), amps.double(), 251 * hop,
                                   sr, initial_phase=torch.zeros(1, dtype=torch.float64), stop=250 * hop,
                                   return_phase=True)
    assert min(float(phase[0]), 1 - float(phase[0])) < 1e-6


def test_rests_hold_the_previous_pitch_for_a_release_then_the_next():
    in_note = np.array([1, 1, 0, 0, 0, 0, 0, 1, 1], np.float32)
    held = np.array([60, 60, 60, 60, 60, 60, 60, 67, 67], np.float32)
    np.testing.assert_array_equal(bounded_hold(held, in_note, 2), [60, 60, 60, 60, 67, 67, 67, 67, 67])


def test_any_integer_seed_is_hashed():
    assert derive_seed(99999999999999999999999) != derive_seed(99999999999999999999998)
    assert derive_seed(-5) != derive_seed(5) and 0 <= derive_seed(-(10 ** 40)) < 2 ** 63
    assert derive_seed(3, 1) == derive_seed(3, 1)


def _chorale_start(m, end_s=14.0):
    from pathlib import Path

    voices = m.read(Path(__file__).parents[1] / "examples" / "bach_chorale.mid").voices
    return [NoteSequence(tuple(n for n in v if n.offset_s <= end_s), v.instrument, v.name) for v in voices]


def _edited_chorale(m, voice: int, note: int, edit: str):
    """The chorale's start and a copy with one note's pitch raised, onset moved or velocity changed:
    (voices, edited voices, the old note, the new note)."""
    voices = _chorale_start(m)
    old = voices[voice].notes[note]
    new = {"pitch": Note(old.pitch + 2, old.onset_s, old.offset_s, old.velocity),
           "move": Note(old.pitch, old.onset_s + 0.08, old.offset_s, old.velocity),
           "velocity": Note(old.pitch, old.onset_s, old.offset_s, 30)}[edit]
    edited = list(voices)
    edited[voice] = NoteSequence(tuple(new if i == note else n for i, n in enumerate(voices[voice].notes)),
                                 voices[voice].instrument, voices[voice].name)
    return voices, edited, old, new


def _assert_equal_outside(a, b, lo_s: float, hi_s: float, old: Note) -> None:
    """Two renders agree within TOL outside [lo_s, hi_s) and differ near the edited note ``old``."""
    assert a.gain == 1.0 and b.gain == 1.0
    sr = a.sample_rate
    n = min(a.mix.shape[0], b.mix.shape[0])
    outside = np.ones(n, bool)
    outside[max(int(lo_s * sr), 0):max(min(int(hi_s * sr), n), 0)] = False
    diff = np.abs(a.mix[:n] - b.mix[:n])
    assert outside.any() and diff[outside].max(initial=0.0) < TOL, f"{diff[outside].max():.2e}"
    assert diff[int(old.onset_s * sr):int((old.offset_s + 0.3) * sr)].max() > 10 * TOL


@pytest.mark.parametrize("voice,note,edit", [(0, 8, "pitch"), (2, 12, "move"), (1, 6, "velocity")])
def test_editing_a_midi_note_re_performs_and_re_renders_only_near_it(trained_model, voice, note, edit):
    """From notes (as from an edited MIDI file): the expression prior re-performs only the notes whose
    neighbourhood holds the edited note (those starting within 2 s of it), and the audio changes only from
    3 s before the first of them to 4 s after the last (README "Limits and levels")."""
    m = trained_model
    voices, edited, old, new = _edited_chorale(m, voice, note, edit)
    pa, pb = m.perform(voices, seed=0), m.perform(edited, seed=0)
    for v in range(len(voices)):
        if v != voice:
            np.testing.assert_array_equal(pa[v].controls, pb[v].controls)
    moved = np.abs(pa[voice].controls - pb[voice].controls).max(1) > 1e-6
    moved[note] = True
    onsets = voices[voice].onsets_s
    nb = m.performance_model.neighbourhood
    assert np.all(np.abs(onsets[moved] - old.onset_s) <= max(nb.lookback_s, nb.lookahead_s) + 0.1)
    assert moved.sum() > 1  # neighbours were re-performed (so the audio check below can fail)
    a = m.render(pa, seed=0, progress=False)
    b = m.render(pb, seed=0, progress=False)
    _assert_equal_outside(a, b, min(onsets[moved].min(), new.onset_s) - BEFORE_S,
                          max(voices[voice].offsets_s[moved].max(), new.offset_s) + AFTER_S, old)


@pytest.mark.parametrize("voice,note,edit", [(0, 8, "pitch"), (2, 12, "move"), (1, 6, "velocity")])
def test_an_edited_midi_note_with_the_earlier_performance_kept_changes_the_audio_only_near_it(
        trained_model, voice, note, edit):
    """With ``keep`` (``render --keep-performance``) the notes found in the first render's performance keep
    their controls: only the edited note is performed anew, and the audio differs only within 3 s before its
    onset and 4 s after its offset (the same bound as an edit in the CSV)."""
    m = trained_model
    voices, edited, old, new = _edited_chorale(m, voice, note, edit)
    a = m.render(voices, seed=0, progress=False)
    b = m.render(edited, seed=0, progress=False, keep=a.performances)
    for v in range(len(voices)):  # every other note kept its controls; the edited one was performed anew
        same = np.all(a.performances[v].controls == b.performances[v].controls, axis=1)
        assert same.all() if v != voice else (not same[note] and np.delete(same, note).all())
    _assert_equal_outside(a, b, min(old.onset_s, new.onset_s) - BEFORE_S,
                          max(old.offset_s, new.offset_s) + AFTER_S, old)
    # without ``keep`` the neighbours are re-performed (so this test's bound is the option's doing)
    c = m.render(edited, seed=0, progress=False)
    assert sum(int(np.any(a.performances[voice].controls[i] != c.performances[voice].controls[i]))
               for i in range(len(voices[voice]))) > 1


def test_keep_controls_matches_notes_by_instrument_pitch_velocity_and_time():
    from midi_ddsp.note_level import keep_controls

    seq = NoteSequence((Note(60, 0.0, 0.5, 90), Note(62, 0.5, 1.0, 90), Note(64, 1.0, 1.5, 90)), "flute", "a")
    prev = Performance(seq, np.full((3, 6), 0.25))
    moved = NoteSequence((Note(60, 0.0, 0.5, 90), Note(62, 0.5004, 1.0, 90), Note(64, 1.0, 1.5, 70)), "flute")
    fresh = Performance(moved, np.full((3, 6), 0.75))
    out, kept = keep_controls([fresh], [prev])
    assert kept == 2 and np.array_equal(out[0].controls[:, 0], [0.25, 0.25, 0.75])  # velocity edit: performed
    out, kept = keep_controls([Performance(NoteSequence(moved.notes, "oboe"), np.full((3, 6), 0.75))], [prev])
    assert kept == 0  # another instrument's notes are not this one's
    # a voice index that changed: found in another voice of the earlier performance
    other = Performance(NoteSequence((Note(40, 0.0, 2.0, 90),), "flute"), np.full((1, 6), 0.5))
    out, kept = keep_controls([fresh], [other, prev])
    assert kept == 2 and out[0].controls[0, 0] == 0.25


# ------------------------------------------------------------------------------ vibrato as asked
def test_a_sampled_vibrato_is_scaled_to_the_asked_depth_within_each_segment(model):
    """``GeneratorRun._obey_vibrato``: a note part's 5.5 Hz vibrato of 0.1 semitones, asked for 0.2, comes
    out at 0.2 as ``vibrato_depth`` measures it; asked for 0.5 it stops at the cap (3x); a note sampled
    without vibrato gets one of the asked depth (not capped), one asked for none keeps its curve, and the
    frames outside the notes are left as sampled."""
    from midi_ddsp.generation import MAX_VIBRATO_SCALE, GeneratorRun
    from midi_ddsp.note_level.expression import vibrato_depth

    seq = NoteSequence((Note(60, 0.2, 1.4), Note(62, 1.6, 2.8)), "violin")
    perf = Performance(seq, np.full((2, 6), 0.5))
    fr = model.frame_rate
    for asked, want in ((0.2, 0.2), (0.5, 0.1 * MAX_VIBRATO_SCALE)):
        run = GeneratorRun(model.generator, model.sample_rate, fr, [perf], int(3.2 * fr), 1.0, 0.95, 0,
                           vibrato_st=[np.array([asked, asked])])
        t = np.arange(int(3.2 * fr)) / fr
        dev = 0.05 + 0.1 * np.sin(2 * np.pi * 5.5 * t) * ((t >= 0.2) & (t < 1.4))  # vibrato on note 0 only
        out = run._obey_vibrato(0, 0, t.size, dev.copy())
        a, b, c, d = int(0.2 * fr), int(1.4 * fr), int(1.6 * fr), int(2.8 * fr)
        assert vibrato_depth(out, [a], [b], fr)[0] == pytest.approx(want, rel=0.02)
        assert vibrato_depth(dev, [c], [d], fr)[0] == 0  # note 1 was sampled without vibrato ...
        assert vibrato_depth(out, [c], [d], fr)[0] == pytest.approx(asked, rel=0.05)  # ... and got the asked one
        np.testing.assert_allclose(out[:a], dev[:a])  # outside the notes: as sampled
        np.testing.assert_allclose(out[b:c], dev[b:c])
    run = GeneratorRun(model.generator, model.sample_rate, fr, [perf], int(3.2 * fr), 1.0, 0.95, 0,
                       vibrato_st=[np.array([0.2, 0.0])])
    flat = np.full(int(3.2 * fr), 0.05)
    out = run._obey_vibrato(0, 0, flat.size, flat.copy())
    np.testing.assert_allclose(out[c:], flat[c:])  # note 1, asked for no vibrato: its curve as sampled
    assert vibrato_depth(out, [a], [b], fr)[0] == pytest.approx(0.2, rel=0.05)


def test_the_shipped_model_gives_each_note_the_vibrato_it_is_asked(trained_model):
    """Controls drawn at random per note on a flute melody: the vibrato read from the render's own f0
    follows the asked depth (r 0.99; the sampler alone, without the scaling, 0.92)."""
    m = trained_model
    rng = np.random.default_rng(1)
    pitches = 78 + np.cumsum(rng.choice([-5, -3, -2, 2, 3, 4, 5, 7], 24)) % 12 - 6
    notes, t = [], 0.4
    for p in pitches:
        d = float(rng.uniform(0.5, 0.9))
        notes.append(Note(int(p), t, t + d, 90))
        t += d + float(rng.uniform(0.08, 0.2))
    seq = NoteSequence(tuple(notes), "flute")
    controls = rng.uniform(0.1, 0.9, (24, 6))
    res = m.render(Performance(seq, controls), seed=0, reverb=False, progress=False)
    got = m.extract_performance(res.mix, res.sample_rate, seq, params=res.params[0]).controls[:, 3]
    assert np.corrcoef(controls[:, 3], got)[0, 1] >= 0.95
