"""A performance -> an editable MIDI file (``--export-midi``), and that file read back.

The file is a type-1 Standard MIDI File at 480 ticks per beat and 125 bpm, so one tick is exactly 1 ms.
Track 1 holds the tempo and the text event ``midi-ddsp performance v1`` (the marker that makes the renderer
read the file back as a performance, below); then one track per voice, named after the voice, on its own
channel (0..15 without the drum channel 9, cycled), with the GM program of its instrument. Each voice
track holds:

=====================  ====================================================================================
MIDI                   what it carries
=====================  ====================================================================================
notes                  the voice's notes: pitch and velocity exact, times on the 1 ms grid (at least 1 ms)
CC1 + CC33 (14-bit)    ``vibrato`` control, set at every note onset (0..1 -> 0..16383)
CC16 + CC48            ``volume`` control (General Purpose 1)
CC17 + CC49            ``vol_fluc`` control (General Purpose 2)
CC18 + CC50            ``vol_peak_pos`` control (General Purpose 3)
CC19 + CC51            ``brightness`` control (General Purpose 4)
CC20 + CC52            ``attack`` control (undefined in General MIDI, free for this use)
pitch bend             the f0 curve: deviation from the sounding note (rests: the previous note) in
                       semitones, one event per 4 ms frame where it changes; the range is set with RPN 0 at
                       the start of the track (the smallest whole number of semitones >= 2 that holds the
                       curve, at most 24; larger deviations are clipped)
CC11 + CC43 (14-bit)   the loudness curve: the harmonic amplitude in dB, ``dB = (value / 128 - 127) / 2``
                       (CC11 127 = 0 dB, each CC11 step 0.5 dB, CC11 and CC43 both 0 = "-63.5 dB or
                       quieter"; a DAW's CC11 0 alone, without a fine part after it, reads so too), per frame
                       where it changes
=====================  ====================================================================================

Controls are clipped to 0..1 (the corpus range: the expression model samples within it). 14-bit pairs
follow MIDI's rule: a CC LSB counts only if it was sent after the last MSB, so a DAW edit of CC1/16-20/11
alone (the coarse value) is read without a stale fine part.

Reading back (:func:`read_performance_midi`), e.g. after editing in a DAW: the notes as the MIDI reader
reads them; each note's controls from the lanes above at its onset (a lane removed from a track: that
control comes from the expression model); the f0 from the pitch bend (a track without bends: the model
samples a new f0, with the vibrato the controls ask for); the loudness curve from CC11 (the renderer adds
the frame gain that brings the generated amplitude onto it; a track without CC11: the model's own
loudness). Round trip (export -> read -> render) tolerances: notes exact on the 1 ms grid (times within
0.5 ms otherwise); controls within 1/32766 (half a 14-bit step); f0 within ``range / 16384`` semitones
(0.012 cents at +-2); loudness within 0.002 dB between -63.5 and 0 dB (amplitudes outside that are not
constrained, the gain of the nearest constrained frame applies).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from midi_ddsp.io.atomic import atomic_write
from midi_ddsp.io.controllers import TIME_EPS_S, StepCurve, read_track_controllers, voice_track
from midi_ddsp.note_level.controllers import held_pitch, hz_to_semitones
from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES, N_CONTROLS, NoteSequence, Performance

MARKER = "midi-ddsp performance v1"
TICKS_PER_BEAT = 480
TEMPO_US = 480_000  # 125 bpm: 1 tick = 1 ms
TICK_S = TEMPO_US / 1e6 / TICKS_PER_BEAT
#: control name -> MSB controller number (the LSB is MSB + 32)
CONTROL_CC = {"vibrato": 1, "volume": 16, "vol_fluc": 17, "vol_peak_pos": 18, "brightness": 19, "attack": 20}
LOUDNESS_CC = 11
LOUDNESS_STEP_DB = 0.5  # per CC11 step
MAX_BEND_RANGE = 24
FULL14 = 16383


@dataclass
class ImportedVoice:
    """One voice of an exported performance file, as read back.

    Attributes:
        sequence: the notes (as :func:`~midi_ddsp.io.midi.load_midi` read them).
        controls: float64 ``[n_notes, 6]`` in CONTROL_NAMES order; NaN columns where the track has no lane
            for that control.
        bend: the f0 as semitones from the held note pitch (None: the track has no pitch bend).
        loudness_db: harmonic amplitude in dB, NaN where CC11 is 0 (None: no CC11).
    """

    sequence: NoteSequence
    controls: np.ndarray
    bend: StepCurve | None
    loudness_db: StepCurve | None


def loudness_to_value(db) -> np.ndarray:
    """Loudness dB -> 14-bit CC11/CC43 value (int64, clipped to 0..16383)."""
    v = np.rint((127.0 + np.asarray(db, dtype=np.float64) / LOUDNESS_STEP_DB) * 128.0)
    return np.clip(v, 0, FULL14).astype(np.int64)


def value_to_loudness(value) -> np.ndarray:
    """14-bit CC11/CC43 value -> loudness dB (NaN for value 0: -63.5 dB or below, out of the range)."""
    v = np.asarray(value, dtype=np.float64)
    return np.where(v >= 1, (v / 128.0 - 127.0) * LOUDNESS_STEP_DB, np.nan)


def _channels(n: int) -> list[int]:
    chans = [c for c in range(16) if c != 9]
    return [chans[i % len(chans)] for i in range(n)]


def _ticks(t) -> np.ndarray:
    return np.rint(np.asarray(t, dtype=np.float64) / TICK_S).astype(np.int64)


def _changes(values: np.ndarray) -> np.ndarray:
    """Indices where an integer curve changes (always the first)."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))


