"""Note-level edits of the studio: validating request bodies, applying them, and what changed.

Pure note-level code (no torch, no files): a body from the HTTP API is checked completely *before* anything is
changed, so a malformed or out-of-range body leaves the open performance as it was.

Two body forms are accepted by ``PUT /api/performance`` (see :mod:`midi_ddsp.studio`):

- a whole performance, the JSON that ``midi-ddsp render --export-performance x.json`` writes;
- a subset: ``{"edits": [{"voice": 0, "note": 3, "vibrato": 0.9, "pitch": 62, ...}, ...],
  "instruments": [{"voice": 1, "instrument": "cello"}]}`` (either list may be omitted). Each edit names a note by
  voice and index (the order of ``GET /api/performance``) and sets any of ``pitch``, ``onset_s``, ``offset_s``,
  ``velocity`` and the six controls.

A :class:`Change` is what an edit did, in a form that can be replayed forwards and backwards (undo / redo) and
stored as JSON (the autosaved history): per voice, the notes removed and the notes added (each with its
controls), and the instrument before and after.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from midi_ddsp.errors import MidiDDSPError, NoteError, PerformanceFileError
from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance
from midi_ddsp.note_level.serialization import from_json

#: Control values the studio accepts (normalised units; the models produce about 0..1, exports of
#: re-extracted performances may fall a little outside).
CONTROL_MIN, CONTROL_MAX = -1.0, 2.0
#: The longest piece the studio opens (seconds) and the most notes: checked before any audio is allocated.
MAX_DURATION_S = 20 * 60.0
MAX_NOTES = 20000
MAX_VOICES = 32
NOTE_FIELDS = ("pitch", "onset_s", "offset_s", "velocity")
EDIT_FIELDS = NOTE_FIELDS + CONTROL_NAMES


class StudioError(MidiDDSPError):
    """A request the studio refuses; ``status`` is the HTTP status to answer (4xx), the message one line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = int(status)


# ------------------------------------------------------------------------------------------ note keys
NoteKey = tuple  # (pitch, onset_s, offset_s, velocity, *controls): a note with its controls, hashable


def note_keys(perf: Performance) -> list[NoteKey]:
    """One hashable key per note of ``perf`` (its fields and its six controls)."""
    return [(n.pitch, n.onset_s, n.offset_s, n.velocity, *map(float, c)) for n, c in zip(perf.notes, perf.controls)]


def build_performance(keys: list[NoteKey], instrument: str, name: str) -> Performance:
    """A Performance from note keys (sorted by onset); raises NoteError on overlaps."""
    keys = sorted(keys, key=lambda k: (k[1], k[2]))
    notes = tuple(Note(int(k[0]), float(k[1]), float(k[2]), int(k[3]), instrument) for k in keys)
    controls = np.array([k[4:] for k in keys], dtype=np.float64).reshape(len(keys), len(CONTROL_NAMES))
    return Performance(NoteSequence(notes, instrument, name), controls)


def key_to_dict(k: NoteKey) -> dict:
    d = {"pitch": int(k[0]), "onset_s": float(k[1]), "offset_s": float(k[2]), "velocity": int(k[3])}
    d.update({c: float(v) for c, v in zip(CONTROL_NAMES, k[4:])})
    return d


def dict_to_key(d: dict) -> NoteKey:
    return (int(d["pitch"]), float(d["onset_s"]), float(d["offset_s"]), int(d["velocity"]),
            *(float(d[c]) for c in CONTROL_NAMES))


# ------------------------------------------------------------------------------------------- changes
@dataclass
class VoiceChange:
    """What changed in one voice: notes removed and added (keys), and the instrument before / after."""

    voice: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)
    instrument_before: str = ""
    instrument_after: str = ""

    @property
    def instrument_changed(self) -> bool:
        return self.instrument_before != self.instrument_after

    def spans(self) -> list[tuple[float, float]]:
        """(onset_s, offset_s) of every removed and added note."""
        return [(float(k[1]), float(k[2])) for k in self.removed + self.added]


