"""Recording -> performance: how well notes and controls are recovered from audio, and how fast.

``python eval/eval_transcription.py [--instruments violin,flute,clarinet,cello | all] [--pieces 8]
[--seed 0] [--out docs/eval_transcription.json]``

1. **Notes.** Melodies of the corpus's *test* split (music21 files whose group hashes to "test", see
   :func:`midi_ddsp.data.datasets.split_of`) are performed by the humanising performer
   (:mod:`midi_ddsp.data.performer`: vibrato, swells, articulations, breaths, repeated notes re-articulated)
   and rendered by FluidSynth with FluidR3_GM at 44.1 kHz, dry. Each render is analysed by
   :func:`midi_ddsp.recording.analyze_recording_full` with the shipped model; note onset F1 with mir_eval
   (onset within 50 ms, pitch within 50 cents, offsets ignored) per instrument, and the recall of the
   repeated notes (same pitch as the note before, less than 150 ms after its end).
2. **Re-render.** The analysed performance is rendered by the model (seed 0, dry); the rendered audio's
   tracked pitch is compared with the *true* notes on their frames (within 50 cents, octave errors count as
   misses) and its A-weighted loudness with the recording's inside the true notes (Pearson r).
3. **Controls.** Performances with known controls (each control drawn uniformly in 0.1..0.9 per note, on
   short melodies around the instrument's typical pitch) are rendered by the model itself, analysed from
   the audio alone (notes too), and the measured controls of the notes that match a true note are compared
   with the set ones (Pearson r per control, pooled over instruments). Two references separate the analysis
   from the model: the controls read back from the render's own synthesis parameters (how closely the model
   obeyed the set controls) and the r between those and the controls measured from the audio (how well the
   analysis recovers what the audio holds).
4. **Speed.** Analyse time (features, transcription, controls) per second of audio, as x real time.

Runs in about 1 minute of one CPU core with the defaults (FluidSynth renders, 32 pieces, ~11 minutes of
audio); prints a table and writes the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_INSTRUMENTS = ("violin", "flute", "clarinet", "cello")
RENDER_RATE = 44100


# ---------------------------------------------------------------------------------------- the test set
def test_melodies(cache_dir: Path, max_files: int | None = None):
    """Melodies of the corpus's test split (parsed once, cached as JSON in ``cache_dir``)."""
    from midi_ddsp.data.corpus_sources import gather_melodies, music21_corpus_root, select_music21_files
    from midi_ddsp.data.datasets import split_of

    root = music21_corpus_root()
    files = select_music21_files(None, seed=0)
    files = [f for f in files if split_of(os.path.relpath(f, root)) == "test"]
    if max_files:
        files = files[:max_files]
    mels, _ = gather_melodies(files, cache_dir, n_workers=1, corpus_root=str(root), progress=False)
    return [m for m in mels if split_of(m.source.split("#")[0].split("@")[0]) == "test"]


def performed_set(instruments, pieces: int, seed: int, cache_dir: Path, piece_s=(14.0, 22.0)):
    """[(instrument, PerformedPiece)]: ``pieces`` test melodies per instrument, in its range."""
    from midi_ddsp.data.corpus import melody_fits
    from midi_ddsp.data.performer import MelodyTooShortError, PerformerConfig, perform
    from midi_ddsp.instruments import by_name

    mels = test_melodies(cache_dir)
    rng = np.random.default_rng(seed)
    cfg = PerformerConfig(min_duration_s=piece_s[0], max_duration_s=piece_s[1], shortest_piece_s=8.0)
    out = []
    for k, name in enumerate(instruments):
        inst = by_name(name)
        fits = [(m, s) for m in mels if (s := melody_fits(m, inst.low, inst.high)) is not None]
        order = rng.permutation(len(fits))
        got = 0
        for j in order:
            m, s = fits[j]
            try:
                piece = perform(m, inst, seed=int(seed * 1000 + k * 50 + got), transpose=s, config=cfg,
                                name=f"{inst.abbreviation}_{got}")
            except MelodyTooShortError:
                continue
            out.append((inst.name, piece, m.key))
            got += 1
            if got >= pieces:
                break
    return out


def render_piece(piece, sample_rate: int = RENDER_RATE) -> np.ndarray:
    from midi_ddsp.data.render import render_tracks

    return render_tracks(piece.to_tracks(), piece.duration_s, sample_rate=sample_rate)


# -------------------------------------------------------------------------------------------- metrics
def _hz(p):
    return 440.0 * 2.0 ** ((np.asarray(p, np.float64) - 69.0) / 12.0)


