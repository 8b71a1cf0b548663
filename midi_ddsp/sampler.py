"""The soundfont fallback (``--fallback-soundfont [SF2]``): whole songs, drums and pianos included.

Which tracks (:func:`fallback_tracks`): every drum track (channel 10), and every track whose GM program
has no model of its own and falls to the catch-all of :data:`midi_ddsp.io.midi.PROGRAM_TABLE` (pianos,
chromatic percussion, organs, guitars, basses, string ensembles, harp, timpani, choirs, synths, ethnic
instruments, sound effects: everything the table would otherwise play with violin/viola/cello/double
bass). Programs with a near model (muted trumpet, saxophones, piccolo, recorder, fiddle, brass sections,
...) stay with the neural voices, as do programs named in ``program_map``; with an instrument override
only the drums go to the sampler.

How (:func:`render_fallback`): each such track is written, with its notes, controllers, pitch bends and
program, to a temporary MIDI file (times scaled by ``speed``; ``pitch_offset`` applied to melodic
tracks, never to drums) and rendered by the FluidSynth command-line program at the model's sample rate,
dry (reverb and chorus off), through :func:`midi_ddsp.data.render.render_tracks`. Each track is one
stem, as long as the neural render (or longer when the sampler rings on), mixed with the neural stems.

Timing: FluidSynth starts an event at the start of its next 64-sample block, and a sample needs a few
milliseconds to rise: FluidR3's drum hits reached -20 dB of their peak 6.2 ms after the MIDI time at
16 kHz (all eight hits of ``eval/eval_controllers.py`` within 0.2 ms of that). The stems are moved earlier
by :data:`SAMPLER_LATENCY_S` (6 ms), which puts the hits within +-1 ms of their MIDI times, where the
neural voices' onsets also lie (the models were trained on soundfont renders shifted the same way).

Soundfont: the given file, else ``$MIDI_DDSP_SOUNDFONT``, else the system's General-MIDI soundfont
(``/usr/share/sounds/sf2/default-GM.sf2``, Debian's alternatives link, then ``FluidR3_GM.sf2``, ...).
Without the ``fluidsynth`` binary or any soundfont, one :class:`SamplerError` line says what to install.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from midi_ddsp.errors import MidiDDSPError

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)  # the two soundfonts reserved for evaluation are never picked on their own (pass one's path to use it)
SAMPLER_LATENCY_S = 0.006  # MIDI time -> the sampler's audible onset (measured, see the module docstring)
DEFAULT_GAIN = 0.5  # FluidSynth master gain (-g); the neural voices peak around the same level
TAIL_S = 2.0  # the sampler's release after the last note
AUTO = "auto"  # --fallback-soundfont with no file: the system soundfont


class SamplerError(MidiDDSPError):
    """The soundfont fallback cannot run: no fluidsynth binary, no soundfont, or FluidSynth failed."""


@dataclass(frozen=True)
class FallbackTrack:
    """A track the sampler plays: its index in ``pm.instruments`` (the reader's "track N" minus 1),
    label, GM program (0-based), drum flag and note count."""

    index: int
    label: str
    program: int
    is_drum: bool
    n_notes: int


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: ``path`` (must exist), else $MIDI_DDSP_SOUNDFONT, else the system GM soundfont.

    Raises:
        SamplerError: the given file is missing, or none is installed.
    """
    if path is not None and str(path) != AUTO:
        p = Path(path)
        if not p.is_file():
            raise SamplerError(f"{p}: soundfont not found (give an .sf2 file, or --fallback-soundfont alone "
                               f"for the system's General-MIDI soundfont)")
        return p
    env = os.environ.get("MIDI_DDSP_SOUNDFONT")
    for c in ([env] if env else []) + list(SOUNDFONT_CANDIDATES):
        if Path(c).is_file():
            return Path(c)
    raise SamplerError("no General-MIDI soundfont installed for --fallback-soundfont (apt-get install "
                       "fluid-soundfont-gm, or give FILE.sf2, or set MIDI_DDSP_SOUNDFONT)")


def check_sampler(soundfont: str | os.PathLike | None = None) -> Path:
    """Fail early (one line) when the fallback cannot run; returns the soundfont path."""
    if shutil.which("fluidsynth") is None:
        raise SamplerError("--fallback-soundfont needs the fluidsynth program, which is not installed "
                           "(apt-get install fluidsynth)")
    return find_soundfont(soundfont)


def is_fallback_program(program: int) -> bool:
    """True for GM programs (0-based) without a model of their own or a near one (see module docstring)."""
    from midi_ddsp.io.midi import EXACT_PROGRAMS, PROGRAM_TABLE, STRINGS

    return PROGRAM_TABLE[int(program)] == STRINGS and int(program) not in EXACT_PROGRAMS


def fallback_tracks(path, instrument_override: str | None = None,
                    program_map: Mapping[int, str] | None = None) -> list[FallbackTrack]:
    """The tracks of a MIDI file that the sampler renders (drums; catch-all programs unless overridden)."""
    from midi_ddsp.io.midi import _parse, _program_name

    pm = _parse(path)
    pmap = set(int(p) for p in (program_map or {}))
    out = []
    for t, inst in enumerate(pm.instruments):
        if not inst.notes:
            continue
        melodic_fallback = instrument_override is None and inst.program not in pmap and is_fallback_program(inst.program)
        if inst.is_drum or melodic_fallback:
            label = f"track {t + 1} ({inst.name.strip() or _program_name(inst.program, inst.is_drum)})"
            out.append(FallbackTrack(t, label, int(inst.program), bool(inst.is_drum), len(inst.notes)))
    return out


def render_fallback(path, tracks: list[FallbackTrack], sample_rate: int, n_samples: int | None = None,
                    soundfont: str | os.PathLike | None = None, speed: float = 1.0, pitch_offset: int = 0,
                    gain: float = DEFAULT_GAIN) -> np.ndarray:
    """Render ``tracks`` of a MIDI file through FluidSynth: float32 ``[len(tracks), samples]`` at
    ``sample_rate``, one stem per track, ``max(n_samples, last offset + TAIL_S)`` samples long.

    Raises:
        SamplerError: no fluidsynth or soundfont, or FluidSynth failed.
    """
    from midi_ddsp.data.render import MidiTrack, RenderError, render_tracks
    from midi_ddsp.io.midi import _parse

    sf2 = check_sampler(soundfont)
    pm = _parse(path)
    built, end = [], 0.0
    for k, tr in enumerate(tracks):
        inst = pm.instruments[tr.index]
        channel = 9 if tr.is_drum else [c for c in range(16) if c != 9][k % 15]
        mt = MidiTrack(program=int(inst.program), channel=channel)
        shift = 0 if tr.is_drum else int(pitch_offset)
        for n in inst.notes:
            p = n.pitch + shift
            if n.end <= n.start or not 0 <= p <= 127:
                continue
            mt.add(n.start / speed, "on", p, n.velocity)
            mt.add(n.end / speed, "off", p, 0)
            end = max(end, n.end / speed)
        for c in inst.control_changes:
            mt.add(c.time / speed, "cc", c.number, c.value)
        for b in inst.pitch_bends:
            mt.add(b.time / speed, "bend", b.pitch)
        built.append(mt)
    total = max(int(n_samples or 0), int(round((end + TAIL_S) * sample_rate)))
    lead = int(round(SAMPLER_LATENCY_S * sample_rate))
    stems = np.zeros((len(built), total), dtype=np.float32)
    for k, mt in enumerate(built):
        try:
            audio = render_tracks([mt], (total + lead) / sample_rate, sample_rate=int(sample_rate),
                                  soundfont=str(sf2), gain=gain)
        except RenderError as e:
            raise SamplerError(f"FluidSynth could not render {tracks[k].label}: {str(e).splitlines()[0]}") from None
        stems[k] = audio[lead:lead + total]
    return stems


__all__ = ["SamplerError", "FallbackTrack", "find_soundfont", "check_sampler", "is_fallback_program",
           "fallback_tracks", "render_fallback", "AUTO"]