@dataclass
class Change:
    """One undoable step: per-voice changes, or (``replace``) whole performances before and after."""

    voices: list[VoiceChange] = field(default_factory=list)
    replace: tuple[str, str] | None = None  # (JSON before, JSON after) when the voices themselves changed
    label: str = ""

    @property
    def empty(self) -> bool:
        return self.replace is None and not self.voices

    def to_dict(self) -> dict:
        if self.replace is not None:
            return {"label": self.label, "replace": list(self.replace)}
        return {"label": self.label, "voices": [
            {"voice": v.voice, "removed": [key_to_dict(k) for k in v.removed],
             "added": [key_to_dict(k) for k in v.added], "instrument_before": v.instrument_before,
             "instrument_after": v.instrument_after} for v in self.voices]}

    @classmethod
    def from_dict(cls, d: dict) -> "Change":
        if d.get("replace") is not None:
            before, after = d["replace"]
            return cls(replace=(str(before), str(after)), label=str(d.get("label", "")))
        voices = [VoiceChange(int(v["voice"]), [dict_to_key(k) for k in v["removed"]],
                              [dict_to_key(k) for k in v["added"]], str(v["instrument_before"]),
                              str(v["instrument_after"])) for v in d.get("voices", [])]
        return cls(voices=voices, label=str(d.get("label", "")))


def diff(old: list[Performance], new: list[Performance], label: str = "") -> Change:
    """The Change that turns ``old`` into ``new`` (a ``replace`` when the number or names of voices differ)."""
    if len(old) != len(new) or any(a.name != b.name for a, b in zip(old, new)):
        from midi_ddsp.note_level.serialization import to_json

        return Change(replace=(to_json(old), to_json(new)), label=label)
    out = []
    for v, (a, b) in enumerate(zip(old, new)):
        ka, kb = Counter(note_keys(a)), Counter(note_keys(b))
        removed, added = list((ka - kb).elements()), list((kb - ka).elements())
        if removed or added or a.instrument != b.instrument:
            out.append(VoiceChange(v, removed, added, a.instrument, b.instrument))
    return Change(voices=out, label=label)


def apply(perfs: list[Performance], change: Change, backwards: bool = False) -> list[Performance]:
    """Replay ``change`` on ``perfs`` (forwards, or backwards for undo)."""
    if change.replace is not None:
        return from_json(change.replace[0 if backwards else 1], "<history>")
    out = list(perfs)
    for vc in change.voices:
        p = out[vc.voice]
        keys = Counter(note_keys(p))
        gone, come = (vc.added, vc.removed) if backwards else (vc.removed, vc.added)
        keys.subtract(Counter(gone))
        if any(c < 0 for c in keys.values()):
            raise StudioError("the history does not match the performance (a note to remove is missing)", 409)
        inst = vc.instrument_before if backwards else vc.instrument_after
        out[vc.voice] = build_performance(list(keys.elements()) + list(come), inst, p.name)
    return out


# ------------------------------------------------------------------------------------------ validation
def check_limits(perfs: list[Performance], known_instruments: set[str] | None = None) -> None:
    """Raise StudioError if performances exceed the studio's limits (duration, notes, voices, control range)."""
    if not perfs:
        raise StudioError("a performance needs at least one voice")
    if len(perfs) > MAX_VOICES:
        raise StudioError(f"{len(perfs)} voices; the studio opens at most {MAX_VOICES}", 413)
    n = sum(len(p) for p in perfs)
    if n > MAX_NOTES:
        raise StudioError(f"{n} notes; the studio opens at most {MAX_NOTES}", 413)
    end = max(p.sequence.end_s for p in perfs)
    if end > MAX_DURATION_S:
        raise StudioError(f"the piece lasts {end:.0f} s; the studio opens at most {MAX_DURATION_S:.0f} s", 413)
    for v, p in enumerate(perfs):
        if known_instruments is not None and p.instrument not in known_instruments:
            raise StudioError(f"voice {v}: the loaded model does not know the instrument {p.instrument!r}")
        if len(p):
            bad = np.argwhere((p.controls < CONTROL_MIN) | (p.controls > CONTROL_MAX))
            if bad.size:
                i, c = bad[0]
                raise StudioError(f"voice {v} note {i}: {CONTROL_NAMES[c]} = {p.controls[i, c]!r} is outside "
                                  f"{CONTROL_MIN}..{CONTROL_MAX}")


