"""Rendering with MIDI controllers, exported performance files and the soundfont fallback.

Built only on :class:`~midi_ddsp.pipeline.MidiDDSP`'s public levels (``read``, ``perform``,
``synth_params``, ``audio``, ``render``). :func:`render_midi` is the one call the ``render`` command
makes; it returns exactly ``model.render(path, ...)`` when the file carries no controllers (or only
their reset values), is not an exported performance and no fallback track is asked for.

With controllers (:func:`apply_controllers`; the mapping is in :mod:`midi_ddsp.note_level.controllers`):

1. sustain lengthens the notes (on chordal tracks before they are split into voices, so held notes take voices
   of their own; :func:`pedal_intervals`), then the expression model performs them;
2. CC1 sets each note's vibrato control; the generator samples the f0 (pass 1);
3. pitch bend is added to that f0 and CC1's within-note shape rescales its vibrato; CC7/CC11 move the
   per-note volume controls; the generator predicts the timbre for the steered f0 and controls (pass 2,
   ``synth_params(..., f0_hz=...)``), so brightness and noise follow the bent pitch and the dynamics;
4. a frame-level gain (requested gain minus the change pass 2 made, per note) multiplies the harmonic
   amplitude and the noise; then the synthesizer renders.

An exported performance file (:mod:`midi_ddsp.io.midi_export`) is read back as such: its controls,
f0 (pitch bend) and loudness curve (CC11) are used as given (:func:`render_imported`).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from midi_ddsp.errors import MidiDDSPWarning, MidiReadError
from midi_ddsp.instruments import by_name
from midi_ddsp.io.controllers import ControllerEvents, controllers_for_voices, file_end_s, read_track_controllers
from midi_ddsp.note_level import controllers as nc
from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES, NoteSequence, Performance

VOLUME, VIBRATO = CONTROL_NAMES.index("volume"), CONTROL_NAMES.index("vibrato")
MAX_IMPORT_GAIN_DB = 40.0

try:  # where the pipeline's split puts them (results.py / rendering.py), else the single pipeline module
    from midi_ddsp.results import RenderResult
except ImportError:  # pragma: no cover
    from midi_ddsp.pipeline import RenderResult  # type: ignore
try:
    from midi_ddsp.rendering import mix_stems
except ImportError:  # pragma: no cover
    from midi_ddsp.pipeline import mix_stems  # type: ignore


@dataclass
class SongRenderResult(RenderResult):
    """A :class:`RenderResult` whose ``stems`` rows are the neural voices (``performances`` order) followed
    by the soundfont tracks; ``stem_labels`` names every row."""

    stem_labels: list[str] = field(default_factory=list)


@dataclass
class SteeredRender:
    """What :func:`apply_controllers` made: the performances as rendered (sustained notes, steered
    controls) and their synthesis parameters (``[1, F, ...]`` each), plus the frame gain (dB ``[F]`` per
    voice, None where none was applied)."""

    performances: list[Performance]
    params: list
    gain_db: list


def stem_labels(result) -> list[str]:
    """One label per stem row of a render result (voice names, then soundfont tracks)."""
    labels = getattr(result, "stem_labels", None)
    if labels:
        return list(labels)
    return [p.name or "voice" for p in result.performances]


def has_controllers(events: Sequence[ControllerEvents | None]) -> bool:
    return any(e is not None and e.present for e in events)


def pedal_intervals(path, speed: float = 1.0) -> dict[int, list[tuple[float, float]]]:
    """``{track index: sustain-pedal intervals (s, after speed)}`` of the tracks with a pedal."""
    end = file_end_s(path, speed)
    return {t: ev.scaled_time(speed).sustain_intervals(end) for t, ev in enumerate(read_track_controllers(path))
            if "sustain" in ev.present}


def sustain_voices(voices: Sequence[NoteSequence], events: Sequence[ControllerEvents | None], end_s: float
                   ) -> list[NoteSequence]:
    """Voices with CC64 applied (unchanged where a voice has no pedal)."""
    out = []
    for seq, ev in zip(voices, events):
        if ev is not None and "sustain" in ev.present:
            seq = nc.apply_sustain(seq, ev.sustain_intervals(max(end_s, seq.end_s)))
        out.append(seq)
    return out


def _db(x: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), 1e-4))


def _apply_gain(params, gain_db: np.ndarray):
    g = torch.from_numpy((10.0 ** (gain_db / 20.0)).astype(np.float32))[None, :, None]
    return params.__class__(params.f0_hz, params.amplitude * g, params.harmonic_distribution,
                            params.noise_magnitudes * g, params.frame_rate)


def apply_controllers(model, performances: Sequence[Performance], events: Sequence[ControllerEvents | None],
                      temperature: float = 1.0, seed: int = 0, top_p: float = 0.95, n_frames: int | None = None,
                      progress: bool | None = None) -> SteeredRender:
    """Steer performances with their controllers and make synthesis parameters (steps 2-4 of the module
    docstring; sustain is applied to the notes before, see :func:`sustain_voices`).

    Args:
        model: a MidiDDSP.
        performances: one per voice; events: the voice's controllers or None.
        n_frames: render length (default ``model.n_frames_for``).
    """
    perfs = list(performances)
    if len(events) != len(perfs):
        raise ValueError(f"{len(perfs)} performances but {len(events)} controller sets")
    fr = model.frame_rate
    n = int(n_frames) if n_frames is not None else model.n_frames_for(perfs)
    frames = [notes_to_frames(p.sequence, n, fr) for p in perfs]
    curves = [e.frames(n, fr) if e is not None else None for e in events]
    present = [c.present if c is not None else frozenset() for c in curves]
    controls = [np.array(p.controls, dtype=np.float64, copy=True) for p in perfs]

    vib_scale: list[np.ndarray | None] = [None] * len(perfs)
    for v, c in enumerate(curves):
        if "cc1" in present[v] and len(perfs[v]):
            controls[v][:, VIBRATO], vib_scale[v] = nc.steer_vibrato(controls[v][:, VIBRATO], c.cc1, frames[v])
    pass1 = [p.with_controls(c) for p, c in zip(perfs, controls)]
    p1 = model.synth_params(pass1, temperature=temperature, seed=seed, top_p=top_p, n_frames=n, progress=progress)

    requested: list[np.ndarray | None] = [None] * len(perfs)
    for v, c in enumerate(curves):
        use7, use11 = "cc7" in present[v], "cc11" in present[v]
        if (use7 or use11) and len(perfs[v]):
            g = nc.expression_gain_db(c.cc7 if use7 else None, c.cc11 if use11 else None)
            requested[v] = g
            row = by_name(perfs[v].instrument).id
            span = float(model.normalizer.high[row, VOLUME] - model.normalizer.low[row, VOLUME])
            controls[v][:, VOLUME] = nc.steer_volume(controls[v][:, VOLUME], nc.note_means(g, frames[v]), span)
    f0 = []
    changed = False
    for v, c in enumerate(curves):
        base = p1[v].f0_hz[0, :, 0].float().numpy()
        bend = c.bend_semitones if "bend" in present[v] else None
        if bend is not None or vib_scale[v] is not None:
            f0.append(nc.steer_f0(base, frames[v], bend, vib_scale[v]))
            changed = True
        else:
            f0.append(base)
    changed = changed or any(r is not None for r in requested)
    out_perfs = [p.with_controls(c) for p, c in zip(perfs, controls)]
    if changed:
        p2 = model.synth_params(out_perfs, temperature=temperature, seed=seed, top_p=top_p, f0_hz=f0, n_frames=n,
                                progress=progress)
    else:
        p2 = p1
    gains: list[np.ndarray | None] = [None] * len(perfs)
    for v, g in enumerate(requested):
        if g is None:
            continue
        a1 = _db(p1[v].amplitude[0, :, 0].float().numpy())
        a2 = _db(p2[v].amplitude[0, :, 0].float().numpy())
        delivered = nc.note_means(a2 - a1, frames[v])
        gains[v] = nc.frame_gain_db(g, delivered, frames[v])
        p2[v] = _apply_gain(p2[v], gains[v])
    return SteeredRender(out_perfs, list(p2), gains)


def render_imported(model, voices: Sequence[NoteSequence], imported, temperature: float = 1.0, seed: int = 0,
                    top_p: float = 0.95, progress: bool | None = None,
                    expression_temperature: float | None = None) -> SteeredRender:
    """Synthesis parameters for an exported performance file read back (controls, f0 and loudness as given;
    missing lanes filled by the models, see :mod:`midi_ddsp.io.midi_export`)."""
    controls = [np.asarray(iv.controls, dtype=np.float64) for iv in imported]
    missing = [bool(np.isnan(c).any()) for c in controls]
    if any(missing):
        prior = model.perform(list(voices), model.expression_temperature(temperature, expression_temperature), seed)
        controls = [np.where(np.isnan(c), p.controls, c) for c, p in zip(controls, prior)]
    perfs = [Performance(s, c) for s, c in zip(voices, controls)]
    fr = model.frame_rate
    n = model.n_frames_for(perfs)
    frames = [notes_to_frames(p.sequence, n, fr) for p in perfs]
    f0: list[np.ndarray | None] = []
    for iv, fm in zip(imported, frames):
        if iv.bend is None:
            f0.append(None)
        else:
            f0.append(nc.semitones_to_hz(nc.held_pitch(fm) + iv.bend.sample(n, fr)).astype(np.float32))
    if any(f is None for f in f0):
        sampled = model.synth_params(perfs, temperature=temperature, seed=seed, top_p=top_p, n_frames=n,
                                     progress=progress)
        f0 = [f if f is not None else s.f0_hz[0, :, 0].float().numpy() for f, s in zip(f0, sampled)]
    params = model.synth_params(perfs, temperature=temperature, seed=seed, top_p=top_p, f0_hz=f0, n_frames=n,
                                progress=progress)
    gains = [None] * len(perfs)
    for v, iv in enumerate(imported):
        if iv.loudness_db is None:
            continue
        target = iv.loudness_db.sample(n, fr).astype(np.float64)
        have = _db(params[v].amplitude[0, :, 0].float().numpy())
        ok = np.isfinite(target) & (have > -79.0)
        if not ok.any():
            continue
        g = np.where(ok, np.clip(target - have, -MAX_IMPORT_GAIN_DB, MAX_IMPORT_GAIN_DB), np.nan)
        idx = np.where(ok, np.arange(n), -1)
        idx = np.maximum.accumulate(idx)  # frames without a target hold the last constrained gain
        idx = np.where(idx < 0, np.flatnonzero(ok)[0], idx)
        gains[v] = g[idx]
        params[v] = _apply_gain(params[v], gains[v])
    return SteeredRender(perfs, list(params), gains)


def _filter_messages(messages: Sequence[str], labels: Sequence[str]) -> list[str]:
    return [m for m in messages if not any(m.startswith(label + ":") or m.startswith(label + " ") for label in labels)]


def render_midi(model, path, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
                temperature: float = 1.0, seed: int = 0, reverb: bool = True, impulse_response=None,
                top_p: float = 0.95, keep_params: bool = True, progress: bool | None = None,
                controllers: bool = True, fallback_soundfont=None, program_map=None,
                sample_rate: int | None = None, stems: bool = True, keep=None,
                expression_temperature: float | None = None) -> RenderResult:
    """A MIDI file -> audio with its controllers, an exported performance, and/or the soundfont fallback.

    Args:
        model: a MidiDDSP; path: the ``.mid``; instrument ... progress, keep, expression_temperature: as
            :meth:`MidiDDSP.render`.
        controllers: follow pitch bend, CC1/7/11/64 and read exported performance files (False: ignore them,
            ``--ignore-controllers``).
        fallback_soundfont: None (drums skipped, other programs mapped to the models, as before), ``"auto"``
            (the system's GM soundfont) or an ``.sf2`` path: drums and catch-all programs through FluidSynth
            (:mod:`midi_ddsp.sampler`).
        sample_rate: return the audio resampled to this rate (Hz; None: the model's), as ``model.render``.
        stems: as ``model.render`` (False: ``stems`` empty where the plain render applies; songs with
            controllers or a fallback keep them, they are mixed from them).
    Returns:
        ``model.render(path, ...)`` itself when nothing here applies; else a :class:`SongRenderResult`.
    """
    from midi_ddsp import sampler

    t0 = time.perf_counter()
    path = Path(path)
    kwargs = dict(instrument=instrument, pitch_offset=pitch_offset, speed=speed, temperature=temperature, seed=seed,
                  reverb=reverb, impulse_response=impulse_response, top_p=top_p, keep_params=keep_params,
                  progress=progress, keep=keep, expression_temperature=expression_temperature)
    fb_tracks = []
    if fallback_soundfont is not None:
        sampler.check_sampler(fallback_soundfont)
        fb_tracks = sampler.fallback_tracks(path, instrument, program_map)
    exported = False
    if controllers:
        from midi_ddsp.io.midi_export import is_performance_midi

        exported = is_performance_midi(path)
    if not fb_tracks and not controllers:
        return _resampled(model.render(path, **kwargs, stems=stems), sample_rate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiDDSPWarning)
        try:
            read = model.read(path, instrument, pitch_offset, speed, program_map,
                              pedal_intervals(path, speed) if controllers and not exported else None)
            voices, messages = list(read.voices), list(read.warnings)
        except MidiReadError as e:
            if e.reason != "drums_only" or not fb_tracks:
                raise
            voices, messages = [], []
    labels = [t.label for t in fb_tracks]
    if fb_tracks:
        keep = [not any(v.name == lb or v.name.startswith(lb + " voice ") for lb in labels) for v in voices]
        voices = [v for v, k in zip(voices, keep) if k]
        messages = _filter_messages(messages, labels)
    events = controllers_for_voices(path, [v.name for v in voices], speed) if controllers and voices else []
    use_ctrl = controllers and (exported or has_controllers(events))
    timings: dict[str, float] = {"read": time.perf_counter() - t0}
    if not use_ctrl and not fb_tracks:
        return _resampled(model.render(path, **kwargs, stems=stems), sample_rate)  # exactly today's render

    perfs, params, stems = [], [], np.zeros((0, 0), np.float32)
    if voices:
        t = time.perf_counter()
        if use_ctrl and exported:
            from midi_ddsp.io.midi_export import read_performance_midi

            steered = render_imported(model, voices, read_performance_midi(path, voices, speed), temperature, seed,
                                      top_p, progress, expression_temperature)
        elif use_ctrl:
            voices = sustain_voices(voices, events, file_end_s(path, speed))
            perf0 = model.perform(voices, model.expression_temperature(temperature, expression_temperature), seed, keep)
            steered = apply_controllers(model, perf0, events, temperature, seed, top_p, progress=progress)
        else:
            steered = None
        if steered is not None:
            perfs, params = steered.performances, steered.params
            stems = model.audio(params, [p.instrument for p in perfs], reverb=reverb,
                                impulse_response=impulse_response, seed=seed, progress=progress)
        else:  # only the fallback differs from today: the neural voices render as model.render does
            res = model.render(voices, **{**kwargs, "instrument": None, "pitch_offset": 0, "speed": 1.0})
            perfs, params, stems = res.performances, res.params or [], res.stems / np.float32(res.gain)
        timings["neural"] = time.perf_counter() - t
    rows, names = [stems], [p.name or "voice" for p in perfs]
    if fb_tracks:
        t = time.perf_counter()
        fb = sampler.render_fallback(path, fb_tracks, model.sample_rate, stems.shape[1] if stems.size else None,
                                     fallback_soundfont, speed, pitch_offset)
        n = max(fb.shape[1], stems.shape[1])
        rows = [np.pad(stems, ((0, 0), (0, n - stems.shape[1]))), np.pad(fb, ((0, 0), (0, n - fb.shape[1])))]
        names += [f"{tr.label} (soundfont)" for tr in fb_tracks]
        messages.append(f"{len(fb_tracks)} track{'s' if len(fb_tracks) > 1 else ''} rendered with the soundfont "
                        f"{sampler.find_soundfont(fallback_soundfont).name}: {', '.join(labels)}")
        timings["sampler"] = time.perf_counter() - t
    for m in messages:
        warnings.warn(m, MidiDDSPWarning, stacklevel=2)
    all_stems = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), np.float32)
    mix, all_stems, gain = mix_stems(all_stems)
    mix, all_stems = _trimmed(model, mix, all_stems, perfs)
    timings["total"] = time.perf_counter() - t0
    result = SongRenderResult(mix, all_stems, perfs, params if keep_params else None, model.sample_rate, gain,
                              messages, timings, names)
    return _resampled(result, sample_rate)


def _trimmed(model, mix, stems, perfs):
    """Mix and stems ending where the tail after the last neural note falls 60 dB below the peak (as
    ``model.render``; :func:`midi_ddsp.rendering.tail_end`)."""
    from midi_ddsp.rendering import TAIL_FADE_S, fade_out, tail_end

    if not mix.size:
        return mix, stems
    start = int(np.ceil(max((p.sequence.end_s for p in perfs), default=0.0) * model.sample_rate))
    fade = int(round(TAIL_FADE_S * model.sample_rate))
    end = tail_end(mix, start, float(np.max(np.abs(mix))), model.hop, fade=fade)
    mix, stems = mix[:end], stems[:, :end]
    fade_out(mix, end, fade)
    fade_out(stems, end, fade)
    return mix, stems


def _resampled(result, sample_rate):
    if sample_rate is None or int(sample_rate) == result.sample_rate:
        return result
    if hasattr(result, "resampled"):
        return result.resampled(int(sample_rate))
    raise ValueError("this RenderResult cannot be resampled; resample the audio yourself")  # pragma: no cover


__all__ = ["render_midi", "apply_controllers", "render_imported", "sustain_voices", "has_controllers",
           "SongRenderResult", "SteeredRender", "stem_labels"]
