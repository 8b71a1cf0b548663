"""Render MIDI through FluidSynth (a subprocess) to dry 16 kHz mono audio.

FluidSynth is run without reverb and chorus (``-R 0 -C 0``) so that the rendered audio is the dry
sampled instrument; the synthesis models learn their own reverb.  FluidSynth writes stereo, which is
averaged to mono here.

Timing facts that the rest of :mod:`midi_ddsp.data` relies on (measured, see tests/test_data_render.py):

* MIDI files are written with 2000 ticks per beat at 120 bpm, i.e. 0.25 ms per tick, so event times
  are exact to well below a frame (4 ms at 250 Hz).
* FluidSynth processes events at the start of each 64-sample block, so an event sounds up to one block
  (4 ms at 16 kHz) after its nominal time.
* The pitch-bend range is set explicitly with RPN 0 at the start of each channel, so a bend value maps to
  a known number of cents (:data:`BEND_RANGE_SEMITONES`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Ticks per quarter note of the MIDI files we write; with TEMPO_US this gives 0.25 ms per tick.
TICKS_PER_BEAT = 2000
#: Microseconds per quarter note (120 bpm). Tempo variation is baked into absolute event times instead.
TEMPO_US = 500_000
#: Pitch-bend range (semitones, each way) set with RPN 0 on every channel we use.
BEND_RANGE_SEMITONES = 2.0
#: Delay from a note-on to the first sound (-40 dB of the note's peak) in FluidSynth renders at 16 kHz with
#: FluidR3_GM, measured over all 13 instruments and their ranges: 5-10 ms, median about 7 ms (block
#: quantisation of events to 64 samples plus the samples' leading edge). Performances are shifted earlier
#: by this much so that the audio lines up with the annotated onsets and frame curves.
FLUIDSYNTH_LATENCY_S = 0.007

_SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


class RenderError(RuntimeError):
    """FluidSynth is missing, failed, or produced no audio."""


def fluidsynth_binary() -> str | None:
    """Path of the ``fluidsynth`` executable, or None when it is not installed."""
    return shutil.which("fluidsynth")


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """Return a General-MIDI soundfont path.

    Order: the ``path`` argument, the ``MIDI_DDSP_SOUNDFONT`` environment variable, then Debian's
    ``fluid-soundfont-gm`` locations.
    """
    candidates = []
    if path is not None:
        candidates.append(Path(path))
    env = os.environ.get("MIDI_DDSP_SOUNDFONT")
    if env:
        candidates.append(Path(env))
    candidates += [Path(p) for p in _SOUNDFONT_CANDIDATES]
    for c in candidates:
        if c.is_file():
            return c
    raise RenderError(
        "no General-MIDI soundfont found; install one with "
        "`apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm` "
        "or set MIDI_DDSP_SOUNDFONT=/path/to/file.sf2"
    )


def renderer_available() -> bool:
    """True when both the fluidsynth binary and a soundfont are present."""
    if fluidsynth_binary() is None:
        return False
    try:
        find_soundfont()
    except RenderError:
        return False
    return True


_KIND_CODES = {"program": 0, "cc": 1, "off": 2, "bend": 3, "on": 4}
# Codes double as the sort order of events that share a tick: setup first, note-offs before note-ons
# (so a repeated pitch re-strikes), controllers and bends before the note-on they shape.


@dataclass
class MidiEvent:
    """One channel event at an absolute time.

    kind: "on", "off", "cc", "bend", "program".  ``a``, ``b``: data (pitch/velocity, controller/value,
    program); for "bend" ``a`` is the signed bend value in [-8192, 8191].
    """

    time_s: float
    kind: str
    a: int = 0
    b: int = 0


@dataclass
class MidiTrack:
    """A monophonic line on one MIDI channel.

    Events are stored as parallel arrays (time in seconds, kind code, data a, data b) so that dense
    controller curves (a pitch-bend value every 4 ms) stay cheap. Order of insertion does not matter.
    """

    program: int
    channel: int = 0
    times_s: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    a: list = field(default_factory=list)
    b: list = field(default_factory=list)

    def add(self, time_s: float, kind: str, a: int = 0, b: int = 0) -> None:
        self.times_s.append(float(time_s))
        self.kinds.append(_KIND_CODES[kind])
        self.a.append(int(a))
        self.b.append(int(b))

    def extend(self, times_s, kind: str, a, b=0) -> None:
        """Add many events of one kind; ``a``/``b`` broadcast against ``times_s``."""
        t = np.asarray(times_s, dtype=np.float64).ravel()
        self.times_s.extend(t.tolist())
        self.kinds.extend([_KIND_CODES[kind]] * t.size)
        self.a.extend(np.broadcast_to(np.asarray(a, dtype=np.int64), t.shape).tolist())
        self.b.extend(np.broadcast_to(np.asarray(b, dtype=np.int64), t.shape).tolist())

    @classmethod
    def from_events(cls, program: int, events: list[MidiEvent], channel: int = 0) -> "MidiTrack":
        tr = cls(program=program, channel=channel)
        for e in events:
            tr.add(e.time_s, e.kind, e.a, e.b)
        return tr


def cents_to_bend(cents: np.ndarray | float, bend_range_semitones: float = BEND_RANGE_SEMITONES) -> np.ndarray:
    """Map cents to signed 14-bit pitch-bend values (clipped to [-8192, 8191])."""
    v = np.rint(np.asarray(cents, dtype=np.float64) / (100.0 * bend_range_semitones) * 8192.0)
    return np.clip(v, -8192, 8191).astype(np.int64)


def bend_to_cents(bend: np.ndarray | int, bend_range_semitones: float = BEND_RANGE_SEMITONES) -> np.ndarray:
    """Inverse of :func:`cents_to_bend` (exact for the values that function returns)."""
    return np.asarray(bend, dtype=np.float64) / 8192.0 * 100.0 * bend_range_semitones


def _varlen(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def seconds_to_ticks(t: np.ndarray | float) -> np.ndarray:
    """Absolute seconds -> MIDI ticks of the files we write (0.25 ms per tick)."""
    return np.rint(np.asarray(t, dtype=np.float64) * 1e6 / TEMPO_US * TICKS_PER_BEAT).astype(np.int64)


def write_midi(tracks: list[MidiTrack], path: str | os.PathLike, end_time_s: float,
               bend_range_semitones: float = BEND_RANGE_SEMITONES) -> None:
    """Write tracks to a type-1 Standard MIDI File with 0.25 ms ticks.

    Each track starts with: program change, RPN 0 = ``bend_range_semitones`` (pitch-bend range), RPN
    null, CC1 0 (no soundfont vibrato: all vibrato comes from our own pitch bends), CC64 0, CC11 127,
    bend 0; then its events. ``end_time_s`` places the end-of-track marker, where FluidSynth stops.
    """
    semis = int(bend_range_semitones)
    cents = int(round((bend_range_semitones - semis) * 100))
    end_tick = int(seconds_to_ticks(end_time_s))
    chunks = []
    tempo = TEMPO_US.to_bytes(3, "big")
    meta = b"\x00\xff\x51\x03" + tempo + _varlen(end_tick) + b"\xff\x2f\x00"
    chunks.append(b"MTrk" + len(meta).to_bytes(4, "big") + meta)
    for tr in tracks:
        ch = tr.channel & 0x0F
        setup = b"\x00" + bytes([0xC0 | ch, tr.program & 0x7F])
        for cc, val in ((101, 0), (100, 0), (6, semis), (38, cents), (101, 127), (100, 127),
                        (1, 0), (64, 0), (11, 127)):
            setup += b"\x00" + bytes([0xB0 | ch, cc, val])
        setup += b"\x00" + bytes([0xE0 | ch, 0x00, 0x40])
        body = bytearray(setup)
        if tr.times_s:
            ticks = np.maximum(seconds_to_ticks(np.asarray(tr.times_s)), 0)
            kinds = np.asarray(tr.kinds, dtype=np.int64)
            order = np.lexsort((np.arange(ticks.size), kinds, ticks))
            a = tr.a
            b = tr.b
            last = 0
            for i in order.tolist():
                tick = int(ticks[i])
                body += _varlen(tick - last)
                last = tick
                k = tr.kinds[i]
                if k == 4:
                    body += bytes([0x90 | ch, a[i] & 0x7F, min(max(b[i], 1), 127)])
                elif k == 2:
                    body += bytes([0x80 | ch, a[i] & 0x7F, 0])
                elif k == 1:
                    body += bytes([0xB0 | ch, a[i] & 0x7F, min(max(b[i], 0), 127)])
                elif k == 3:
                    v = min(max(a[i], -8192), 8191) + 8192
                    body += bytes([0xE0 | ch, v & 0x7F, (v >> 7) & 0x7F])
                else:
                    body += bytes([0xC0 | ch, a[i] & 0x7F])
        else:
            last = 0
        body += _varlen(max(end_tick - last, 0)) + b"\xff\x2f\x00"
        chunks.append(b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + len(chunks).to_bytes(2, "big") \
        + TICKS_PER_BEAT.to_bytes(2, "big")
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header + b"".join(chunks))
    os.replace(tmp, path)


def render_midi_file(midi_path: str | os.PathLike, sample_rate: int = 16000, soundfont: str | None = None,
                     gain: float = 0.5, timeout_s: float = 600.0) -> np.ndarray:
    """Render a MIDI file with FluidSynth; return mono float32 audio ``[n_samples]`` at ``sample_rate``.

    Dry render: reverb and chorus off. Stereo output is averaged to mono.
    """
    import soundfile as sf

    exe = fluidsynth_binary()
    if exe is None:
        raise RenderError("fluidsynth is not installed (apt-get install -y --no-install-recommends "
                          "fluidsynth fluid-soundfont-gm)")
    sf2 = find_soundfont(soundfont)
    with tempfile.TemporaryDirectory(prefix="midi_ddsp_render_") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain), "-r", str(int(sample_rate)),
               "-O", "float", "-T", "wav", "-F", str(out), str(sf2), str(midi_path)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout_s,
                              env={**os.environ, "LC_ALL": "C"})
        if proc.returncode != 0 or not out.is_file():
            raise RenderError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
        audio, sr = sf.read(str(out), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RenderError(f"fluidsynth wrote {sr} Hz, asked for {sample_rate} Hz")
    return audio.mean(axis=1).astype(np.float32)


def render_tracks(tracks: list[MidiTrack], end_time_s: float, sample_rate: int = 16000,
                  soundfont: str | None = None, gain: float = 0.5, midi_path: str | os.PathLike | None = None
                  ) -> np.ndarray:
    """Write ``tracks`` to MIDI (to ``midi_path`` when given, else a temporary file) and render them.

    Returns mono float32 audio of exactly ``round(end_time_s * sample_rate)`` samples.
    """
    n = int(round(end_time_s * sample_rate))
    with tempfile.TemporaryDirectory(prefix="midi_ddsp_mid_") as tmp:
        path = Path(midi_path) if midi_path is not None else Path(tmp) / "in.mid"
        write_midi(tracks, path, end_time_s)
        audio = render_midi_file(path, sample_rate=sample_rate, soundfont=soundfont, gain=gain)
    if audio.shape[0] >= n:
        return audio[:n]
    return np.pad(audio, (0, n - audio.shape[0]))
