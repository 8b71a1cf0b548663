"""Dump training targets for the upper levels from a trained analysis model.

For every cached piece: the analysis model's synthesis parameters (frame level, float16) and the raw
per-note expression controls; then a ControlNormalizer fitted on the training split, and the normalised
controls in the performance level's data format::

    <out_dir>/params/<id>.npz       amplitude [F], harmonic_distribution [F, H], noise_magnitudes [F, K]
                                    (float16), raw_controls [N, 6] (float32)
    <out_dir>/notes/<id>.npz        pitch, onset_s, offset_s, velocity [N], instrument_id (), controls [N, 6]
                                    (normalised), the performance level's training data
    <out_dir>/notes/split.json      piece id -> "train" | "valid" | "test"
    <out_dir>/control_normalizer.safetensors
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
def analyse_piece(model: AnalysisModel, features: dict, audio: np.ndarray, sample_rate: int = 16000,
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


def dump_targets(cache_dir: str | Path, analysis_path: str | Path, out_dir: str | Path,
                 split_of: Callable[[dict], str], progress: bool = True) -> dict:
    """Write the targets described in the module docstring. Returns a summary dict."""
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    (out_dir / "params").mkdir(parents=True, exist_ok=True)
    (out_dir / "notes").mkdir(parents=True, exist_ok=True)
    model = load_analysis(analysis_path)[0]
    entries = load_manifest(cache_dir)
    raw_all, inst_all, split, per_piece = [], [], {}, {}
    for entry in tqdm(entries, desc="analyse pieces", disable=not progress):
        feats = load_features(cache_dir, entry)
        audio, _ = read_audio(audio_path(cache_dir, entry), 16000)
        params = analyse_piece(model, feats, audio)
        seq = piece_sequence(feats)
        frames = notes_to_frames(seq, len(params["amplitude"]))
        raw = extract_controls(params["f0_hz"], params["amplitude"], params["harmonic_distribution"],
                               params["noise_magnitudes"], frames).astype(np.float32)
        pid = entry["id"]
        np.savez(out_dir / "params" / f"{_safe(pid)}.npz", raw_controls=raw,
                 **{k: params[k].astype(np.float16) for k in ("amplitude", "harmonic_distribution", "noise_magnitudes")})
        split[pid] = split_of(entry)
        per_piece[pid] = (seq, raw, int(feats["instrument_id"]))
        if split[pid] == "train":
            raw_all.append(raw)
            inst_all.append(np.full(len(raw), int(feats["instrument_id"])))
    normalizer = ControlNormalizer.fit(np.concatenate(raw_all), np.concatenate(inst_all))
    save_weights(out_dir / "control_normalizer.safetensors", normalizer.to_dict(), "control_normalizer", {})
    for pid, (seq, raw, inst) in per_piece.items():
        controls = normalizer.normalize(np.nan_to_num(raw), inst).astype(np.float32)
        np.savez(out_dir / "notes" / f"{_safe(pid)}.npz", pitch=seq.pitches, onset_s=seq.onsets_s,
                 offset_s=seq.offsets_s, velocity=seq.velocities, instrument_id=np.int64(inst), controls=controls)
    (out_dir / "notes" / "split.json").write_text(json.dumps({_safe(k): v for k, v in split.items()}, indent=0))
    return {"pieces": len(per_piece), "train_notes": int(sum(len(r) for r in raw_all))}


def load_normalizer(out_dir: str | Path) -> ControlNormalizer:
    tensors, _, _ = load_weights(Path(out_dir) / "control_normalizer.safetensors", "control_normalizer")
    return ControlNormalizer.from_dict(tensors)


def _safe(piece_id: str) -> str:
    return piece_id.replace("/", "__")
