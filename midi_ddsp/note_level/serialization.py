"""CSV and JSON forms of performances, for editing in a spreadsheet or a text editor and re-rendering.

Both forms hold one or several voices and round-trip **exactly**: floats are written with Python's
shortest round-trip representation (``repr``), so reading a file back gives bit-identical notes and
controls.

CSV: one row per note, columns (header required, any column order)::

    voice,name,instrument,pitch,onset_s,offset_s,velocity,volume,vol_fluc,vol_peak_pos,vibrato,brightness,attack

``voice`` (integer, default 0), ``name`` (default "") and ``velocity`` (default 100) may be omitted; the
others are required (``onset`` / ``offset`` are accepted for ``onset_s`` / ``offset_s``). Times are
seconds, pitch a MIDI number. Rows may come in any order; a voice's notes must not overlap.
``;``- or tab-separated files (some spreadsheet locales) are read too.

JSON::

    {"format": "midi-ddsp-performance", "version": 1, "controls": [...six names...],
     "voices": [{"name": "...", "instrument": "violin",
                 "notes": [{"pitch": 60, "onset_s": 0.0, "offset_s": 0.5, "velocity": 100,
                            "volume": 0.5, ...}, ...]}, ...]}

Reading and writing the files is :mod:`midi_ddsp.io.performance_files` (this module only converts text).
Malformed files raise :class:`~midi_ddsp.errors.PerformanceFileError` with one line naming the file, the
line (CSV) or note (JSON) and the problem.
"""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Iterable

import numpy as np

from midi_ddsp.errors import PerformanceFileError
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance

CSV_COLUMNS = ("voice", "name", "instrument", "pitch", "onset_s", "offset_s", "velocity") + CONTROL_NAMES
REQUIRED_COLUMNS = ("instrument", "pitch", "onset_s", "offset_s") + CONTROL_NAMES
_ALIASES = {"onset": "onset_s", "offset": "offset_s"}
JSON_FORMAT = "midi-ddsp-performance"
JSON_VERSION = 1


def _as_list(performances) -> list[Performance]:
    return [performances] if isinstance(performances, Performance) else list(performances)


def _num(x) -> str:
    return repr(float(x))


# --- CSV -------------------------------------------------------------------------------------------------

def to_csv(performances: Performance | Iterable[Performance]) -> str:
    """CSV text of one or several performances (voice = position in the list)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for v, perf in enumerate(_as_list(performances)):
        for note, ctl in zip(perf.notes, perf.controls):
            w.writerow([v, perf.name, perf.instrument, note.pitch, _num(note.onset_s), _num(note.offset_s),
                        note.velocity, *(_num(c) for c in ctl)])
    return buf.getvalue()


def from_csv(text: str, source: str = "<csv>") -> list[Performance]:
    """Performances from CSV text (see module docstring); ``source`` names the file in error messages."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames:
        raise PerformanceFileError(f"{source}: empty file (expected a header row: {','.join(CSV_COLUMNS)})")
    header = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in reader.fieldnames]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PerformanceFileError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(expected: {','.join(CSV_COLUMNS)})"
        )
    reader.fieldnames = header
    voices: dict[int, dict] = {}
    for row in reader:
        line = reader.line_num
        where = f"{source} line {line}"
        if None in row:
            raise PerformanceFileError(f"{where}: more values than columns")
        if all((v or "").strip() == "" for v in row.values()):
            continue
        voice = _int_field(row, "voice", where, default=0)
        entry = voices.setdefault(voice, {"name": (row.get("name") or ""), "instrument": row["instrument"],
                                          "rows": []})
        for key in ("name", "instrument"):
            value = row.get(key) or ""
            same = value == entry[key] if key == "name" else value.strip().lower() == entry[key].strip().lower()
            if not same:
                raise PerformanceFileError(
                    f"{where}: voice {voice} has {key} {value!r} here but {entry[key]!r} on an earlier line"
                )
        entry["rows"].append((where, row))
    if not voices:
        raise PerformanceFileError(f"{source}: no notes (only a header)")
    return [_build_voice(entry["rows"], entry["name"], entry["instrument"], f"{source} voice {v}", _csv_note)
            for v, entry in sorted(voices.items())]


def _csv_note(where: str, row: dict):
    fields = {
        "pitch": _int_field(row, "pitch", where),
        "onset_s": _float_field(row, "onset_s", where),
        "offset_s": _float_field(row, "offset_s", where),
        "velocity": _int_field(row, "velocity", where, default=100),
    }
    return fields, [_float_field(row, c, where) for c in CONTROL_NAMES]


