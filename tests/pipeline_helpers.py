"""Shared fixtures of test_pipeline.py and test_cli.py: a random-init model folder and small MIDI files."""
from __future__ import annotations

import pretty_midi
import pytest

from midi_ddsp.model_folder import DEFAULT_CHECKPOINTS, GENERATOR_FILE
from midi_ddsp.pipeline import MidiDDSP
from midi_ddsp.random_models import write_random_checkpoints


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """Untrained models with small widths in the shipped folder layout (all four files)."""
    return write_random_checkpoints(tmp_path_factory.mktemp("checkpoints"), width=16, f0_hidden=16,
                                    reverb_length=8000, seed=0)


@pytest.fixture(scope="session")
def model(checkpoint_dir):
    return MidiDDSP.from_pretrained(checkpoint_dir)


@pytest.fixture(scope="session")
def trained_model():
    """The shipped checkpoints, or a skip: random weights do not follow the expression controls."""
    if not (DEFAULT_CHECKPOINTS / GENERATOR_FILE).is_file():
        pytest.skip(f"no trained weights in {DEFAULT_CHECKPOINTS} (random weights do not obey the controls)")
    return MidiDDSP.from_pretrained()


def write_midi(path, tracks, tempo: float = 120.0):
    """tracks: list of (program, is_drum, [(pitch, start_s, end_s), ...])."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for program, is_drum, notes in tracks:
        inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
        inst.notes = [pretty_midi.Note(100, p, s, e) for p, s, e in notes]
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


MELODY = [(72, 0.0, 0.4), (74, 0.5, 0.9), (76, 1.0, 1.4), (77, 1.5, 2.4)]
BASS = [(48, 0.0, 1.0), (43, 1.0, 2.0)]


def two_track_midi(path):
    """Violin melody (program 40) over a cello line (program 42); last offset 2.4 s."""
    return write_midi(path, [(40, False, MELODY), (42, False, BASS)])
