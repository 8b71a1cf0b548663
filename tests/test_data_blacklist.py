"""Evaluation works never reach a training corpus: string quartets, Haydn, Mozart, Beethoven, Corelli,
Schubert, Weber, Verdi (checked on paths and on composer/title metadata)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from midi_ddsp.data.corpus import CorpusConfig, plan_corpus
from midi_ddsp.data.corpus_sources import (
    BlacklistedSourceError, Melody, gather_melodies, is_blacklisted, parse_music21_file, select_music21_files,
)

music21 = pytest.importorskip("music21")

RESERVED = ("haydn", "mozart", "beethoven", "corelli", "schubert", "weber", "verdi")


@pytest.mark.parametrize("text", [
    "beethoven/opus18no1", "mozart/k80", "haydn/opus74no1", "corelli/opus3no1", "schubert/lindenbaum",
    "weber/freischutz", "verdi/laDonnaEMobile", "essenFolksong/folkHaydn.abc", "SomeCollection/String Quartet 3",
    "Ludwig van Beethoven", "W. A. Mozart", "Franz Joseph HAYDN", "Giuseppe Verdi", "Carl Maria von Weber",
    "Arcangelo Corelli", "Franz Schubert", "Quartet in D minor", "Streichquartett Nr. 3", "W.A.Mozart",
    "beethovenOp18", "MOZART_K458.mid",
])
def test_tokens_hit(text):
    assert is_blacklisted(text)


@pytest.mark.parametrize("text", ["bach/bwv66.6.mxl", "ryansMammoth/7thRegimentReel.abc", "palestrina/Agnus_01.krn",
                                  "Johann Sebastian Bach", "Claudio Monteverdi", "monteverdi/madrigal.3.1.mxl",
                                  "Trad. (Weaver's song)", None, ""])
def test_tokens_miss(text):
    assert is_blacklisted(text) is None


def test_selection_over_the_whole_music21_corpus_excludes_reserved_works():
    """Ask for every file of every collection: nothing reserved comes back, and the reserved files exist."""
    from music21 import corpus

    paths = [str(p) for p in corpus.getCorePaths()]
    colls = sorted({p.split(os.sep + "corpus" + os.sep)[1].split(os.sep)[0] for p in paths})
    chosen = select_music21_files({c: 10 ** 6 for c in colls}, seed=0)
    assert len(chosen) > 1000
    reserved_present = [p for p in paths if any(t in p.lower() for t in RESERVED + ("quartet",))]
    assert reserved_present, "music21 should ship some reserved works (sanity check of this test)"
    chosen_rel = {p.split(os.sep + "corpus" + os.sep)[1] for p in chosen}
    for rel in chosen_rel:
        coll, name = rel.split(os.sep)[0].lower(), os.path.basename(rel).lower()
        assert coll not in RESERVED, rel
        assert not any(t in name for t in RESERVED), rel
        assert "quartet" not in rel.lower(), rel
    for p in reserved_present:  # every reserved file of music21 is out ...
        rel = p.split(os.sep + "corpus" + os.sep)[1]
        if rel.split(os.sep)[0] != "monteverdi":
            assert rel not in chosen_rel, rel
    assert any(r.startswith("monteverdi") for r in chosen_rel)  # ... but Monteverdi is not Verdi


def test_parse_refuses_blacklisted_path():
    from music21 import corpus

    path = str(corpus.getWork("beethoven/opus18no1", movementNumber=1) or "")
    if not path:
        pytest.skip("beethoven/opus18no1 not in this music21")
    with pytest.raises(BlacklistedSourceError):
        parse_music21_file(path, corpus_root=None)


def test_metadata_blacklist_on_an_innocent_path(tmp_path):
    """A file whose path looks fine but whose composer is reserved is dropped after parsing."""
    abc = ("X:1\nT:Little Tune\nC:W. A. Mozart\nM:4/4\nL:1/8\nK:C\n"
           "CDEF GABc|cBAG FEDC|CDEF GABc|cBAG FEDC|]\n")
    ok = abc.replace("W. A. Mozart", "Trad.").replace("Little Tune", "Other Tune")
    (tmp_path / "tune_a.abc").write_text(abc)
    (tmp_path / "tune_b.abc").write_text(ok)
    mels, errors = gather_melodies([str(tmp_path / "tune_a.abc"), str(tmp_path / "tune_b.abc")], None, n_workers=1,
                                   progress=False)
    assert [m.title for m in mels] == ["Other Tune"]
    assert all(not is_blacklisted(m.composer, m.title, m.source) for m in mels)


def test_planner_refuses_a_reserved_melody():
    m = Melody(key="x#0", source="mozart/k458.xml", composer="Mozart", pitch=[60, 62, 64, 65] * 10,
               onset_ql=list(np.arange(40.0)), duration_ql=[1.0] * 40, beat_strength=[0.5] * 40,
               fermata=[False] * 40)
    with pytest.raises(BlacklistedSourceError):
        plan_corpus([m], CorpusConfig(instruments=["violin"], minutes_per_instrument=0.1), None)


def test_user_midi_with_reserved_name_is_refused(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=40)
    for i in range(10):
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=60 + i, start=i * 0.5, end=i * 0.5 + 0.4))
    pm.instruments.append(inst)
    bad = tmp_path / "Schubert_Ave_Maria.mid"
    pm.write(str(bad))
    good = tmp_path / "my_tune.mid"
    pm.write(str(good))
    mels, errors = gather_melodies([str(bad), str(good)], None, n_workers=1, progress=False)
    assert len(mels) == 1 and mels[0].source == str(good)
    assert "blacklisted" in errors[str(bad)]