def parse_body(text: str) -> dict:
    """A JSON object from a request body, or StudioError (400) naming the problem."""
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise StudioError(f"body is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except ValueError as e:
        raise StudioError(f"body: {e}") from None
    if not isinstance(doc, dict):
        raise StudioError("body must be a JSON object")
    return doc


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def performances_from_body(doc: dict, current: list[Performance]) -> tuple[list[Performance], list]:
    """New performances from a PUT body (whole or subset form), and the [voice, note] of each edited note in them.

    Nothing is changed in ``current``; any problem raises StudioError.
    """
    if "voices" in doc:
        unknown = set(doc) - {"format", "version", "controls", "voices"}
        if unknown:
            raise StudioError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))} in a "
                              f"whole performance")
        try:
            return from_json(json.dumps(doc), "body"), []
        except PerformanceFileError as e:
            raise StudioError(str(e)) from None
    unknown = set(doc) - {"edits", "instruments"}
    if unknown or not doc:
        raise StudioError('expected a whole performance (with "voices") or a subset with "edits" and/or '
                          f'"instruments"{"; unknown: " + ", ".join(sorted(unknown)) if unknown else ""}')
    return apply_subset(current, doc.get("edits", []), doc.get("instruments", []))


def _index(value, what: str, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudioError(f"{what} must be an integer, got {value!r}")
    if not 0 <= value < n:
        raise StudioError(f"{what} {value} does not exist (0..{n - 1})", 404 if n else 400)
    return value


def apply_subset(current: list[Performance], edits, instruments) -> tuple[list[Performance], list]:
    """Apply the subset form (see module docstring); returns the new performances and edited notes' places."""
    if not isinstance(edits, list) or not isinstance(instruments, list):
        raise StudioError('"edits" and "instruments" must be lists')
    keys = [note_keys(p) for p in current]
    insts = [p.instrument for p in current]
    touched: dict[tuple[int, int], NoteKey] = {}
    for j, e in enumerate(edits):
        where = f"edits[{j}]"
        if not isinstance(e, dict):
            raise StudioError(f"{where}: expected an object")
        unknown = set(e) - {"voice", "note"} - set(EDIT_FIELDS)
        if unknown:
            raise StudioError(f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}"
                              f" (editable: {', '.join(EDIT_FIELDS)})")
        v = _index(e.get("voice"), f"{where}: voice", len(current))
        i = _index(e.get("note"), f"{where}: note", len(current[v]))
        k = list(keys[v][i])
        for f in EDIT_FIELDS:
            if f not in e:
                continue
            x = e[f]
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise StudioError(f"{where}: {f} = {x!r} is not a finite number")
            if f in ("pitch", "velocity"):
                if not float(x).is_integer():
                    raise StudioError(f"{where}: {f} = {x!r} is not a whole number")
                lo, hi = (0, 127) if f == "pitch" else (1, 127)
                if not lo <= x <= hi:
                    raise StudioError(f"{where}: {f} = {x!r} is outside {lo}..{hi}")
                x = int(x)
            elif f in CONTROL_NAMES and not CONTROL_MIN <= x <= CONTROL_MAX:
                raise StudioError(f"{where}: {f} = {x!r} is outside {CONTROL_MIN}..{CONTROL_MAX}")
            elif f in ("onset_s", "offset_s") and not 0 <= x <= MAX_DURATION_S:
                raise StudioError(f"{where}: {f} = {x!r} is outside 0..{MAX_DURATION_S:.0f} s")
            k[(NOTE_FIELDS + CONTROL_NAMES).index(f)] = float(x) if f not in ("pitch", "velocity") else x
        if k[2] <= k[1]:
            raise StudioError(f"{where}: offset_s {k[2]!r} is not after onset_s {k[1]!r}")
        keys[v][i] = tuple(k)
        touched[(v, i)] = tuple(k)
    for j, e in enumerate(instruments):
        where = f"instruments[{j}]"
        if not isinstance(e, dict) or set(e) != {"voice", "instrument"}:
            raise StudioError(f'{where}: expected {{"voice": N, "instrument": NAME}}')
        v = _index(e["voice"], f"{where}: voice", len(current))
        if not isinstance(e["instrument"], str):
            raise StudioError(f"{where}: instrument must be text")
        try:
            insts[v] = by_name(e["instrument"]).name
        except ValueError as err:
            raise StudioError(f"{where}: {err}") from None
    out = []
    for v, p in enumerate(current):
        try:
            out.append(build_performance(keys[v], insts[v], p.name))
        except NoteError as err:
            raise StudioError(f"voice {v}: {err}") from None
    places = []
    for (v, _), k in touched.items():
        new_keys = note_keys(out[v])
        places.append([v, new_keys.index(k)])
    return out, places


__all__ = ["StudioError", "Change", "VoiceChange", "diff", "apply", "check_limits", "parse_body",
           "performances_from_body", "apply_subset", "note_keys", "build_performance", "CONTROL_MIN",
           "CONTROL_MAX", "MAX_DURATION_S", "MAX_NOTES"]
