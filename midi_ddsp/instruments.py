"""The instrument table: names, ids, General-MIDI programs and playable ranges.

Ids follow MIDI-DDSP's order so that per-instrument embeddings and reverbs line up with it.
Ranges are written MIDI pitches (inclusive) of the instrument's usual concert range.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownInstrumentError


@dataclass(frozen=True)
class Instrument:
    """One instrument the models know.

    Attributes:
        id: index into embedding tables and the reverb bank.
        name: canonical lower-case name, e.g. ``"double bass"``.
        abbreviation: URMP abbreviation, e.g. ``"db"``.
        program: General-MIDI program number (0-based).
        low: lowest usual MIDI pitch.
        high: highest usual MIDI pitch.
    """

    id: int
    name: str
    abbreviation: str
    program: int
    low: int
    high: int

    def in_range(self, pitch: int) -> bool:
        return self.low <= pitch <= self.high

    @property
    def lowest_hz(self) -> float:
        """The lowest f0 spectral windows must resolve for this instrument: two semitones under ``low``, Hz."""
        return 440.0 * 2 ** ((self.low - 2 - 69) / 12)


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "violin", "vn", 40, 55, 100),
    Instrument(1, "viola", "va", 41, 48, 88),
    Instrument(2, "cello", "vc", 42, 36, 81),
    Instrument(3, "double bass", "db", 43, 28, 67),
    Instrument(4, "flute", "fl", 73, 60, 96),
    Instrument(5, "oboe", "ob", 68, 58, 91),
    Instrument(6, "clarinet", "cl", 71, 50, 91),
    Instrument(7, "saxophone", "sax", 66, 44, 80),
    Instrument(8, "bassoon", "bn", 70, 34, 75),
    Instrument(9, "trumpet", "tpt", 56, 52, 84),
    Instrument(10, "horn", "hn", 60, 34, 77),
    Instrument(11, "trombone", "tbn", 57, 40, 72),
    Instrument(12, "tuba", "tba", 58, 28, 65),
)

NAMES: tuple[str, ...] = tuple(i.name for i in INSTRUMENTS)

_ALIASES = {
    "contrabass": "double bass",
    "bass": "double bass",
    "doublebass": "double bass",
    "double_bass": "double bass",
    "french horn": "horn",
    "tenor sax": "saxophone",
    "sax": "saxophone",
}


def by_name(name: str) -> Instrument:
    """Look an instrument up by name, abbreviation or common alias (case-insensitive)."""
    key = name.strip().lower().replace("-", " ")
    key = _ALIASES.get(key, key)
    for inst in INSTRUMENTS:
        if key in (inst.name, inst.abbreviation):
            return inst
    raise UnknownInstrumentError(
        f"unknown instrument {name!r}; choose one of: {', '.join(NAMES)}"
    )


def by_id(instrument_id: int) -> Instrument:
    if not 0 <= instrument_id < len(INSTRUMENTS):
        raise UnknownInstrumentError(f"instrument id {instrument_id} is outside 0..{len(INSTRUMENTS) - 1}")
    return INSTRUMENTS[instrument_id]
