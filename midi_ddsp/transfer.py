"""Timbre transfer: a monophonic recording's f0 and loudness drive another instrument (DDSP's classic trick).

f0 + periodicity confidence and A-weighted loudness are measured on the model's frame grid; note frames are
detected (box-smoothed confidence² x (loudness + 80 dB) above its mean); the note frames' loudness mean/std
can be mapped onto the instrument's statistics; f0 is shifted by whole octaves; the f0 + loudness decoder
makes synthesis parameters window by window (receptive-field margins) and the streaming synthesizer renders
them seam-free.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .checkpoint import CheckpointError
from . import limits
from .errors import MidiDDSPError, MidiDDSPWarning
from .extraction import at_model_rate, windowed_f0, windowed_loudness
from .generation import receptive_field
from .instruments import Instrument
from .model_folder import TRANSFER_FILE
from .note_level.frames import notes_to_frames
from .note_level.notes import N_CONTROLS, Note, NoteSequence, Performance
from .rendering import VoiceBank
from .results import TransferResult
from .synthesis.ddsp.functional import hz_to_midi
from .synthesis.params import SynthParams

# Loudness statistics used when the checkpoint has none and no generator can measure them (A-weighted dB as
# a_weighted_loudness reads it; 0 dB is about a -20 dBFS sine).
DEFAULT_LOUDNESS_MEAN_DB = -20.0
DEFAULT_LOUDNESS_STD_DB = 8.0
MAX_MIDI = 110  # f0 is capped here after octave shifts
SILENT_DB = -70.0  # A-weighted loudness (dB) below which a recording counts as silent
MIN_PITCHED_SHARE = 0.1  # of the sounding frames: below it the recording is warned as not pitched


def detect_notes(conf: np.ndarray, loud_db: np.ndarray) -> np.ndarray:
    """``[frames]`` bool: frames inside notes (smoothed confidence² weighted by level, above its mean)."""
    from scipy.ndimage import uniform_filter1d

    score = uniform_filter1d(conf.astype(np.float64) ** 2, 40, mode="nearest") * (loud_db + 80.0)
    return score > max(np.mean(loud_db + 80.0), 1e-6)


def content_warnings(conf: np.ndarray, loud_db: np.ndarray) -> list[str]:
    """What is wrong with a recording as input to timbre transfer: silent (A-weighted loudness never above
    ``SILENT_DB``), or without pitched content (under ``MIN_PITCHED_SHARE`` of its sounding frames, those
    within 40 dB of the loudest, with a periodicity confidence of at least 0.5: white noise has none, a
    melody most). Transfer follows the recording's pitch: from noise it makes a buzz."""
    if loud_db.size == 0 or float(loud_db.max()) < SILENT_DB:
        return [f"the recording is silent (loudness below {SILENT_DB:.0f} dB): the output is silent too"]
    sounding = loud_db > float(loud_db.max()) - 40.0
    share = float(np.mean(conf[sounding] >= 0.5))
    if share < MIN_PITCHED_SHARE:
        return [f"the recording has almost no pitched content ({100 * share:.0f}% of its sounding frames are "
                f"periodic): timbre transfer follows a melody's pitch, from this it makes a buzz (give a "
                f"monophonic recording of a pitched instrument or voice)"]
    return []


def instrument_stats(model, instrument: str) -> dict[str, float]:
    """Typical loudness (``mean_db``, ``std_db``) and pitch (``mean_midi``) of an instrument (see
    :meth:`MidiDDSP.instrument_stats`)."""
    inst = model._instrument(instrument)
    loud = model.transfer_stats.get("loudness_stats", {}).get(inst.name)
    pitch = model.transfer_stats.get("pitch_stats", {}).get(inst.name)
    out = {"mean_midi": (inst.low + inst.high) / 2.0, "mean_db": DEFAULT_LOUDNESS_MEAN_DB,
           "std_db": DEFAULT_LOUDNESS_STD_DB}
    if loud is None:
        out.update(_measured_stats(model, inst))
    else:
        out.update({"mean_db": float(loud["mean_db"]), "std_db": float(loud.get("std_db", DEFAULT_LOUDNESS_STD_DB))})
    if pitch is not None:
        out["mean_midi"] = float(pitch["mean_midi"])
    return out


def _measured_stats(model, inst: Instrument) -> dict[str, float]:
    """Loudness of a short scale rendered by the synthesis generator (mid controls, temperature 0)."""
    cache = model._derived_stats
    if inst.name in cache:
        return cache[inst.name]
    from .synthesis.ddsp.features import a_weighted_loudness

    centre = (inst.low + inst.high) // 2
    notes = [Note(centre + d, 0.5 * i, 0.5 * i + 0.45, 90) for i, d in enumerate((-5, -3, -1, 0, 2, 4, 5, 7))]
    perf = Performance(NoteSequence(tuple(notes), inst.name), np.full((len(notes), N_CONTROLS), 0.5))
    n = int(math.ceil((notes[-1].offset_s + 0.5) * model.frame_rate))
    params = model.synth_params([perf], temperature=0.0, seed=0, n_frames=n, progress=False)
    audio = model.audio(params, [inst.name], reverb=False, seed=0, progress=False)
    with torch.inference_mode():
        loud = a_weighted_loudness(torch.from_numpy(audio), model.sample_rate, model.frame_rate)[0, :, 0].numpy()
    on = notes_to_frames(perf.sequence, n, model.frame_rate).note_index >= 0
    vals = loud[:len(on)][on[:len(loud)]]
    stats = {"mean_db": float(np.mean(vals)), "std_db": float(max(np.std(vals), 1.0))} if vals.size else {}
    cache[inst.name] = stats
    return stats