def onset_f1(ref_notes, est_seq) -> dict:
    """mir_eval note onset P/R/F (50 ms, 50 cents, offsets ignored) + recall of repeated reference notes."""
    import mir_eval

    rp, ra, rb = ref_notes
    ri = np.stack([ra, np.maximum(rb, ra + 1e-3)], 1)
    rep = np.zeros(len(rp), bool)
    rep[1:] = (rp[1:] == rp[:-1]) & (ra[1:] - rb[:-1] < 0.15)
    if len(est_seq) == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "repeated_recall": 0.0, "n_ref": int(len(rp)),
                "n_est": 0, "n_match": 0, "n_repeated": int(rep.sum()), "n_repeated_match": 0}
    ei = np.stack([est_seq.onsets_s, est_seq.offsets_s], 1)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ri, _hz(rp), ei, _hz(est_seq.pitches), onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None)
    match = mir_eval.transcription.match_notes(ri, _hz(rp), ei, _hz(est_seq.pitches), onset_tolerance=0.05,
                                               pitch_tolerance=50.0, offset_ratio=None)
    matched = np.zeros(len(rp), bool)
    matched[[i for i, _ in match]] = True
    return {"precision": float(p), "recall": float(r), "f1": float(f),
            "repeated_recall": float(matched[rep].mean()) if rep.any() else float("nan"),
            "n_ref": int(len(rp)), "n_est": int(len(est_seq)), "n_match": int(matched.sum()),
            "n_repeated": int(rep.sum()), "n_repeated_match": int(matched[rep].sum())}


def rerender_metrics(model, perf, recording_16k, true_notes, sample_rate) -> dict:
    """Pitch accuracy of the re-rendered audio on the true notes' frames; loudness r inside the notes."""
    from midi_ddsp.recording import _loudness
    from midi_ddsp.synthesis.ddsp.features import estimate_f0
    from midi_ddsp.recording import f0_range

    res = model.render(perf, seed=0, reverb=False, progress=False)
    y = res.mix
    sr = res.sample_rate
    fmin, fmax = f0_range(perf.instrument)
    f0, conf = estimate_f0(y, sr, fmin=fmin, fmax=min(fmax, 0.45 * sr))
    loud_y = _loudness(y, sr, 250.0)
    loud_x = _loudness(recording_16k, sample_rate, 250.0)
    rp, ra, rb = true_notes
    F = min(f0.size, loud_x.size, loud_y.size)
    pitch = np.zeros(F)
    for p, a, b in zip(rp, ra, rb):
        i0, i1 = int(round(a * 250)), min(F, int(round(b * 250)))
        # skip the first and last 30 ms of each note (attack / release transitions), as eval_synthesis does
        pitch[min(i1, i0 + 8):max(i0, i1 - 8)] = p
    on = pitch > 0
    midi = 69 + 12 * np.log2(np.maximum(f0[:F], 1e-3) / 440.0)
    acc = float(np.mean(np.abs(midi[on] - pitch[on]) < 0.5)) if on.any() else float("nan")
    lx, ly = loud_x[:F][on], loud_y[:F][on]
    r = float(np.corrcoef(lx, ly)[0, 1]) if on.sum() > 2 and lx.std() > 0 and ly.std() > 0 else float("nan")
    return {"pitch_accuracy": acc, "loudness_r": r}


# ------------------------------------------------------------------------------------------------ main
def eval_notes(model, items, do_rerender: bool) -> tuple[list[dict], float, float]:
    from midi_ddsp.io.audio import resample
    from midi_ddsp.recording import analyze_recording_full

    rows = []
    audio_s = analyse_s = 0.0
    for inst, piece, key in items:
        audio = render_piece(piece)
        n = piece.notes
        true = (np.asarray(n["pitch"]), np.asarray(n["onset_s"]), np.asarray(n["offset_s"]))
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = analyze_recording_full(model, audio, RENDER_RATE, inst)
        dt = time.perf_counter() - t0
        audio_s += audio.size / RENDER_RATE
        analyse_s += dt
        row = {"instrument": inst, "melody": key, "duration_s": round(audio.size / RENDER_RATE, 2),
               "analyse_s": round(dt, 3), "warnings": res.warnings + [str(w.message) for w in caught]}
        row.update(onset_f1(true, res.sequence))
        if do_rerender:
            x16 = resample(audio, RENDER_RATE, model.sample_rate)
            row.update(rerender_metrics(model, res.performance, x16, true, model.sample_rate))
        rows.append(row)
        print(f"  {inst:<11} {key[:40]:<40} F1 {row['f1']:.3f} (P {row['precision']:.2f} R {row['recall']:.2f}, "
              f"{row['n_est']}/{row['n_ref']} notes, repeated {row['repeated_recall']:.2f} of {row['n_repeated']})"
              + (f"  pitch {row['pitch_accuracy']:.3f} loud r {row['loudness_r']:.3f}" if do_rerender else ""),
              flush=True)
    return rows, audio_s, analyse_s


