"""MIDI controllers (pitch bend, CC1, CC7, CC11, CC64, ...) -> time-stamped curves per voice.

What is read (per MIDI *channel*: a synthesizer hears the merged stream of every track, so a controller
lane on a notes-free track of a type-1 file reaches the notes of its channel on the other tracks):

- **Pitch bend**, in semitones: ``value / 8192 * range`` with ``value`` in -8192..8191 and ``range`` the
  pitch-bend sensitivity in effect at that moment: RPN 0 (CC101 = 0, CC100 = 0, then CC6 = semitones and
  CC38 = cents; CC96 / CC97, data increment / decrement, move it one cent up / down, carried into the
  semitones, as MMA RP-018 asks), else the General-MIDI default of +-2 semitones. A range change re-scales
  bends sent after it (as a synthesizer does). RPN selection and data entry are read in file order; where a
  writer sorted the events of one tick by controller number (pretty_midi does: CC6 before CC100/CC101), the
  select events of that tick are applied first.
- **Controllers** CC1 (modulation), CC7 (volume), CC11 (expression), CC64 (sustain pedal, down at >= 64),
  and any other controller number (the performance export's 14-bit control lanes among them), as
  piecewise-constant (step) curves: a value holds from its event until the next one, and before the
  first event the General-MIDI reset value applies (CC1 0, CC7 100, CC11 127, CC64 0, bend 0).
- Times are seconds (pretty_midi's tempo map), divided by ``speed`` like the notes.

A curve is *neutral* when it never leaves its reset value (a "reset all controllers" preamble); files
whose curves are all neutral render exactly as without controllers.

Voices: :func:`midi_ddsp.io.midi.load_midi` turns every pretty_midi instrument (track x channel x
program) into one or more voices named ``"track N (...)"`` / ``"track N (...) voice K"``; every voice of
track-instrument ``N`` gets the controllers of that instrument's channel (pitch bend and CCs are
channel-wide in MIDI, so all voices split from a polyphonic track share them). The mapping uses
``track_of`` when the caller has it (see :func:`controllers_for_voices`), else the ``track N`` in the
voice name.

Frame sampling (:meth:`ControllerEvents.frames`): frame ``i`` at ``i / frame_rate`` seconds takes the
value in effect at that time (the model's 250 Hz grid).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

#: The General-MIDI reset values ("neutral": a curve that never leaves them changes nothing).
GM_DEFAULTS: dict[int, float] = {1: 0.0, 7: 100.0, 11: 127.0, 64: 0.0}
DEFAULT_BEND_RANGE = 2.0  # semitones each way (General MIDI)
SUSTAIN_THRESHOLD = 64  # CC64 >= 64: pedal down
RPN_MSB, RPN_LSB, DATA_MSB, DATA_LSB = 101, 100, 6, 38
DATA_INC, DATA_DEC = 96, 97  # data increment / decrement: one step of the LSB (a cent of the bend range)
DATA_ENTRY = (DATA_MSB, DATA_LSB, DATA_INC, DATA_DEC)
TIME_EPS_S = 1e-7  # far below a MIDI tick
NAMED = ("bend", "cc1", "cc7", "cc11", "sustain")

_TRACK_RE = re.compile(r"^track (\d+) ")


@dataclass(frozen=True)
class StepCurve:
    """A piecewise-constant curve: ``values[i]`` holds from ``times_s[i]`` until the next event.

    Attributes:
        times_s: float64 ``[n]`` event times in seconds, non-decreasing (several events at one time: the
            last one wins).
        values: float64 ``[n]``.
        default: the value before the first event.
    """

    times_s: np.ndarray
    values: np.ndarray
    default: float = 0.0

    def __post_init__(self):
        t = np.asarray(self.times_s, dtype=np.float64).reshape(-1)
        v = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if t.shape != v.shape:
            raise ValueError(f"StepCurve needs as many times as values, got {t.shape} and {v.shape}")
        order = np.argsort(t, kind="stable")
        object.__setattr__(self, "times_s", t[order])
        object.__setattr__(self, "values", v[order])
        object.__setattr__(self, "default", float(self.default))

    @classmethod
    def empty(cls, default: float = 0.0) -> "StepCurve":
        return cls(np.zeros(0), np.zeros(0), default)

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    @property
    def neutral(self) -> bool:
        """True when the curve never leaves its default value."""
        return bool(np.all(self.values == self.default))

    def at(self, t) -> np.ndarray:
        """Values in effect at times ``t`` (seconds, any shape): float64, same shape. An event counts from
        its own time on (to within :data:`TIME_EPS_S`, so tick -> seconds rounding does not shift a frame)."""
        t = np.asarray(t, dtype=np.float64)
        if len(self) == 0:
            return np.full(t.shape, self.default)
        i = np.searchsorted(self.times_s, t + TIME_EPS_S, side="right") - 1
        return np.where(i >= 0, self.values[np.maximum(i, 0)], self.default)

    def sample(self, n_frames: int, frame_rate: float) -> np.ndarray:
        """float32 ``[n_frames]``: the value at each frame time ``i / frame_rate``."""
        return self.at(np.arange(int(n_frames)) / float(frame_rate)).astype(np.float32)

    def scaled_time(self, speed: float) -> "StepCurve":
        return StepCurve(self.times_s / float(speed), self.values, self.default)


@dataclass(frozen=True)
class ControllerCurves:
    """One voice's controllers on the model's frame grid (frame ``i`` at ``i / frame_rate`` s).

    Attributes:
        frame_rate: Hz.
        bend_semitones: float32 ``[F]`` pitch bend in semitones (RPN range applied).
        cc1, cc7, cc11: float32 ``[F]`` raw controller values 0..127 (modulation, volume, expression).
        sustain: bool ``[F]``: pedal down (CC64 >= 64).
        present: the names among ``bend, cc1, cc7, cc11, sustain`` whose curves are not neutral.
    """

    frame_rate: float
    bend_semitones: np.ndarray
    cc1: np.ndarray
    cc7: np.ndarray
    cc11: np.ndarray
    sustain: np.ndarray
    present: frozenset = frozenset()

    @property
    def n_frames(self) -> int:
        return int(self.bend_semitones.shape[0])

    @property
    def times_s(self) -> np.ndarray:
        """float64 ``[F]`` frame times in seconds."""
        return np.arange(self.n_frames) / self.frame_rate


@dataclass(frozen=True)
class ControllerEvents:
    """The controllers of one MIDI channel as step curves (seconds), shared by the voices of that channel.

    Attributes:
        bend: pitch bend in semitones (each event scaled by the RPN 0 range in effect when it was sent).
        cc: controller number -> curve of raw values 0..127 (every controller the channel sent, plus
            CC1/7/11/64 with their GM defaults).
        bend_ranges: the RPN 0 ranges (semitones) the file set, in order (empty: GM default +-2).
        channel: MIDI channel 0..15 (None when unknown).
    """

    bend: StepCurve
    cc: Mapping[int, StepCurve] = field(default_factory=dict)
    bend_ranges: tuple[float, ...] = ()
    channel: int | None = None

    def curve(self, number: int) -> StepCurve:
        """The curve of controller ``number`` (an empty curve at its GM default when never sent)."""
        c = self.cc.get(int(number))
        return c if c is not None else StepCurve.empty(GM_DEFAULTS.get(int(number), 0.0))

    @property
    def present(self) -> frozenset:
        """Names (``bend, cc1, cc7, cc11, sustain``) of the curves that carry information (not neutral)."""
        out = set()
        if not self.bend.neutral:
            out.add("bend")
        for name, num in (("cc1", 1), ("cc7", 7), ("cc11", 11), ("sustain", 64)):
            if not self.curve(num).neutral:
                out.add(name)
        if "sustain" in out and not np.any(self.curve(64).values >= SUSTAIN_THRESHOLD):
            out.discard("sustain")  # values that move below the threshold never press the pedal
        return frozenset(out)

    def sustain_intervals(self, end_s: float) -> list[tuple[float, float]]:
        """``[(down_s, up_s), ...]`` pedal-down intervals; a pedal still down at the end closes at ``end_s``."""
        c = self.curve(64)
        if len(c) == 0:
            return []
        down = c.values >= SUSTAIN_THRESHOLD
        out, start = [], None
        for t, d in zip(c.times_s.tolist(), down.tolist()):  # one entry per pedal event
            if d and start is None:
                start = t
            elif not d and start is not None:
                if t > start:
                    out.append((start, t))
                start = None
        if start is not None and end_s > start:
            out.append((start, float(end_s)))
        return out

    def frames(self, n_frames: int, frame_rate: float) -> ControllerCurves:
        """Sample every named curve on ``n_frames`` frames at ``frame_rate`` Hz."""
        return ControllerCurves(float(frame_rate), self.bend.sample(n_frames, frame_rate),
                                self.curve(1).sample(n_frames, frame_rate), self.curve(7).sample(n_frames, frame_rate),
                                self.curve(11).sample(n_frames, frame_rate),
                                self.curve(64).sample(n_frames, frame_rate) >= SUSTAIN_THRESHOLD, self.present)

    def scaled_time(self, speed: float) -> "ControllerEvents":
        if speed == 1.0:
            return self
        return ControllerEvents(self.bend.scaled_time(speed), {k: c.scaled_time(speed) for k, c in self.cc.items()},
                                self.bend_ranges, self.channel)


# ------------------------------------------------------------------------------------------------ reading
def _mido_file(path):
    import io

    import mido

    data = Path(path).read_bytes()
    if data[:4] == b"RIFF" and b"MThd" in data:  # RIFF-wrapped MIDI, as the reader accepts it
        data = data[data.index(b"MThd"):]
    return mido.MidiFile(file=io.BytesIO(data))


def _instrument_channels(mid) -> list[tuple[int, int, int]]:
    """(program, channel, track) of every pretty_midi instrument, in pretty_midi's creation order.

    pretty_midi creates an instrument when it closes the first note of a (program, channel, track); this
    walk repeats its rule so pm.instruments[i] can be matched to its MIDI channel.
    """
    order: dict[tuple[int, int, int], None] = {}
    for t, track in enumerate(mid.tracks):
        program = [0] * 16
        ons: dict[tuple[int, int], list[int]] = {}
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "program_change":
                program[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                ons.setdefault((msg.channel, msg.note), []).append(tick)
            elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
                key = (msg.channel, msg.note)
                if key in ons:
                    closing = [s for s in ons[key] if s != tick]
                    keep = [s for s in ons[key] if s == tick]
                    if closing:
                        order.setdefault((program[msg.channel], msg.channel, t), None)
                    if closing and keep:
                        ons[key] = keep
                    else:
                        del ons[key]
    return list(order)


def _raw_channel_events(mid) -> dict[int, list]:
    """Every channel's pitch bends and controllers as ``(tick, track, position, kind, a, b)``, merged over
    tracks (ordered by tick, then track, then position in the track)."""
    raw: dict[int, list[tuple[int, int, int, str, int, int]]] = {}
    for t, track in enumerate(mid.tracks):
        tick = 0
        for k, msg in enumerate(track):
            tick += msg.time
            if msg.type == "control_change":
                raw.setdefault(msg.channel, []).append((tick, t, k, "cc", msg.control, msg.value))
            elif msg.type == "pitchwheel":
                raw.setdefault(msg.channel, []).append((tick, t, k, "bend", msg.pitch, 0))
    for events in raw.values():
        events.sort(key=lambda e: (e[0], e[1], e[2]))
    return raw


def _decode_channel(events, tick_to_time, channel) -> ControllerEvents:
    bend_ticks, bend_values = [], []
    cc_ticks: dict[int, list[int]] = {}
    cc_values: dict[int, list[int]] = {}
    rpn = [127, 127]  # MSB, LSB; (127, 127) = null
    bend_range = DEFAULT_BEND_RANGE
    range_semis, range_cents = int(DEFAULT_BEND_RANGE), 0
    ranges: list[float] = []
    i = 0
    while i < len(events):
        j = i
        while j < len(events) and events[j][0] == events[i][0]:
            j += 1
        group = events[i:j]
        group = _causal_order(group, rpn)
        for tick, _, _, kind, a, b in group:
            if kind == "bend":
                bend_ticks.append(tick)
                bend_values.append(a / 8192.0 * bend_range)
                continue
            cc_ticks.setdefault(a, []).append(tick)
            cc_values.setdefault(a, []).append(b)
            if a == RPN_MSB:
                rpn[0] = b
            elif a == RPN_LSB:
                rpn[1] = b
            elif a in DATA_ENTRY and rpn == [0, 0]:
                if a == DATA_MSB:
                    range_semis, range_cents = b, 0  # a new MSB resets the LSB (MIDI convention)
                elif a == DATA_LSB:
                    range_cents = b
                else:  # one cent up or down, carried into the semitones (MMA RP-018); the value is ignored
                    cents = range_semis * 100 + min(range_cents, 99) + (1 if a == DATA_INC else -1)
                    range_semis, range_cents = divmod(min(max(cents, 0), 127 * 100 + 99), 100)
                bend_range = range_semis + range_cents / 100.0
                ranges.append(bend_range)
        i = j
    times = lambda ticks: np.array([tick_to_time(x) for x in ticks], dtype=np.float64)  # noqa: E731
    bend = StepCurve(times(bend_ticks), np.array(bend_values), 0.0)
    cc = {n: StepCurve(times(cc_ticks[n]), np.array(cc_values[n], dtype=np.float64), GM_DEFAULTS.get(n, 0.0))
          for n in cc_ticks}
    dedup = tuple(dict.fromkeys(round(r, 4) for r in ranges))
    return ControllerEvents(bend, cc, dedup, channel)


def _causal_order(group, rpn):
    """Events of one tick in file order, unless a data entry comes before the RPN select of the same tick
    while no RPN is selected (a writer that sorted by controller number): then selects go first, data
    entry next, nulls (127) last, everything else in file order."""
    if rpn != [127, 127] or len(group) < 2:
        return group
    first_select = next((k for k, e in enumerate(group)
                         if e[3] == "cc" and e[4] in (RPN_MSB, RPN_LSB) and e[5] != 127), None)
    first_data = next((k for k, e in enumerate(group) if e[3] == "cc" and e[4] in DATA_ENTRY), None)
    if first_select is None or first_data is None or first_data > first_select:
        return group

    def key(item):
        k, e = item
        if e[3] == "cc" and e[4] in (RPN_MSB, RPN_LSB):
            return (0 if e[5] != 127 else 2, k)
        if e[3] == "cc" and e[4] in DATA_ENTRY:
            return (1, k)
        return (1, k)

    return [e for _, e in sorted(enumerate(group), key=key)]


def read_track_controllers(path) -> list[ControllerEvents]:
    """The controllers of every pretty_midi instrument of a MIDI file (``pm.instruments`` order, the
    "track N" numbering of :func:`~midi_ddsp.io.midi.load_midi`), each with its channel's events.

    The file is parsed once (mido); pretty_midi builds its instruments and tempo map from that parse.

    Raises:
        MidiReadError: as :func:`~midi_ddsp.io.midi.load_midi` (missing, not MIDI, corrupt).
    """
    import warnings

    import pretty_midi

    from midi_ddsp.errors import MidiReadError
    from midi_ddsp.io.midi import _parse

    try:
        mid = _mido_file(path)
    except Exception:  # noqa: BLE001 - let the reader name the problem in one line
        _parse(path)
        raise MidiReadError(path, "corrupt", "corrupt MIDI file") from None
    keys = _instrument_channels(mid)
    raw = _raw_channel_events(mid)  # before pretty_midi makes the message times absolute
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(mido_object=mid)
    except Exception:  # noqa: BLE001
        pm = _parse(path)  # raises the reader's one-line error
    by_channel = {ch: _decode_channel(ev, pm.tick_to_time, ch) for ch, ev in raw.items()}
    empty = ControllerEvents(StepCurve.empty(0.0))
    if len(keys) == len(pm.instruments) and all(k[0] == inst.program for k, inst in zip(keys, pm.instruments)):
        return [by_channel.get(ch, ControllerEvents(StepCurve.empty(0.0), channel=ch)) for _, ch, _ in keys]
    # Unexpected layout: fall back to pretty_midi's own per-instrument lists (track and channel, no merging).
    out = []
    for inst in pm.instruments:
        events = [(pm.time_to_tick(c.time), 0, k, "cc", c.number, c.value) for k, c in enumerate(inst.control_changes)]
        events += [(pm.time_to_tick(b.time), 1, k, "bend", b.pitch, 0) for k, b in enumerate(inst.pitch_bends)]
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        out.append(_decode_channel(events, pm.tick_to_time, None) if events else empty)
    return out


def voice_track(name: str) -> int | None:
    """0-based pretty_midi instrument index from a voice name ``"track N (...)"`` (None if not that form)."""
    m = _TRACK_RE.match(name or "")
    return int(m.group(1)) - 1 if m else None


def controllers_for_voices(path, voice_names: Sequence[str], speed: float = 1.0,
                           track_of: Sequence[int] | None = None) -> list[ControllerEvents | None]:
    """Per voice (as :func:`~midi_ddsp.io.midi.load_midi` returned them), its channel's controllers, or
    None where the voice's track is unknown or its controllers are all neutral.

    Args:
        path: the MIDI file the voices were read from.
        voice_names: ``seq.name`` of every voice (``"track N (...)"``).
        speed: the tempo factor the voices were read with (times are divided by it).
        track_of: optional 0-based track-instrument index per voice (overrides the names).
    """
    tracks = read_track_controllers(path)
    out: list[ControllerEvents | None] = []
    for v, name in enumerate(voice_names):
        t = track_of[v] if track_of is not None else voice_track(name)
        if t is None or not 0 <= t < len(tracks) or not tracks[t].present:
            out.append(None)
            continue
        out.append(tracks[t].scaled_time(speed))
    return out


def file_end_s(path, speed: float = 1.0) -> float:
    """Time of the file's last event (seconds / speed)."""
    from midi_ddsp.io.midi import _parse

    return float(_parse(path).get_end_time()) / float(speed)


__all__ = ["StepCurve", "ControllerCurves", "ControllerEvents", "read_track_controllers", "controllers_for_voices",
           "voice_track", "file_end_s", "GM_DEFAULTS", "DEFAULT_BEND_RANGE"]
