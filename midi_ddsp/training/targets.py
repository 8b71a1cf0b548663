"""Dump training targets for the upper levels: frame-level synthesis parameters for every cached piece.

The parameters come either from a trained analysis model (``analysis_path``) or, with ``analysis_path=None``,
straight from the audio's spectrum (:func:`midi_ddsp.synthesis.ddsp.inversion.measure_controls`: no model,
any sample rate; the instruments' own spectral envelopes). Then the raw per-note expression controls, a
ControlNormalizer fitted on the training split, and the normalised controls in the performance level's data
format::

    <out_dir>/params/<id>.npz       amplitude [F], harmonic_distribution [F, H], noise_magnitudes [F, K]
                                    (float16), raw_controls [N, 6] (float32)
    <out_dir>/notes/<id>.npz        pitch, onset_s, offset_s, velocity [N], instrument_id (), controls [N, 6]
                                    (normalised), the performance level's training data
    <out_dir>/notes/split.json      piece id -> "train" | "valid" | "test"
    <out_dir>/control_normalizer.safetensors
    <out_dir>/targets.json          how the targets were made (source, sample rate, sizes)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_weights, save_weights
from ..data.cache import audio_path, load_features, load_manifest
from ..io.audio import read_audio
from ..note_level.expression import ControlNormalizer, extract_controls
from ..note_level.frames import notes_to_frames
from ..note_level.notes import Note, NoteSequence
from ..instruments import by_id
from ..synthesis.analysis import AnalysisModel
from ..synthesis.loading import load_analysis
from ..synthesis.ddsp.features import log_mel
from ..synthesis.sizes import n_harmonics_for, n_noise_bands_for


def piece_sequence(features: dict) -> NoteSequence:
    """The annotated notes of a cached piece."""
    inst = by_id(int(features["instrument_id"])).name
    notes = [Note(int(p), float(a), float(b), int(v), inst) for p, a, b, v in
             zip(features["note_pitch"], features["note_onset_s"], features["note_offset_s"], features["note_velocity"])]
    return NoteSequence(tuple(notes), inst)


def piece_f0(features: dict) -> np.ndarray:
    """Ground-truth f0 where the corpus knows it, else the tracker's, [F] Hz."""
    return features["true_f0_hz"] if "true_f0_hz" in features else features["f0_hz"]


@torch.no_grad()
def analyse_piece(model: AnalysisModel, features: dict, audio: np.ndarray, sample_rate: int,
                  frame_rate: int = 250) -> dict[str, np.ndarray]:
    f0 = torch.from_numpy(piece_f0(features).astype(np.float32))[None, :, None]
    n = f0.shape[1]
    loud = torch.from_numpy(features["loudness_db"].astype(np.float32))[None, :n, None]
    mel = log_mel(torch.from_numpy(audio)[None], sample_rate, frame_rate=frame_rate, n_mels=model.n_mels)[:, :n] \
        if model.n_mels else None
    inst = torch.tensor([int(features["instrument_id"])])
    p = model(f0, loud, inst, mel, float(sample_rate), float(frame_rate))
    return {"amplitude": p.amplitude[0, :, 0].numpy(), "harmonic_distribution": p.harmonic_distribution[0].numpy(),
            "noise_magnitudes": p.noise_magnitudes[0].numpy(), "f0_hz": f0[0, :, 0].numpy()}


def measure_piece(features: dict, audio: np.ndarray, sample_rate: int, n_harmonics: int, n_noise_bands: int,
                  frame_rate: int = 250) -> dict[str, np.ndarray]:
    """Model-free parameters of one cached piece (the instrument's lowest note sets the windows)."""
    from ..synthesis.ddsp.inversion import measure_controls

    f0 = piece_f0(features).astype(np.float64)
    lowest = by_id(int(features["instrument_id"])).lowest_hz
    m = measure_controls(audio, f0, sample_rate, frame_rate, n_harmonics, n_noise_bands, lowest_hz=lowest)
    return {"amplitude": m.amplitude, "harmonic_distribution": m.harmonic_distribution,
            "noise_magnitudes": m.noise_magnitudes, "f0_hz": f0.astype(np.float32)}


def _write_piece_params(out_dir: Path, entry: dict, feats: dict, params: dict[str, np.ndarray]) -> np.ndarray:
    """Raw note controls of one piece's parameters; writes its params npz. Returns raw controls [N, 6]."""
    frames = notes_to_frames(piece_sequence(feats), len(params["amplitude"]))
    raw = extract_controls(params["f0_hz"], params["amplitude"], params["harmonic_distribution"],
                           params["noise_magnitudes"], frames).astype(np.float32)
    path = out_dir / "params" / f"{_safe(entry['id'])}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, raw_controls=raw,
             **{k: params[k].astype(np.float16) for k in ("amplitude", "harmonic_distribution", "noise_magnitudes")})
    tmp.replace(path)
    return raw


