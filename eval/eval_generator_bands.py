"""Teacher-forced generator vs its training targets, per instrument: where in the spectrum it misses.

    python eval/eval_generator_bands.py [--generator checkpoints/generator.safetensors]
        [--cache-dir cache/corpus48f] [--targets-dir runs/targets48f] [--split valid|test]

On the validation (or test) clips of the feature cache, the generator runs with the true f0 and the notes' measured
controls (as in training) and its parameters are compared with the targets (``midi-ddsp dump-targets``):

- per instrument, the mean band-envelope error (``band_db_l1`` x 100: dB per half-octave band), the
  harmonic-profile error (``harmonic_db_l1`` x 60: dB) and the parameter L1;
- per instrument, the octave-band power (``band_powers`` in octaves 177 Hz-22.6 kHz, dB re. the
  target's total over the clips) of the harmonic and the noise part, generated and target: a partial or a noise
  floor too loud or too quiet shows as the difference of two rows.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

#: Octave bands 177 Hz - 22.6 kHz (centres 250 Hz .. 16 kHz, as eval_timbre's LTAS).
OCTAVE_CENTRES_HZ = (250, 500, 1000, 2000, 4000, 8000, 16000)


def octave_powers(params, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Summed over frames: ([B, 7] harmonic, [B, 7] noise) power in the octaves of OCTAVE_CENTRES_HZ."""
    from dataclasses import replace

    from midi_ddsp.synthesis.params import band_powers

    # octave bands from 125 / sqrt 2 Hz: band 0 holds everything below 177 Hz, bands 1..7 are the ones wanted
    parts = (replace(params, noise_magnitudes=torch.zeros_like(params.noise_magnitudes)),
             replace(params, amplitude=torch.zeros_like(params.amplitude)))
    return tuple(band_powers(p, sample_rate, 125 / np.sqrt(2), 1).sum(1)[:, 1:8].numpy() for p in parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator", default="checkpoints/generator.safetensors")
    ap.add_argument("--cache-dir", default="cache/corpus48f")
    ap.add_argument("--targets-dir", default="runs/targets48f")
    ap.add_argument("--split", default="valid", choices=("valid", "test"), help="clips of this split")
    args = ap.parse_args()

    from midi_ddsp.instruments import INSTRUMENTS
    from midi_ddsp.model_folder import load_generator
    from midi_ddsp.synthesis.params import SynthParams, band_db_l1, harmonic_db_l1, params_l1
    from midi_ddsp.training.generator_data import GeneratorDataModule
    from midi_ddsp.training.generator_task import GeneratorTask
    from midi_ddsp.training.targets import cache_sample_rate

    torch.set_num_threads(1)
    gen = load_generator(args.generator).model.eval()
    sr = float(cache_sample_rate(args.cache_dir))
    dm = GeneratorDataModule(cache_dir=args.cache_dir, targets_dir=args.targets_dir, batch_size=1)
    dm.setup("fit")
    errors, powers = defaultdict(list), defaultdict(lambda: np.zeros((4, len(OCTAVE_CENTRES_HZ))))
    with torch.inference_mode():
        for batch in dm._loader(args.split, shuffle=False, drop_last=False):
            inputs = GeneratorTask.inputs_from_batch(batch)
            got = gen.timbre_params(gen.conditioning(inputs), inputs, batch["true_f0_hz"], sr, 250.0)
            want = SynthParams(batch["true_f0_hz"], batch["amplitude"], batch["harmonic_distribution"],
                               batch["noise_magnitudes"], got.frame_rate)
            inst = int(batch["instrument_id"][0])
            errors[inst].append((100 * band_db_l1(got, want, sr).item(), 60 * harmonic_db_l1(got, want).item(),
                                 params_l1(got, want).item()))
            gh, gn = octave_powers(got, sr)
            th, tn = octave_powers(want, sr)
            powers[inst] += np.concatenate([gh, gn, th, tn])
    db = lambda x: 10 * np.log10(np.maximum(x, 1e-30))  # noqa: E731
    print(f"teacher-forced on {args.split} clips of {args.cache_dir}; generator {args.generator}")
    print(f"{'instrument':12s} clips  band dB  profile dB  params L1")
    means = []
    for i in sorted(errors):
        e = np.mean(errors[i], 0)
        means.append(e)
        print(f"{INSTRUMENTS[i].name:12s} {len(errors[i]):5d}  {e[0]:7.2f}  {e[1]:10.2f}  {e[2]:9.3f}")
    m = np.mean(means, 0)
    print(f"{'mean':12s} {'':5s}  {m[0]:7.2f}  {m[1]:10.2f}  {m[2]:9.3f}")
    centres = [f"{c / 1000:g}k" for c in OCTAVE_CENTRES_HZ]
    print("\noctave-band power, dB re. the target's total: generated / target, harmonic (h) and noise (n)")
    print(f"{'':16s}" + "".join(f"{c:>8s}" for c in centres))
    for i in sorted(powers):
        p = powers[i]
        total = p[2].sum() + p[3].sum()
        for label, row in zip(("gen h", "gen n", "tgt h", "tgt n"), p):
            name = INSTRUMENTS[i].name if label == "gen h" else ""
            print(f"{name:10s}{label:6s}" + "".join(f"{v:8.1f}" for v in db(row / total)))


if __name__ == "__main__":
    main()
