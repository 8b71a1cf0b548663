"""Synthesis-level evaluation on the corpus test split (issue 5's figures).

    python eval/eval_synthesis.py --cache-dir cache/corpus48 --targets-dir runs/targets48 \
        --analysis checkpoints/analysis.safetensors --transfer checkpoints/transfer.safetensors \
        --generator checkpoints/generator.safetensors [--clips 48] [--json out.json] [--listen DIR]

Prints, for 4 s test clips: resynthesis spectral loss of both analysis models; for the synthesis generator
given the true notes and true expression controls: spectral loss against the real audio, pitch accuracy of
the rendered audio (tracker within 50 cents of the note), and realism measures next to the same measures
on the real audio: harmonic-to-noise ratio inside notes, f0 micro-variation, high-frequency transient at
note changes (clicks/blips), release time after notes followed by rests.

The ``curve_*`` figures measure the f0 curves themselves (the performer's f0 for the real audio, the sampled
f0 for the generated one) instead of tracking the audio: the tracker makes octave errors on some real
samples (a bassoon's weak fundamental, legato overlaps where the previous note still rings), which caps
the audio pitch accuracy of the real recordings themselves near 0.9.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from midi_ddsp.data.datamodules import SynthesisDataModule
from midi_ddsp.io.audio import write_audio
from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness, estimate_f0, log_mel
from midi_ddsp.synthesis.ddsp.losses import MultiScaleSpectralLoss
from midi_ddsp.synthesis.ddsp.metrics import (f0_micro_variation_cents, harmonic_to_noise_ratio, release_time_s,
                                              transient_ratio_db)
from midi_ddsp.synthesis.generator import GeneratorInputs
from midi_ddsp.synthesis.loading import load_analysis, load_generator
from midi_ddsp.synthesis.sizes import spectral_fft_sizes
from midi_ddsp.training.targets import cache_sample_rate, check_rate
from midi_ddsp.training.generator_data import GeneratorClipDataset

FR = 250


def pitch_accuracy(audio: np.ndarray | None, note_pitch: np.ndarray, in_note: np.ndarray,
                   f0: np.ndarray | None = None, SR: int = 48000) -> float:
    """Fraction of inner note frames whose f0 (tracked from ``audio``, or ``f0`` as given) is within 50 cents
    of the note."""
    if f0 is None:
        f0, _ = estimate_f0(audio, SR, FR)
    n = min(f0.size, note_pitch.size)
    inner = in_note[:n] & np.convolve(in_note[:n], np.ones(11), "same").astype(int).__ge__(11)
    if not inner.any():
        return float("nan")
    cents = 1200 * np.log2(np.maximum(f0[:n], 1e-3) / (440 * 2 ** ((note_pitch[:n] - 69) / 12)))
    return float((np.abs(cents[inner]) <= 50).mean())


def clip_measures(audio: np.ndarray, item: dict, f0_curve: np.ndarray, SR: int) -> dict:
    """Measures of one clip's audio; ``f0_curve`` [frames] Hz is the f0 it was made with (the performance's
    own f0 for real audio, the sampled f0 for generated audio), measured without a tracker's errors."""
    in_note = item["in_note"][:, 0].numpy() > 0.5
    note_pitch = item["frame_pitch"].numpy()
    ni = item["note_index"].numpy()
    f0, _ = estimate_f0(audio, SR, FR)
    onsets = np.flatnonzero(item["note_features"][:, 1].numpy() > 0.5)
    offsets = np.flatnonzero(item["note_features"][:, 2].numpy() > 0.5)
    loud = a_weighted_loudness(torch.from_numpy(audio)[None], SR)[0, :, 0].numpy()
    rest_after = [o for o in offsets if not in_note[o + 1:o + 1 + int(0.5 * FR)].any() and o + int(0.5 * FR) < in_note.size]
    return {
        "pitch_acc": pitch_accuracy(audio, note_pitch, in_note, SR=SR),
        "hnr_db": harmonic_to_noise_ratio(audio, item["true_f0_hz"][:, 0].numpy(), SR, FR, mask=in_note),
        "f0_var_cents": f0_micro_variation_cents(f0, ni),
        "curve_pitch_acc": pitch_accuracy(None, note_pitch, in_note, f0_curve),
        "curve_f0_var_cents": f0_micro_variation_cents(f0_curve[:ni.size], ni[:f0_curve.size]),
        "onset_transient_db": transient_ratio_db(audio, onsets[onsets > 0] * (SR // FR), SR),
        "release_s": release_time_s(loud, np.array(rest_after), FR, max_s=0.5),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache-dir", default="cache/corpus48")
    p.add_argument("--targets-dir", default="runs/targets48")
    p.add_argument("--analysis", default="checkpoints/analysis.safetensors")
    p.add_argument("--transfer", default="checkpoints/transfer.safetensors")
    p.add_argument("--generator", default="checkpoints/generator.safetensors")
    p.add_argument("--clips", type=int, default=48, help="number of 4 s test clips (spread over the split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all-pieces", action="store_true",
                   help="evaluate every piece of the cache (a held-out folder), not its hashed test split")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--listen", default=None, help="write real / resynthesized / generated WAVs here")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.listen:
        Path(args.listen).mkdir(parents=True, exist_ok=True)

    SR = cache_sample_rate(args.cache_dir)
    split = dict(valid_fraction=0.0, test_fraction=1.0) if args.all_pieces else {}
    dm = SynthesisDataModule(args.cache_dir, batch_size=1, clip_s=4.0, **split)
    clips = GeneratorClipDataset(dm.dataset("test"), args.targets_dir)
    idx = np.linspace(0, len(clips) - 1, min(args.clips, len(clips))).astype(int)
    mss = MultiScaleSpectralLoss(spectral_fft_sizes(SR))
    models = {}
    for name, path in (("analysis", args.analysis), ("transfer", args.transfer)):
        if Path(path).is_file():
            loaded = load_analysis(path)
            check_rate(int(loaded.config["sample_rate"]), SR, path, args.cache_dir)
            models[name] = loaded[:2]
    gen = None
    if Path(args.generator).is_file():
        loaded = load_generator(args.generator)
        check_rate(int(loaded.config["sample_rate"]), SR, args.generator, args.cache_dir)
        gen = loaded[:2]
    rows = []
    g = torch.Generator().manual_seed(args.seed)
    for j, i in enumerate(idx):
        item = clips[int(i)]
        audio = item["audio"][None]
        inst = item["instrument_id"][None]
        f0 = item["true_f0_hz"][None]
        row = {"instrument": int(inst), "real": clip_measures(item["audio"].numpy(), item, f0[0, :, 0].numpy(), SR)}
        with torch.no_grad():
            loud = a_weighted_loudness(audio, SR)[:, :f0.shape[1]]
            for name, (model, synth) in models.items():
                mel = log_mel(audio, SR, n_mels=model.n_mels)[:, :f0.shape[1]] if model.n_mels else None
                params = model(f0, loud, inst, mel, float(SR))
                resynth = synth(params, inst, audio.shape[-1], SR, generator=g)
                row[f"{name}_mss"] = float(mss(resynth, audio))
                if args.listen and j < 8:
                    write_audio(Path(args.listen) / f"clip{j:02d}_{name}.wav", resynth[0].numpy(), SR)
            if gen is not None:
                model, synth = gen
                inputs = GeneratorInputs(item["features"][None], item["held_pitch"][None], item["in_note"][None], inst)
                params = model.generate(inputs, SR, FR, temperature=1.0, generator=g)
                out = synth(params, inst, audio.shape[-1], SR, generator=g)
                row["generator_mss"] = float(mss(out, audio))
                row["generated"] = clip_measures(out[0].numpy(), item, params.f0_hz[0, :, 0].numpy(), SR)
                if args.listen and j < 8:
                    write_audio(Path(args.listen) / f"clip{j:02d}_generated.wav", out[0].numpy(), SR)
        if args.listen and j < 8:
            write_audio(Path(args.listen) / f"clip{j:02d}_real.wav", item["audio"].numpy(), SR)
        rows.append(row)
        print(f"\rclip {j + 1}/{len(idx)}", end="", file=sys.stderr)
    print(file=sys.stderr)

    def agg(key, sub=None):
        vals = [r[sub][key] if sub else r[key] for r in rows if (sub is None and key in r) or (sub and sub in r)]
        vals = np.array(vals, dtype=float)
        return float(np.nanmean(vals)) if vals.size and np.isfinite(vals).any() else float("nan")

    summary = {"clips": len(rows)}
    for name in models:
        summary[f"{name}_resynthesis_mss"] = agg(f"{name}_mss")
    if gen is not None:
        summary["generator_mss"] = agg("generator_mss")
    for key in ("pitch_acc", "curve_pitch_acc", "hnr_db", "f0_var_cents", "curve_f0_var_cents",
                "onset_transient_db", "release_s"):
        summary[f"real_{key}"] = agg(key, "real")
        if gen is not None:
            summary[f"generated_{key}"] = agg(key, "generated")
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "clips": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