def export_midi(path, performances: Sequence[Performance] | Performance, params=None,
                frame_rate: float = 250.0) -> Path:
    """Write :func:`export_midi_bytes` to ``path`` atomically; returns the path."""
    data = export_midi_bytes(performances, params, frame_rate)
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def export_midi_bytes(performances: Sequence[Performance] | Performance, params=None,
                      frame_rate: float = 250.0) -> bytes:
    """Performances (and, with ``params``, their f0 and loudness curves) as the bytes of an editable MIDI file.

    Args:
        performances: one Performance per voice.
        params: optional SynthParams per voice (``[1, F, ...]`` each, e.g. ``RenderResult.params``); their
            ``f0_hz`` becomes pitch bend and ``amplitude`` (dB) the CC11/CC43 loudness curve.
        frame_rate: frames per second of ``params``.
    Returns:
        the Standard MIDI File. See the module docstring for the layout.
    """
    import io

    import mido

    perfs = [performances] if isinstance(performances, Performance) else list(performances)
    plist = None if params is None else list(params)
    if plist is not None and len(plist) != len(perfs):
        raise ValueError(f"{len(perfs)} performances but {len(plist)} SynthParams")
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    head = mido.MidiTrack()
    head.append(mido.MetaMessage("track_name", name="midi-ddsp", time=0))
    head.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0))
    head.append(mido.MetaMessage("text", text=MARKER, time=0))
    mid.tracks.append(head)
    from midi_ddsp.instruments import by_name

    for v, (perf, ch) in enumerate(zip(perfs, _channels(len(perfs)))):
        events: list[tuple[int, int, object]] = []  # (tick, order, message); order: offs, setup, ccs, ons
        seq = perf.sequence
        on_t = _ticks(seq.onsets_s)
        off_t = np.maximum(_ticks(seq.offsets_s), on_t + 1)
        if len(seq) > 1:  # keep the voice monophonic after rounding
            off_t[:-1] = np.minimum(off_t[:-1], np.maximum(on_t[1:], on_t[:-1] + 1))
        range_st = 2
        bend_vals = loud_vals = None
        if plist is not None:
            p = plist[v]
            f0 = p.f0_hz[0, :, 0].detach().float().cpu().numpy().astype(np.float64)
            amp = p.amplitude[0, :, 0].detach().float().cpu().numpy().astype(np.float64)
            frames = notes_to_frames(seq, f0.shape[0], frame_rate)
            dev = hz_to_semitones(np.maximum(f0, 1e-3)) - held_pitch(frames)
            need = float(np.max(np.abs(dev))) if dev.size else 0.0
            range_st = int(min(MAX_BEND_RANGE, max(2, math.ceil(need - 1e-9))))
            bend_vals = np.clip(np.rint(dev / range_st * 8192.0), -8192, 8191).astype(np.int64)
            with np.errstate(divide="ignore"):
                loud_vals = loudness_to_value(20.0 * np.log10(np.maximum(amp, 1e-12)))
        setup = [("program_change", dict(program=by_name(perf.instrument).program))]
        setup += [("control_change", dict(control=c, value=x))
                  for c, x in ((101, 0), (100, 0), (6, range_st), (38, 0), (101, 127), (100, 127))]
        for kind, kw in setup:
            events.append((0, 1, mido.Message(kind, channel=ch, **kw)))
        ctl = np.clip(np.nan_to_num(np.asarray(perf.controls, dtype=np.float64), nan=0.5), 0.0, 1.0)
        vals14 = np.rint(ctl * FULL14).astype(np.int64)
        for k in range(len(seq)):  # per note: its six controls, then the note
            for name, cc in CONTROL_CC.items():
                val = int(vals14[k, CONTROL_NAMES.index(name)])
                events.append((int(on_t[k]), 2, mido.Message("control_change", channel=ch, control=cc, value=val >> 7)))
                events.append((int(on_t[k]), 2, mido.Message("control_change", channel=ch, control=cc + 32,
                                                             value=val & 127)))
            n = seq[k]
            events.append((int(on_t[k]), 3, mido.Message("note_on", channel=ch, note=n.pitch, velocity=n.velocity)))
            events.append((int(off_t[k]), 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
        if bend_vals is not None:
            tick_f = _ticks(np.arange(bend_vals.shape[0]) / frame_rate)
            for i in _changes(bend_vals).tolist():
                events.append((int(tick_f[i]), 2, mido.Message("pitchwheel", channel=ch, pitch=int(bend_vals[i]))))
            for i in _changes(loud_vals).tolist():
                val = int(loud_vals[i])
                events.append((int(tick_f[i]), 2, mido.Message("control_change", channel=ch, control=LOUDNESS_CC,
                                                               value=val >> 7)))
                events.append((int(tick_f[i]), 2, mido.Message("control_change", channel=ch,
                                                               control=LOUDNESS_CC + 32, value=val & 127)))
        events.sort(key=lambda e: (e[0], e[1]))  # stable: file order within a kind
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=perf.name or f"voice {v + 1}", time=0))
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def is_performance_midi(path) -> bool:
    """True when ``path`` is a MIDI file written by :func:`export_midi`: its first track carries the marker
    text event (looked up in the first track's bytes, without parsing the file)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False  # the MIDI reader reports unreadable files
    start = data.find(b"MThd")
    if start < 0 or len(data) < start + 22:
        return False
    pos = start + 8 + int.from_bytes(data[start + 4:start + 8], "big")
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        if kind == b"MTrk":
            text = MARKER.encode("ascii")
            return b"\xff\x01" + bytes([len(text)]) + text in data[pos + 8:pos + 8 + length]
        pos += 8 + length
    return False


def fourteen_bit(msb: StepCurve, lsb: StepCurve, t) -> np.ndarray:
    """14-bit controller values at times ``t``: ``msb * 128 + lsb``, where the LSB counts only if it was
    sent at or after the MSB in effect (MIDI's rule). float64, NaN where no MSB was sent yet."""
    t = np.asarray(t, dtype=np.float64)
    if len(msb) == 0:
        return np.full(t.shape, np.nan)
    i = np.searchsorted(msb.times_s, t + TIME_EPS_S, side="right") - 1
    m = np.where(i >= 0, msb.values[np.maximum(i, 0)], np.nan)
    m_time = np.where(i >= 0, msb.times_s[np.maximum(i, 0)], np.inf)
    if len(lsb):
        j = np.searchsorted(lsb.times_s, t + TIME_EPS_S, side="right") - 1
        low = np.where(j >= 0, lsb.values[np.maximum(j, 0)], 0.0)
        l_time = np.where(j >= 0, lsb.times_s[np.maximum(j, 0)], -np.inf)
        low = np.where(l_time >= m_time, low, 0.0)
    else:
        low = 0.0
    return m * 128.0 + low


def read_performance_midi(path, voices: Sequence[NoteSequence], speed: float = 1.0) -> list[ImportedVoice]:
    """The controls, f0 and loudness curves of an exported performance file, for the voices the MIDI reader
    made of it (``voices``, named ``"track N (...)"``). ``speed`` as the voices were read with."""
    tracks = read_track_controllers(path)
    out = []
    for seq in voices:
        t = voice_track(seq.name)
        ev = tracks[t].scaled_time(speed) if t is not None and 0 <= t < len(tracks) else None
        controls = np.full((len(seq), N_CONTROLS), np.nan)
        bend = loud = None
        if ev is not None:
            for name, cc in CONTROL_CC.items():
                if cc in ev.cc:
                    vals = fourteen_bit(ev.curve(cc), ev.curve(cc + 32), seq.onsets_s)
                    controls[:, CONTROL_NAMES.index(name)] = vals / FULL14
            if len(ev.bend):
                bend = ev.bend
            if LOUDNESS_CC in ev.cc:
                msb, lsb = ev.curve(LOUDNESS_CC), ev.curve(LOUDNESS_CC + 32)
                times = np.unique(np.concatenate([msb.times_s, lsb.times_s]))
                loud = StepCurve(times, value_to_loudness(fourteen_bit(msb, lsb, times)), np.nan)
        out.append(ImportedVoice(seq, controls, bend, loud))
    return out


__all__ = ["export_midi", "export_midi_bytes", "read_performance_midi", "is_performance_midi", "ImportedVoice", "CONTROL_CC",
           "LOUDNESS_CC", "MARKER", "loudness_to_value", "value_to_loudness", "fourteen_bit"]
