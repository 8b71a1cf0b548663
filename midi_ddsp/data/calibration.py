"""Measure a soundfont's tuning and playable range per instrument.

Sampled soundfonts are not perfectly in tune: in FluidR3_GM some violin zones sound 30-60 cents sharp,
and the contrabass preset is silent above MIDI 56. The corpus stores a *true* f0, so the builder
measures, once per soundfont, each instrument's sounding pitch on every MIDI pitch of its range, then

* pre-compensates the tuning with pitch bend (the performer subtracts the offset from the bend), and
* restricts each instrument to the pitches that actually sound.

The measurement renders each pitch as a 0.6 s note and finds f0 with a harmonic-sum search on a fine
(zero-padded) spectrum around the nominal pitch (+-100 cents, 1-cent grid).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from midi_ddsp.data.render import MidiTrack, find_soundfont, render_tracks
from midi_ddsp.instruments import INSTRUMENTS, Instrument

NOTE_S = 0.6
STEP_S = 0.9
LEAD_S = 0.2


def measure_f0(segment: np.ndarray, sample_rate: int, nominal_hz: float, search_cents: float = 100.0,
               n_harmonics: int = 5) -> float:
    """f0 (Hz) of a steady tone near ``nominal_hz``: maximise the summed spectral magnitude of the first
    harmonics over a 1-cent grid of candidates."""
    x = np.asarray(segment, dtype=np.float64)
    w = np.hanning(x.size)
    nfft = 8 * int(2 ** np.ceil(np.log2(x.size)))
    mag = np.abs(np.fft.rfft(x * w, nfft))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    cands = nominal_hz * 2.0 ** (np.arange(-search_cents, search_cents + 1) / 1200.0)
    score = np.zeros(cands.size)
    for h in range(1, n_harmonics + 1):
        if h * cands[-1] > 0.47 * sample_rate:
            break
        score += np.interp(h * cands, freqs, mag)
    return float(cands[int(np.argmax(score))])


def measure_instrument(instrument: Instrument, pitches: list[int], sample_rate: int = 16000,
                       soundfont: str | None = None, velocity: int = 90) -> dict[int, dict]:
    """Render ``pitches`` one after another; return {pitch: {"cents": offset, "peak_db": level}}.

    ``cents`` is None for silent pitches (peak below -60 dBFS).
    """
    tr = MidiTrack(program=instrument.program)
    for i, p in enumerate(pitches):
        t = LEAD_S + i * STEP_S
        tr.add(t, "on", p, velocity)
        tr.add(t + NOTE_S, "off", p, 0)
    audio = render_tracks([tr], LEAD_S + len(pitches) * STEP_S + 0.5, sample_rate, soundfont=soundfont)
    out = {}
    for i, p in enumerate(pitches):
        t = LEAD_S + i * STEP_S
        seg = audio[int((t + 0.2) * sample_rate): int((t + NOTE_S) * sample_rate)]
        peak = float(np.max(np.abs(seg))) if seg.size else 0.0
        peak_db = 20 * np.log10(max(peak, 1e-9))
        if peak_db < -60:
            out[int(p)] = {"cents": None, "peak_db": peak_db}
            continue
        nominal = 440.0 * 2 ** ((p - 69) / 12)
        f0 = measure_f0(seg, sample_rate, nominal)
        out[int(p)] = {"cents": float(1200 * np.log2(f0 / nominal)), "peak_db": peak_db}
    return out


def calibrate(soundfont: str | None = None, sample_rate: int = 16000, margin: int = 4,
              instruments: tuple[Instrument, ...] = INSTRUMENTS) -> dict:
    """Measure every instrument over its table range +- ``margin`` semitones.

    Returns ``{"soundfont": path, "sample_rate": sr, "instruments": {name: {pitch(str): {...}}}}``.
    """
    sf2 = str(find_soundfont(soundfont))
    table = {}
    for inst in instruments:
        pitches = list(range(max(inst.low - margin, 12), min(inst.high + margin, 115) + 1))
        table[inst.name] = {str(k): v for k, v in measure_instrument(inst, pitches, sample_rate, sf2).items()}
    return {"soundfont": sf2, "soundfont_size": os.path.getsize(sf2), "sample_rate": sample_rate,
            "instruments": table}


def load_or_calibrate(path: str | os.PathLike, soundfont: str | None = None, sample_rate: int = 16000,
                      instruments: tuple[Instrument, ...] | list[Instrument] | None = None) -> dict:
    """Read a calibration JSON if it matches the soundfont, measuring (and adding) any instrument of
    ``instruments`` (default: all) that it lacks; write it back when something was measured."""
    sf2 = str(find_soundfont(soundfont))
    wanted = list(instruments) if instruments is not None else list(INSTRUMENTS)
    p = Path(path)
    cal = None
    if p.is_file():
        try:
            cal = json.loads(p.read_text())
            if not (cal.get("soundfont") == sf2 and cal.get("soundfont_size") == os.path.getsize(sf2)
                    and cal.get("sample_rate") == sample_rate):
                cal = None
        except (OSError, ValueError):
            cal = None
    missing = [i for i in wanted if cal is None or i.name not in cal["instruments"]]
    if not missing:
        return cal
    new = calibrate(sf2, sample_rate, instruments=tuple(missing))
    if cal is not None:
        cal["instruments"].update(new["instruments"])
    else:
        cal = new
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cal, indent=1))
    os.replace(tmp, p)
    return cal


def tuning_offsets(cal: dict, instrument: str) -> dict[int, float]:
    """{MIDI pitch: cents} for the pitches that sound (usable for pre-compensation)."""
    return {int(k): float(v["cents"]) for k, v in cal["instruments"][instrument].items() if v["cents"] is not None}


def usable_range(cal: dict, instrument: Instrument, max_abs_cents: float = 80.0) -> tuple[int, int]:
    """The largest contiguous run of pitches inside the instrument's table range that sound and whose
    tuning error the pitch bend can absorb (|offset| <= ``max_abs_cents``)."""
    table = cal["instruments"][instrument.name]
    ok = [p for p in range(instrument.low, instrument.high + 1)
          if str(p) in table and table[str(p)]["cents"] is not None
          and abs(table[str(p)]["cents"]) <= max_abs_cents]
    if not ok:
        return (instrument.low, instrument.low - 1)
    best, start, prev = (ok[0], ok[0]), ok[0], ok[0]
    for p in ok[1:] + [None]:
        if p is None or p != prev + 1:
            if prev - start > best[1] - best[0]:
                best = (start, prev)
            if p is not None:
                start = p
        if p is not None:
            prev = p
    return best