def control_recovery(model, instruments, n_notes: int = 24, seed: int = 0) -> dict:
    """Render performances with known controls via the model, analyse them from audio, Pearson r."""
    from midi_ddsp.instruments import by_name
    from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance
    from midi_ddsp.recording import analyze_recording_full

    rng = np.random.default_rng(seed)
    set_all, got_all, set_controls, known_all, own_all, own_matched, per_inst = [], [], [], [], [], [], {}
    for name in instruments:
        inst = by_name(name)
        centre = (inst.low + inst.high) // 2
        steps = rng.choice([-5, -3, -2, 2, 3, 4, 5, 7], n_notes)  # never a repeated pitch: one note each
        pitches = np.clip(centre + np.cumsum(steps) % 12 - 6, inst.low, inst.high)
        for i in range(1, n_notes):
            if pitches[i] == pitches[i - 1]:
                pitches[i] += 1 if pitches[i] < inst.high else -1
        notes, t = [], 0.4
        for p in pitches:
            d = float(rng.uniform(0.5, 0.9))
            notes.append(Note(int(p), t, t + d, 90, inst.name))
            t += d + float(rng.uniform(0.08, 0.2))
        seq = NoteSequence(tuple(notes), inst.name)
        controls = rng.uniform(0.1, 0.9, (n_notes, len(CONTROL_NAMES)))
        perf = Performance(seq, controls)
        res = model.render(perf, seed=0, reverb=False, progress=False)
        ana = analyze_recording_full(model, res.mix, res.sample_rate, inst.name)
        est = ana.performance
        # the same measurement on the true notes: what the control extractor gives without transcription errors
        known = model.extract_performance(ana.features.audio, ana.features.sample_rate, seq,
                                          f0_hz=ana.features.f0_hz, measured=True)
        known_all.append(known.controls)
        set_controls.append(controls)
        # and read from the rendered synthesis parameters themselves: how closely the model obeyed the controls
        own = model.extract_performance(res.mix, res.sample_rate, seq, params=res.params[0]).controls
        own_all.append(own)
        # pair each true note with the estimated note of the same pitch whose onset is within 50 ms
        pairs = []
        for i, n in enumerate(seq):
            d = np.abs(est.sequence.onsets_s - n.onset_s)
            j = int(np.argmin(d)) if len(est) else -1
            if j >= 0 and d[j] < 0.05 and est.sequence[j].pitch == n.pitch:
                pairs.append((i, j))
        a = np.array([controls[i] for i, _ in pairs])
        b = np.array([est.controls[j] for _, j in pairs])
        set_all.append(a)
        got_all.append(b)
        own_matched.append(np.array([own[i] for i, _ in pairs]))
        per_inst[inst.name] = {"matched_notes": len(pairs), "notes": n_notes,
                               "r": {c: _r(a[:, k], b[:, k]) for k, c in enumerate(CONTROL_NAMES)} if pairs else {}}
    A, B, O = np.concatenate(set_all), np.concatenate(got_all), np.concatenate(own_matched)
    A_all, B_true, B_own = np.concatenate(set_controls), np.concatenate(known_all), np.concatenate(own_all)
    return {"pooled_r": {c: _r(A[:, k], B[:, k]) for k, c in enumerate(CONTROL_NAMES)},
            "pooled_r_true_notes": {c: _r(A_all[:, k], B_true[:, k]) for k, c in enumerate(CONTROL_NAMES)},
            "pooled_r_render_params": {c: _r(A_all[:, k], B_own[:, k]) for k, c in enumerate(CONTROL_NAMES)},
            # measured from the audio vs read from the render's synthesis parameters (what the audio holds)
            "pooled_r_vs_rendered": {c: _r(O[:, k], B[:, k]) for k, c in enumerate(CONTROL_NAMES)},
            "matched_notes": int(A.shape[0]), "notes": int(A_all.shape[0]), "per_instrument": per_inst}


