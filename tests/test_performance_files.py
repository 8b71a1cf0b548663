"""CSV / JSON performance files: exact round trips and one-line errors for bad files."""
import json
import os

import numpy as np
import pytest

from midi_ddsp.errors import MidiDDSPError, OutputWriteError, PerformanceFileError
from midi_ddsp.io.performance_files import load_performances, save_performances
from midi_ddsp.note_level import (
    Note,
    NoteSequence,
    Performance,
    from_csv,
    from_json,
    to_csv,
    to_json,
)


def awkward_performances():
    """Values that expose any lossy float formatting: thirds, tiny/huge magnitudes, negatives, 0.1 sums."""
    rng = np.random.default_rng(0)
    v1 = NoteSequence([Note(60, 0.1 + 0.2, 1 / 3, 64), Note(72, 1 / 3, 2 ** 0.5, 1), Note(61, 2.0, 7.123456789012345)],
                      "violin", 'Violin I, "solo"')
    v2 = NoteSequence([Note(36, 0.0, 1e-3, 127), Note(40, 0.5, 100.0)], "double bass", "")
    c1 = rng.standard_normal((3, 6)) * np.array([1, 1e-12, 1e12, 1, 1, 1])
    c1[0, 0] = np.nextafter(0.5, 1.0)
    c2 = np.array([[0.0, -0.0, 1.0, 5e-324, 0.1 + 0.2, 1 / 7], [1.7976931348623157e308, 0, 0, 0, 0, 0]])
    return [Performance(v1, c1), Performance(v2, c2)]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_round_trip_is_exact(tmp_path, suffix):
    perfs = awkward_performances()
    path = save_performances(perfs, tmp_path / f"p{suffix}")
    back = load_performances(path)
    assert back == perfs  # Note floats and control arrays bit-identical
    for a, b in zip(back, perfs):
        assert a.controls.tobytes() == b.controls.tobytes()
        assert a.name == b.name and a.instrument == b.instrument
    # and a second round trip gives the same text
    assert path.read_text() == (to_csv(back) if suffix == ".csv" else to_json(back))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_single_performance_and_spreadsheet_variants():
    perf = awkward_performances()[0]
    assert from_json(to_json(perf)) == [perf]
    text = to_csv(perf)
    # column order shuffled, optional columns dropped, Excel BOM, semicolons, rows out of order
    rows = _csv_rows(text)
    cols = ["attack", "pitch", "onset", "offset", "instrument", "volume", "vol_fluc", "vol_peak_pos", "vibrato",
            "brightness"]
    key = {"onset": "onset_s", "offset": "offset_s"}
    out = "\ufeff" + ";".join(cols) + "\n" + "\n".join(";".join(r[key.get(c, c)] for c in cols) for r in rows[::-1])
    back = from_csv(out)[0]
    assert [n.pitch for n in back.notes] == [n.pitch for n in perf.notes]
    np.testing.assert_array_equal(back.controls, perf.controls)
    assert [n.velocity for n in back.notes] == [100] * 3  # default when the column is absent


def _csv_rows(text):
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def good_csv():
    return to_csv(Performance(NoteSequence([Note(60, 0, 0.5), Note(62, 0.5, 1.0)], "flute"), np.full((2, 6), 0.5)))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace(",vibrato", ""), "missing column vibrato"),
        (lambda t: t.replace("flute,60,", "flute,sixty,"), "line 2: column pitch: 'sixty' is not a number"),
        (lambda t: t.replace("flute,62,0.5,1.0", "flute,62,0.5,0.25"), "line 3: negative duration"),
        (lambda t: t.replace("flute,62,0.5,1.0", "flute,62,0.5,0.5"), "line 3: note offset"),
        (lambda t: t.replace("flute,60,", "flute,60.5,"), "line 2: column pitch: '60.5' is not a whole number"),
        (lambda t: t.replace("flute,60,", "flute,200,"), "line 2: note pitch 200 is outside"),
        (lambda t: t.replace("flute,60,0.0,0.5", "flute,60,0.0,0.7"), "overlaps"),
        (lambda t: t.replace("0,,flute,62", "0,,kazoo,62"), "kazoo"),
        (lambda t: t.replace("0.5\n0,,flute,62", "nan\n0,,flute,62"), "'nan' is not a finite number"),
        (lambda t: t.split("\n")[0] + "\n", "no notes"),
        (lambda t: "", "empty file"),
    ],
)
def test_bad_csv_gives_one_clear_line(tmp_path, edit, message):
    path = tmp_path / "bad.csv"
    path.write_text(edit(good_csv()))
    with pytest.raises(PerformanceFileError) as info:
        load_performances(path)
    text = str(info.value)
    assert message in text and "\n" not in text and str(path) in text
    assert isinstance(info.value, MidiDDSPError)


@pytest.mark.parametrize(
    "doc, message",
    [
        ("{not json", "not valid JSON (line 1"),
        ('{"voices": []}', "no voices"),
        ('{"voices": [{"instrument": "flute", "notes": [{"pitch": 60, "onset_s": 0, "offset_s": 1}]}]}',
         "notes[0]: missing 'volume'"),
        ('{"voices": [{"notes": []}]}', 'missing "instrument"'),
        ('{"voices": [{"instrument": "flute", "notes": [{"pitch": true}]}]}', "pitch = True is not a finite number"),
    ],
)
def test_bad_json_gives_one_clear_line(tmp_path, doc, message):
    path = tmp_path / "bad.json"
    path.write_text(doc)
    with pytest.raises(PerformanceFileError) as info:
        load_performances(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_negative_duration_in_json(tmp_path):
    doc = json.loads(to_json(Performance(NoteSequence([Note(60, 1.0, 2.0)], "oboe"), np.zeros((1, 6)))))
    doc["voices"][0]["notes"][0]["offset_s"] = 0.5
    with pytest.raises(PerformanceFileError, match=r"voices\[0\].notes\[0\]: negative duration"):
        from_json(json.dumps(doc))


def test_file_problems(tmp_path):
    with pytest.raises(PerformanceFileError, match="no such file"):
        load_performances(tmp_path / "missing.csv")
    with pytest.raises(PerformanceFileError, match=r"\.csv or \.json"):
        load_performances(tmp_path / "perf.txt")
    with pytest.raises(OutputWriteError, match="cannot write"):
        save_performances(awkward_performances(), tmp_path / "no_such_dir" / "p.csv")