def _measure_job(args) -> tuple[str, np.ndarray]:
    cache_dir, out_dir, entry, sample_rate, n_harmonics, n_noise_bands = args
    done = Path(out_dir) / "params" / f"{_safe(entry['id'])}.npz"
    if done.is_file():  # an interrupted dump resumes (files are written whole, see _write_piece_params)
        with np.load(done) as z:
            return entry["id"], z["raw_controls"]
    feats = load_features(cache_dir, entry)
    audio, _ = read_audio(audio_path(cache_dir, entry), sample_rate)
    params = measure_piece(feats, audio, sample_rate, n_harmonics, n_noise_bands)
    return entry["id"], _write_piece_params(Path(out_dir), entry, feats, params)


def dump_targets(cache_dir: str | Path, analysis_path: str | Path | None, out_dir: str | Path,
                 split_of: Callable[[dict], str], progress: bool = True, n_harmonics: int | None = None,
                 n_noise_bands: int | None = None, n_workers: int = 1) -> dict:
    """Write the targets described in the module docstring. Returns a summary dict.

    ``analysis_path`` None measures the parameters from the audio (``n_harmonics``, ``n_noise_bands``: None
    derives them from the cache's rate as a new synthesizer would; ``n_workers`` processes); else the analysis model's sizes and rate apply and must match the cache's.
    """
    from ..data.jobs import run_jobs

    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    (out_dir / "params").mkdir(parents=True, exist_ok=True)
    (out_dir / "notes").mkdir(parents=True, exist_ok=True)
    entries = load_manifest(cache_dir)
    sample_rate = cache_sample_rate(cache_dir)
    if analysis_path is None:
        n_harmonics = n_harmonics or n_harmonics_for(sample_rate)
        n_noise_bands = n_noise_bands or n_noise_bands_for(sample_rate)
        jobs = [(str(cache_dir), str(out_dir), e, sample_rate, n_harmonics, n_noise_bands) for e in entries]
        raw_of = dict(run_jobs(_measure_job, jobs, n_workers, "measure pieces", progress))
        source = {"source": "measured", "n_harmonics": n_harmonics, "n_noise_bands": n_noise_bands}
    else:
        model, _, config, _, _ = load_analysis(analysis_path)
        check_rate(int(config["sample_rate"]), sample_rate, analysis_path, cache_dir)
        source = {"source": str(analysis_path), "n_harmonics": int(config["n_harmonics"]),
                  "n_noise_bands": int(config["n_noise_bands"])}
        raw_of = {}
        for entry in tqdm(entries, desc="analyse pieces", disable=not progress):
            feats = load_features(cache_dir, entry)
            audio, _ = read_audio(audio_path(cache_dir, entry), sample_rate)
            raw_of[entry["id"]] = _write_piece_params(out_dir, entry, feats,
                                                      analyse_piece(model, feats, audio, sample_rate))
    raw_all, inst_all, split = [], [], {}
    for entry in entries:
        pid, inst = entry["id"], int(entry["instrument_id"])
        split[pid] = split_of(entry)
        if split[pid] == "train":
            raw_all.append(raw_of[pid])
            inst_all.append(np.full(len(raw_of[pid]), inst))
    normalizer = ControlNormalizer.fit(np.concatenate(raw_all), np.concatenate(inst_all))
    save_weights(out_dir / "control_normalizer.safetensors", normalizer.to_dict(), "control_normalizer", {})
    for entry in entries:
        pid, inst = entry["id"], int(entry["instrument_id"])
        seq = piece_sequence(load_features(cache_dir, entry))
        controls = normalizer.normalize(np.nan_to_num(raw_of[pid]), inst).astype(np.float32)
        np.savez(out_dir / "notes" / f"{_safe(pid)}.npz", pitch=seq.pitches, onset_s=seq.onsets_s,
                 offset_s=seq.offsets_s, velocity=seq.velocities, instrument_id=np.int64(inst), controls=controls)
    (out_dir / "notes" / "split.json").write_text(json.dumps({_safe(k): v for k, v in split.items()}, indent=0))
    (out_dir / "targets.json").write_text(json.dumps({**source, "sample_rate": sample_rate}, indent=1))
    return {"pieces": len(entries), "train_notes": int(sum(len(r) for r in raw_all))}


def cache_sample_rate(cache_dir: str | Path) -> int:
    """The sample rate a feature cache was made at (Hz)."""
    cfg = json.loads((Path(cache_dir) / "manifest.json").read_text()).get("config", {})
    return int(cfg["sample_rate"])


def check_rate(model_rate: int, data_rate: int, model_path, data_path) -> None:
    """One clear error when a model and its data were made at different sample rates."""
    if int(model_rate) != int(data_rate):
        from ..checkpoint import CheckpointError

        raise CheckpointError(f"{model_path}: model runs at {model_rate} Hz but {data_path} holds "
                              f"{data_rate} Hz audio; use data and models of one sample rate")


def load_normalizer(out_dir: str | Path) -> ControlNormalizer:
    tensors, _, _ = load_weights(Path(out_dir) / "control_normalizer.safetensors", "control_normalizer")
    return ControlNormalizer.from_dict(tensors)


def _safe(piece_id: str) -> str:
    return piece_id.replace("/", "__")