def transfer(model, audio: np.ndarray, sample_rate: int, instrument: str, octave_shift: int = 0,
             auto_octave: bool = False, loudness_shift_db: float = 0.0, dry: bool = False, adjust: bool = True,
             quiet_db: float = 20.0, seed: int = 0, peak: float | None = None) -> TransferResult:
    """See :meth:`MidiDDSP.transfer`."""
    if model.transfer_model is None:
        raise CheckpointError(f"{model.path}: no {TRANSFER_FILE} (the timbre-transfer model) in the model folder")
    inst = model._instrument(instrument)
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise MidiDDSPError("the recording is empty")
    if not np.all(np.isfinite(x)):
        raise MidiDDSPError("the recording holds non-finite samples")
    limits.check_transfer_input(x.size, sample_rate)
    sr, fr, hop = model.sample_rate, model.frame_rate, model.hop
    x = at_model_rate(x, sample_rate, sr)
    n_in = x.shape[0]
    n_frames = -(-n_in // hop)
    x = np.pad(x, (0, n_frames * hop - n_in))
    f0, conf = windowed_f0(x, sr, fr, n_frames)
    loud = windowed_loudness(x, sr, fr, n_frames)

    note_on = detect_notes(conf, loud)
    for m in content_warnings(conf, loud):
        warnings.warn(m, MidiDDSPWarning, stacklevel=3)
    stats = instrument_stats(model, inst.name)
    shift = int(octave_shift)
    if auto_octave and note_on.any():
        mean_midi = float(np.mean(hz_to_midi(torch.from_numpy(f0[note_on].astype(np.float32))).numpy()))
        target = float(stats["mean_midi"])
        shift += min(range(-4, 5), key=lambda k: abs(mean_midi + 12 * (shift + k) - target))
    f0 = np.minimum(f0 * 2.0 ** shift, 440.0 * 2 ** ((MAX_MIDI - 69) / 12)).astype(np.float32)
    loud = loud.astype(np.float64)
    if adjust and note_on.sum() > 1:
        mu, sd = loud[note_on].mean(), loud[note_on].std()
        ratio = float(np.clip(stats["std_db"] / max(sd, 1e-3), 0.5, 2.0))
        loud = (loud - mu) * ratio + stats["mean_db"]
    from scipy.ndimage import uniform_filter1d

    on_smooth = uniform_filter1d(note_on.astype(np.float64), 10, mode="nearest")
    loud = loud - float(quiet_db) * (1.0 - on_smooth) + float(loudness_shift_db)
    loud = np.maximum(loud, -80.0).astype(np.float32)

    params, out = _decode_and_render(model, inst, f0, loud, n_frames, seed, not dry)
    out = out[:n_in]
    top = float(np.max(np.abs(out))) if out.size else 0.0
    if peak is not None and top > peak:
        out = out * np.float32(peak / top)
    return TransferResult(out, sr, params, f0, conf, loud, note_on, shift)


def _decode_and_render(model, inst: Instrument, f0: np.ndarray, loud: np.ndarray, n_frames: int,
                       seed: int, reverb: bool) -> tuple[SynthParams, np.ndarray]:
    """The f0 + loudness decoder window by window (receptive-field margins, exact) and the streaming
    synthesizer behind it: (params, audio ``[n_frames * hop]``)."""
    net = model.transfer_model
    ids = torch.tensor([inst.id])
    rf = receptive_field(net)
    L = max(int(model.window_s * model.frame_rate), 4 * rf)
    bank = VoiceBank(model.transfer_synth, [inst.id], model.hop, model.sample_rate, seed, reverb)
    f0_t = torch.from_numpy(f0)[None, :, None]
    loud_t = torch.from_numpy(loud)[None, :, None]
    pieces, audio = [], []
    with torch.inference_mode():
        for a in range(0, n_frames, L):
            b = min(a + L, n_frames)
            ta, tb = max(0, a - rf), min(n_frames, b + rf)
            p = net(f0_t[:, ta:tb], loud_t[:, ta:tb], ids, None, float(model.sample_rate), model.frame_rate)
            p = p.frames(a - ta, b - ta)
            audio += bank.process([p])
            pieces.append(p)
        audio += bank.flush()
    out = np.concatenate(audio) if audio else np.zeros(0, np.float32)
    return SynthParams.cat(pieces), out


__all__ = ["transfer", "instrument_stats", "detect_notes"]