def _float_field(row: dict, key: str, where: str) -> float:
    raw = (row.get(key) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise PerformanceFileError(f"{where}: column {key}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise PerformanceFileError(f"{where}: column {key}: {raw!r} is not a finite number")
    return value


def _int_field(row: dict, key: str, where: str, default: int | None = None) -> int:
    raw = (row.get(key) or "").strip()
    if raw == "" and default is not None:
        return default
    value = _float_field(row, key, where)
    if not value.is_integer():
        raise PerformanceFileError(f"{where}: column {key}: {raw!r} is not a whole number")
    return int(value)


# --- JSON ------------------------------------------------------------------------------------------------

def to_json(performances: Performance | Iterable[Performance]) -> str:
    """JSON text of one or several performances (one note per line)."""
    voices = []
    for perf in _as_list(performances):
        notes = []
        for note, ctl in zip(perf.notes, perf.controls):
            d = {"pitch": note.pitch, "onset_s": float(note.onset_s), "offset_s": float(note.offset_s),
                 "velocity": note.velocity}
            d.update({k: float(c) for k, c in zip(CONTROL_NAMES, ctl)})
            notes.append("      " + json.dumps(d))
        voices.append(
            "    {" + f'"name": {json.dumps(perf.name)}, "instrument": {json.dumps(perf.instrument)}, "notes": [\n'
            + ",\n".join(notes) + "\n    ]}"
        )
    head = (f'{{"format": "{JSON_FORMAT}", "version": {JSON_VERSION}, '
            f'"controls": {json.dumps(list(CONTROL_NAMES))},\n  "voices": [\n')
    return head + ",\n".join(voices) + "\n  ]\n}\n"


def from_json(text: str, source: str = "<json>") -> list[Performance]:
    """Performances from JSON text (see module docstring)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PerformanceFileError(f"{source}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("voices"), list):
        raise PerformanceFileError(f'{source}: expected an object with a "voices" list')
    if doc.get("format", JSON_FORMAT) != JSON_FORMAT or doc.get("version", JSON_VERSION) != JSON_VERSION:
        raise PerformanceFileError(f"{source}: unsupported format {doc.get('format')!r} version {doc.get('version')!r}")
    if not doc["voices"]:
        raise PerformanceFileError(f"{source}: no voices")
    out = []
    for v, voice in enumerate(doc["voices"]):
        where = f"{source} voices[{v}]"
        if not isinstance(voice, dict) or not isinstance(voice.get("notes"), list):
            raise PerformanceFileError(f'{where}: expected an object with a "notes" list')
        if "instrument" not in voice:
            raise PerformanceFileError(f'{where}: missing "instrument"')
        rows = [(f"{where}.notes[{i}]", n) for i, n in enumerate(voice["notes"])]
        out.append(_build_voice(rows, voice.get("name", ""), voice["instrument"], where, _json_note))
    return out


def _json_note(where: str, d):
    if not isinstance(d, dict):
        raise PerformanceFileError(f"{where}: expected an object")

    def number(key, integer=False, default=None):
        if key not in d:
            if default is not None:
                return default
            raise PerformanceFileError(f"{where}: missing {key!r}")
        value = d[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PerformanceFileError(f"{where}: {key} = {value!r} is not a finite number")
        if integer and not float(value).is_integer():
            raise PerformanceFileError(f"{where}: {key} = {value!r} is not a whole number")
        return int(value) if integer else float(value)

    fields = {"pitch": number("pitch", True), "onset_s": number("onset_s"), "offset_s": number("offset_s"),
              "velocity": number("velocity", True, 100)}
    return fields, [number(c) for c in CONTROL_NAMES]


# --- shared ----------------------------------------------------------------------------------------------

def _build_voice(rows, name, instrument, where_voice: str, parse) -> Performance:
    if not isinstance(name, str) or not isinstance(instrument, str):
        raise PerformanceFileError(f"{where_voice}: name and instrument must be text")
    notes, controls = [], []
    for where, row in rows:
        fields, ctl = parse(where, row)
        if fields["offset_s"] < fields["onset_s"]:
            raise PerformanceFileError(
                f"{where}: negative duration (offset_s {fields['offset_s']!r} is before onset_s {fields['onset_s']!r})"
            )
        try:
            notes.append(Note(instrument=instrument, **fields))
        except ValueError as e:  # NoteError, or UnknownInstrumentError from the instrument table
            raise PerformanceFileError(f"{where}: {e}") from None
        controls.append(ctl)
    if not notes:
        raise PerformanceFileError(f"{where_voice}: no notes")
    order = sorted(range(len(notes)), key=lambda i: (notes[i].onset_s, notes[i].offset_s))
    try:
        seq = NoteSequence(tuple(notes[i] for i in order), instrument, name)
    except ValueError as e:
        raise PerformanceFileError(f"{where_voice}: {e}") from None
    return Performance(seq, np.array([controls[i] for i in order], dtype=np.float64))


__all__ = ["CSV_COLUMNS", "to_csv", "from_csv", "to_json", "from_json"]
