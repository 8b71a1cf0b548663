"""The prior performs every note from its neighbourhood: edits of one note's pitch, timing or velocity change
the controls of the notes within the neighbourhood's reach only; random draws keyed to notes."""
from __future__ import annotations

import numpy as np
import pytest

from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.notes import Note, NoteSequence
from midi_ddsp.performance.dataset import PieceNotes
from midi_ddsp.performance.neighbourhood import Neighbourhood, note_uniforms
from midi_ddsp.performance.sampling import (
    load_model, perform_notes, predict_performance, predict_performances, save_model, teacher_forced_notes)

from test_performance_model import model  # noqa: F401  (the small random prior, sharpened)

pytestmark = pytest.mark.usefixtures("one_thread")


def melody(n=60, seed=0) -> list[Note]:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.2
    for _ in range(n):
        d = float(rng.choice([0.2, 0.4, 0.6, 1.2]))
        notes.append(Note(int(rng.integers(55, 80)), t, t + 0.9 * d, int(rng.integers(30, 120))))
        t += d + (0.5 if rng.random() < 0.1 else 0.0)
    return notes


def test_note_uniforms_are_uniform_keyed_and_independent_of_other_notes():
    onsets = np.sort(np.random.default_rng(0).uniform(0, 600, 10000))
    u = note_uniforms(7, onsets)
    assert u.shape == (10000, 6) and u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
    # the empirical CDF of the 60000 values is within 0.01 of the uniform one (KS bound ~0.007 at 1 %)
    v = np.sort(u.ravel())
    assert np.abs(v - (np.arange(len(v)) + 0.5) / len(v)).max() < 0.01
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.03 and abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
    np.testing.assert_array_equal(note_uniforms(7, onsets[500:600]), u[500:600])   # a note's own numbers
    assert not np.array_equal(note_uniforms(8, onsets[:100]), u[:100])
    np.testing.assert_array_equal(note_uniforms(10 ** 30, onsets[:5]), note_uniforms(10 ** 30, onsets[:5]))


@pytest.mark.parametrize("edit", ["pitch", "velocity", "move", "remove"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_editing_one_note_changes_only_its_neighbourhood(model, edit, temperature):
    notes = melody()
    k = 30
    old = notes[k]
    new_notes = list(notes)
    if edit == "pitch":
        new_notes[k] = Note(old.pitch + 4, old.onset_s, old.offset_s, old.velocity)
    elif edit == "velocity":
        new_notes[k] = Note(old.pitch, old.onset_s, old.offset_s, 127 - old.velocity)
    elif edit == "move":
        new_notes[k] = Note(old.pitch, old.onset_s + 0.05, old.offset_s, old.velocity)
    else:
        del new_notes[k]
    a = predict_performance(model, NoteSequence(notes, "violin"), temperature, seed=3)
    b = predict_performance(model, NoteSequence(new_notes, "violin"), temperature, seed=3)
    nb = Neighbourhood()
    keep = [i for i in range(len(notes)) if i != k]          # notes present in both, by identity
    ca = a.controls[keep]
    cb = b.controls[[i - 1 if edit == "remove" and i > k else i for i in keep]]
    onset = np.array([notes[i].onset_s for i in keep])
    near = (onset >= old.onset_s - nb.lookahead_s - 0.06) & (onset <= old.onset_s + nb.lookback_s + 0.06)
    np.testing.assert_allclose(ca[~near], cb[~near], atol=1e-6)   # farther than the reach: unchanged
    assert np.abs(ca[near] - cb[near]).max() > 1e-5              # the edit does reach its neighbours
    assert near.sum() < len(keep) / 3


def test_a_voice_is_performed_the_same_alone_or_with_others_and_long_voices_in_chunks(model):
    seq = NoteSequence(melody(80, 1), "flute")
    other = NoteSequence(melody(40, 2), "cello")
    both = predict_performances(model, [other, seq], 1.0, seed=4)
    np.testing.assert_allclose(both[1].controls, predict_performance(model, seq, 1.0, seed=5).controls, atol=1e-5)
    notes = PieceNotes(seq.pitches, seq.onsets_s, seq.offsets_s, seq.velocities, by_name("flute").id)
    whole = perform_notes(model, [notes], 1.0, [5])[0]
    np.testing.assert_allclose(perform_notes(model, [notes], 1.0, [5], chunk=7)[0], whole, atol=1e-5)
    np.testing.assert_allclose(whole, both[1].controls, atol=1e-5)


def test_teacher_forced_log_probs_match_the_sampler(model, tmp_path):
    """The sampler draws the median at temperature 0; the teacher-forced probabilities it reports for those
    values are the ones the decoder gave (so NLL evaluation sees what rendering does)."""
    seq = NoteSequence(melody(30, 3), "oboe")
    notes = PieceNotes(seq.pitches, seq.onsets_s, seq.offsets_s, seq.velocities, 6)
    c0 = perform_notes(model, [notes], 0.0)[0]
    notes.controls = c0.astype(np.float32)
    logp = teacher_forced_notes(model, [notes])[0]
    assert logp.shape == (30, 6) and np.all(logp <= 0)
    # a median lies in a bin holding at least a little probability; random values fare worse on average
    notes_r = PieceNotes(notes.pitch, notes.onset_s, notes.offset_s, notes.velocity, 6,
                         np.random.default_rng(0).random((30, 6)).astype(np.float32))
    assert logp.mean() > teacher_forced_notes(model, [notes_r])[0].mean()
    # the neighbourhood travels with the weights
    path = save_model(model, tmp_path / "p.safetensors", neighbourhood=Neighbourhood(1.0, 3.0, 8, 4))
    assert load_model(path).neighbourhood == Neighbourhood(1.0, 3.0, 8, 4)