def _r(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instruments", default=",".join(DEFAULT_INSTRUMENTS), help="comma list, or 'all'")
    ap.add_argument("--pieces", type=int, default=8, help="test melodies per instrument")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None, help="model folder (default: the shipped checkpoints/)")
    ap.add_argument("--no-rerender", action="store_true")
    ap.add_argument("--no-controls", action="store_true")
    ap.add_argument("--control-instruments", default=",".join(DEFAULT_INSTRUMENTS))
    ap.add_argument("--cache-dir", help="where the parsed test melodies are cached",
                    default=str(Path(tempfile.gettempdir()) / "midi_ddsp_eval_transcription" / "melody_cache"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval_transcription.json"))
    args = ap.parse_args(argv)

    import torch

    from midi_ddsp.instruments import INSTRUMENTS
    from midi_ddsp.pipeline import MidiDDSP

    torch.set_num_threads(1)
    insts = [i.name for i in INSTRUMENTS] if args.instruments == "all" else args.instruments.split(",")
    t_start = time.perf_counter()
    model = MidiDDSP.from_pretrained(args.checkpoint)
    items = performed_set(insts, args.pieces, args.seed, Path(args.cache_dir))
    print(f"{len(items)} test pieces; analysing (model at {model.sample_rate} Hz)", flush=True)
    rows, audio_s, analyse_s = eval_notes(model, items, not args.no_rerender)

    summary = {}
    for inst in insts:
        r = [x for x in rows if x["instrument"] == inst]
        if not r:
            continue
        # pooled over the notes of all pieces (mir_eval's matching per piece, counts added up)
        n_ref, n_est, n_match = (int(sum(x[k] for x in r)) for k in ("n_ref", "n_est", "n_match"))
        n_rep, n_rep_match = int(sum(x["n_repeated"] for x in r)), int(sum(x["n_repeated_match"] for x in r))
        s = {"precision": n_match / max(n_est, 1), "recall": n_match / max(n_ref, 1),
             "f1": 2 * n_match / max(n_ref + n_est, 1),
             "repeated_recall": n_rep_match / n_rep if n_rep else float("nan")}
        if not args.no_rerender:  # mean over pieces
            s.update({k: float(np.nanmean([x[k] for x in r])) for k in ("pitch_accuracy", "loudness_r")})
        s["n_pieces"], s["n_notes"], s["n_repeated"] = len(r), n_ref, n_rep
        summary[inst] = s
    controls = None
    if not args.no_controls:
        print("control recovery ...", flush=True)
        controls = control_recovery(model, args.control_instruments.split(","), seed=args.seed)

    print()
    head = f"{'instrument':<12}{'pieces':>7}{'notes':>7}{'onset F1':>10}{'P':>7}{'R':>7}{'repeated R':>12}"
    if not args.no_rerender:
        head += f"{'re-render pitch acc':>21}{'loudness r':>12}"
    print(head)
    for inst, s in summary.items():
        line = (f"{inst:<12}{s['n_pieces']:>7}{s['n_notes']:>7}{s['f1']:>10.3f}{s['precision']:>7.3f}"
                f"{s['recall']:>7.3f}{s['repeated_recall']:>12.3f}")
        if not args.no_rerender:
            line += f"{s['pitch_accuracy']:>21.3f}{s['loudness_r']:>12.3f}"
        print(line)
    mean_f1 = float(np.mean([s["f1"] for s in summary.values()]))
    print(f"mean onset F1 {mean_f1:.3f}; analyse speed {audio_s / max(analyse_s, 1e-9):.1f}x real time "
          f"({audio_s:.0f} s of 44.1 kHz audio in {analyse_s:.1f} s, one thread)")
    if controls:
        print(f"control recovery (Pearson r, set vs measured from audio, {controls['matched_notes']} of "
              f"{controls['notes']} notes found): " + ", ".join(f"{k} {v:.3f}" for k, v in controls["pooled_r"].items()))
        print("  the same on the true notes: " +
              ", ".join(f"{k} {v:.3f}" for k, v in controls["pooled_r_true_notes"].items()))
        print("  set vs read from the render's own synthesis parameters (the model's obedience): " +
              ", ".join(f"{k} {v:.3f}" for k, v in controls["pooled_r_render_params"].items()))
        print("  measured from audio vs read from the render's synthesis parameters: " +
              ", ".join(f"{k} {v:.3f}" for k, v in controls["pooled_r_vs_rendered"].items()))
    out = {"render_rate": RENDER_RATE, "model_rate": model.sample_rate, "instruments": summary,
           "mean_f1": mean_f1, "analyse_x_realtime": audio_s / max(analyse_s, 1e-9), "pieces": rows,
           "controls": controls, "wall_s": time.perf_counter() - t_start,
           "command": "python eval/eval_transcription.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {args.out} ({out['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
