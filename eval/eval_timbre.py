"""Instrument-true timbre, per instrument, against FluidSynth with the training soundfont (issue 13's "Show").

    python eval/eval_timbre.py --checkpoint checkpoints --corpus corpus48 [--sample-rate 48000] \
        [--max-pieces-per-instrument 2] [--max-seconds 30] [--out docs/eval_timbre.json] [--plots docs] \
        [--diagnose] [--dry] [--cache-dir DIR] [--controls prior|recording]

On pieces of the corpus's test split (melodies no model was trained on; an instrument without a test piece
takes valid pieces, and the output says so), each piece's MIDI file (trimmed to ``--max-seconds``) is
rendered by the model (``MidiDDSP.render``, the mix, seeds 0 .. ``--seeds`` - 1: that many takes of the expression
prior, each measured against the one reference; resampled to the evaluation rate when the model runs at another rate) and by FluidSynth with FluidR3_GM at the evaluation rate. Per instrument, for ours and
for FluidSynth, on the same notes:

1. harmonic profile: notes >= 0.3 s, middle 60 % of each note, voiced frames tracked within 50 cents of the
   note (f0 tracked on each signal by ``estimate_f0``; on a 16 kHz copy, which tracks pitch as well and
   several times faster), harmonics 1..12 below Nyquist, dB relative to the strongest; median over frames
   per note, median over notes per instrument; the mean absolute difference ours vs FluidSynth
   (targets: mean over instruments <= 2.5 dB, every instrument <= 4 dB);
2. long-term average spectrum in octave bands 250 Hz .. 16 kHz, each relative to their total (target: every
   band within 3 dB);
3. an instrument classifier trained only on renders made with the reserved soundfonts (MuseScore General,
   TimGM6mb) of valid-split melodies that are not evaluated here: recognition rate of our renders and of
   the FluidSynth renders in the same 1 s windows, their ratio (target >= 0.9) and what ours is heard as;
4. high band: the 11.3-22.6 kHz octave (and, for clarinet, 5.7-11.3 kHz) relative to the total, ours vs
   FluidSynth.

``--controls recording`` renders each piece with the expression measured from the FluidSynth audio itself
(``extract_performance(..., measured=True)`` on the MIDI's notes) instead of the prior's: the humanising
performer gives every corpus piece its own brightness and dynamics, which no prior can guess from the
notes (the darkest flute piece's mean brightness is a third of the instrument's), so this isolates the
synthesis level.

``--diagnose`` adds, for the same notes, the harmonic-profile difference to FluidSynth of (a) the audio
resynthesised (harmonic + filtered noise, dry) from controls measured on the FluidSynth audio by
``measure_controls`` (the model-free training targets) and (b) the analysis model's resynthesis of the
FluidSynth audio (its training targets), when the model folder has ``analysis.safetensors``.

Prints one table (13 rows + means), writes the JSON to ``--out``; ``--plots DIR`` writes side-by-side
spectrograms per family (``timbre_spectrograms_<family>.png``) and ``eval_timbre_profiles.png``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timbre_metrics as tm  # noqa: E402

REFERENCE_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CLASSIFIER_SOUNDFONTS = ("/usr/share/sounds/sf3/MuseScore_General.sf3", "/usr/share/sounds/sf2/TimGM6mb.sf2")
FAMILIES = {"strings": ("violin", "viola", "cello", "double bass"),
            "woodwinds": ("flute", "oboe", "clarinet", "saxophone", "bassoon"),
            "brass": ("trumpet", "horn", "trombone", "tuba")}
FRAME_RATE = 250.0
F0_RATE = 16000
N_HARMONICS = 12
MIN_NOTE_S = 0.3
TAIL_S = 1.0
TARGETS = {"profile_mad_mean_db": 2.5, "profile_mad_max_db": 4.0, "ltas_max_abs_diff_db": 3.0,
           "classifier_ratio_min": 0.9}


# -------------------------------------------------------------------------------------------------- pieces
def corpus_pieces(corpus: Path, cache_manifest: Path | None) -> list[dict]:
    """The corpus manifest's pieces, each with its ``group`` (from the cache manifest where it has the piece,
    else the melody's source file) and ``split``."""
    from midi_ddsp.data.datasets import split_of

    pieces = json.loads((corpus / "manifest.json").read_text())["pieces"]
    groups = {}
    if cache_manifest is not None and cache_manifest.is_file():
        groups = {e["id"]: e.get("group") for e in json.loads(cache_manifest.read_text())["pieces"]}
    out = []
    for p in pieces:
        if p.get("status", "ok") != "ok":
            continue
        group = groups.get(p["id"]) or str(p.get("melody", p["id"])).split("#")[0]
        out.append({**p, "group": group, "split": split_of(group), "mid": str(corpus / p["files"]["mid"]),
                    "npz": str(corpus / p["files"]["npz"]) if "npz" in p["files"] else None})
    return out


def choose_eval_pieces(pieces: list[dict], names, max_per: int) -> dict[str, tuple[str, list[dict]]]:
    """Per instrument: (split used, up to ``max_per`` pieces, manifest order): test pieces, else valid."""
    chosen = {}
    for name in names:
        mine = [p for p in pieces if p["instrument"] == name]
        for split in ("test", "valid"):
            sel = [p for p in mine if p["split"] == split][:max_per]
            if sel:
                chosen[name] = (split, sel)
                break
        else:
            chosen[name] = ("none", [])
    return chosen


# ------------------------------------------------------------------------------------------- MIDI editing
def _segment_events(src: str, program: int | None, transpose: int, limit_s: float | None):
    """Channel messages of a MIDI file with absolute times (s): program replaced, notes transposed, cut at
    ``limit_s`` (notes still sounding are ended there). Returns (events, end_s)."""
    import mido

    events, sounding, t, last = [], {}, 0.0, 0.0
    for msg in mido.MidiFile(src):
        t += msg.time
        if msg.is_meta:
            continue
        if limit_s is not None and t > limit_s:
            break
        msg = msg.copy(time=0)
        if msg.type == "program_change" and program is not None:
            msg = msg.copy(program=int(program))
        if msg.type in ("note_on", "note_off"):
            msg = msg.copy(note=int(np.clip(msg.note + transpose, 0, 127)))
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[key] = sounding.get(key, 0) + 1
            elif sounding.get(key):
                sounding[key] -= 1
            last = t
        events.append((t, msg))
    end = t if limit_s is None else min(t, limit_s)
    for (ch, note), count in sounding.items():
        for _ in range(count):
            events.append((end, mido.Message("note_off", channel=ch, note=note, velocity=0)))
    return events, max(end, last)


def write_segments(segments, dst: Path, gap_s: float = 2.5) -> list[tuple[float, float]]:
    """Write ``segments`` [(src, program, transpose, limit_s)] one after another (``gap_s`` apart) into one MIDI
    file with 0.25 ms ticks; returns each segment's (start_s, end_s). The file ends ``TAIL_S`` after the last."""
    import mido

    tpb, tempo = 2000, 500_000
    per_s = tpb * 1e6 / tempo
    timeline, spans, offset = [], [], 0.0
    for src, program, transpose, limit_s in segments:
        events, end = _segment_events(src, program, transpose, limit_s)
        timeline += [(offset + t, msg) for t, msg in events]
        spans.append((offset, offset + end))
        offset += end + gap_s
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    last = 0
    for t, msg in timeline:                                                # already in time order per segment
        tick = int(round(t * per_s))
        track.append(msg.copy(time=max(tick - last, 0)))
        last = max(tick, last)
    end_tick = int(round((spans[-1][1] + TAIL_S) * per_s))
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - last, 0)))
    f = mido.MidiFile(type=0, ticks_per_beat=tpb)
    f.tracks.append(track)
    f.save(str(dst))
    return spans


def note_list(mid: str, instrument: str) -> list[tuple[int, float, float]]:
    """(pitch, onset_s, offset_s) of every note of every voice of a MIDI file."""
    from midi_ddsp.io.midi import load_midi

    seqs = load_midi(mid, instrument_override=instrument).sequences
    return sorted((int(n.pitch), float(n.onset_s), float(n.offset_s)) for s in seqs for n in s.notes)


# ----------------------------------------------------------------------------------------------- rendering
def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


def track_f0(audio: np.ndarray, sample_rate: int, notes) -> tuple[np.ndarray, np.ndarray]:
    """estimate_f0 on a 16 kHz copy, fmin/fmax from the notes' range. [frames] Hz and confidence."""
    from midi_ddsp.io.audio import resample
    from midi_ddsp.synthesis.ddsp.features import estimate_f0

    lo = min(p for p, _, _ in notes) if notes else 40
    hi = max(p for p, _, _ in notes) if notes else 90
    x = resample(audio, sample_rate, F0_RATE) if sample_rate != F0_RATE else audio
    f0, conf = estimate_f0(np.asarray(x, np.float64), F0_RATE, FRAME_RATE, fmin=max(30.0, 0.8 * tm.midi_to_hz(lo)),
                           fmax=min(4000.0, 1.3 * tm.midi_to_hz(hi)))
    n = audio.size * int(FRAME_RATE) // sample_rate
    return fit_length(f0, n), fit_length(conf, n)


def note_profiles(audio, sample_rate, f0, conf, notes) -> list[np.ndarray | None]:
    """The harmonic profile of every note (None: shorter than 0.3 s, past the audio, or too few usable frames)."""
    end_s = audio.size / sample_rate
    out = []
    for pitch, on, off in notes:
        if off - on < MIN_NOTE_S or off > end_s:
            out.append(None)
            continue
        out.append(tm.note_harmonic_profile(audio, sample_rate, f0, conf, pitch, on, off, FRAME_RATE, N_HARMONICS))
    return out


def render_reference(mid: str, sample_rate: int, soundfont: str = REFERENCE_SOUNDFONT) -> np.ndarray:
    from midi_ddsp.data.render import render_midi_file

    return render_midi_file(mid, sample_rate=sample_rate, soundfont=soundfont).astype(np.float64)


def render_ours(model, mid: str, instrument: str, sample_rate: int, reverb: bool, ref: np.ndarray | None = None,
                seed: int = 0, prior_temperature: float | None = None) -> np.ndarray:
    """The model's render of ``mid``: expression from the model's prior (sampled at ``prior_temperature``
    when given, else at the render's temperature 1), or, given the reference audio ``ref``, the reference's
    own expression (each voice's six controls measured from it, ``measured=True``)."""
    from midi_ddsp.io.audio import resample
    from midi_ddsp.io.midi import load_midi

    source = mid
    if ref is not None:
        seqs = load_midi(mid, instrument_override=instrument).sequences
        source = [model.extract_performance(ref.astype(np.float32), sample_rate, s, measured=True) for s in seqs]
    elif prior_temperature is not None:
        source = model.perform(model.read(mid, instrument).voices, prior_temperature, seed)
    res = model.render(source, instrument=instrument, seed=seed, reverb=reverb, progress=False, keep_params=False)
    x = np.asarray(res.mix, dtype=np.float64)
    return resample(x, int(res.sample_rate), sample_rate).astype(np.float64) if res.sample_rate != sample_rate else x


def resynth_measured(ref: np.ndarray, sample_rate: int, f0: np.ndarray, lowest_hz: float) -> np.ndarray:
    """(a) FluidSynth audio -> measure_controls -> harmonic + filtered noise (dry), streamed in 2 s blocks."""
    import torch

    from midi_ddsp.synthesis.ddsp.inversion import measure_controls
    from midi_ddsp.synthesis.params import SynthParams
    from midi_ddsp.synthesis.synthesizer import Synthesizer

    n_harm = int(min(128, sample_rate / 2 / lowest_hz))
    n_bands = 65 if sample_rate <= 16000 else 129
    c = measure_controls(ref, f0, sample_rate, FRAME_RATE, n_harm, n_bands, lowest_hz=lowest_hz)
    synth = Synthesizer(n_harmonics=n_harm, n_noise_bands=n_bands, n_instruments=1, reverb_length=16).eval()
    hop = int(sample_rate // FRAME_RATE)
    gen = torch.Generator().manual_seed(0)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    params = SynthParams(t(f0)[None, :, None], t(c.amplitude)[None, :, None], t(c.harmonic_distribution)[None],
                         t(c.noise_magnitudes)[None], FRAME_RATE)
    blocks, stream, step = [], synth.stream(hop, sample_rate), int(2 * FRAME_RATE)
    with torch.inference_mode():
        for a in range(0, params.n_frames, step):
            p = params.frames(a, min(a + step, params.n_frames))
            blocks.append(stream.process(synth.controls(p, torch.zeros(1, dtype=torch.long), reverb=False,
                                                        generator=gen)))
        blocks.append(stream.flush())
    return fit_length(torch.cat([b.reshape(-1) for b in blocks]).numpy().astype(np.float64), ref.size)


def resynth_analysis(model, ref: np.ndarray, sample_rate: int, f0: np.ndarray, instrument: str) -> np.ndarray:
    """(b) FluidSynth audio -> the analysis model (given f0) -> its synthesizer (dry), at ``sample_rate``."""
    from midi_ddsp.io.audio import resample

    params = model.analyze(ref.astype(np.float32), sample_rate, instrument, f0_hz=f0.astype(np.float32))
    audio = model.audio(params, instrument, reverb=False, seed=0, progress=False, synth=model.analysis_synth)[0]
    audio = np.asarray(audio, dtype=np.float64)
    if model.sample_rate != sample_rate:
        audio = resample(audio, model.sample_rate, sample_rate).astype(np.float64)
    return fit_length(audio, ref.size)


# ---------------------------------------------------------------------------------------------- classifier
def classifier_plan(pieces, eval_groups, names, n_melodies: int, seconds: float):
    """Segments [(mid, program, transpose, limit_s)] and labels for the classifier's training renders: valid
    melodies not evaluated here, the instrument's own ones first, transposed into its usual register."""
    from midi_ddsp.instruments import by_name

    pool, seen = [], set()
    for p in pieces:
        if p["split"] == "valid" and p["group"] not in eval_groups and p["group"] not in seen:
            seen.add(p["group"])
            pool.append(p)
    centre = {n: np.median([(p["pitch_min"] + p["pitch_max"]) / 2 for p in pieces if p["instrument"] == n]
                           or [(by_name(n).low + by_name(n).high) / 2]) for n in names}
    segments, labels = [], []
    for i, name in enumerate(names):
        inst = by_name(name)
        own = [p for p in pool if p["instrument"] == name]
        others = [p for p in pool if p["instrument"] != name]
        k = (i * n_melodies) % max(1, len(others))
        for p in (own + others[k:] + others[:k])[:n_melodies]:
            shift = int(round(centre[name] - (p["pitch_min"] + p["pitch_max"]) / 2))
            shift = min(shift, inst.high - p["pitch_max"]) if p["pitch_max"] + shift > inst.high else shift
            shift = max(shift, inst.low - p["pitch_min"]) if p["pitch_min"] + shift < inst.low else shift
            segments.append((p["mid"], inst.program, shift, seconds))
            labels.append(inst.id)
    return segments, labels, len(pool)


def render_segments(segments, sample_rate: int, soundfont: str, cache_dir: Path | None) -> list[np.ndarray]:
    """Render all segments in one FluidSynth run (the sf3 soundfont takes ~20 s to load) and cut them apart."""
    key = hashlib.sha1(json.dumps([segments, sample_rate, soundfont]).encode()).hexdigest()[:16]
    cached = cache_dir / f"segments_{Path(soundfont).stem}_{sample_rate}_{key}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return [z[f"s{i}"] for i in range(len(segments))]
    with tempfile.TemporaryDirectory(prefix="eval_timbre_") as tmp:
        mid = Path(tmp) / "segments.mid"
        spans = write_segments(segments, mid)
        audio = render_reference(str(mid), sample_rate, soundfont).astype(np.float32)
    out = [fit_length(audio[int(a * sample_rate):int(b * sample_rate)], int((b - a) * sample_rate))
           for a, b in spans]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = cached.with_suffix(".tmp.npz")
        np.savez(tmp_path, **{f"s{i}": x for i, x in enumerate(out)})
        tmp_path.replace(cached)
    return out


def build_classifier(pieces, eval_groups, names, sample_rate, n_melodies, seconds, cache_dir):
    segments, labels, n_pool = classifier_plan(pieces, eval_groups, names, n_melodies, seconds)
    feats, ys, sf_of = [], [], []
    for s, sf in enumerate(CLASSIFIER_SOUNDFONTS):
        for audio, label in zip(render_segments(segments, sample_rate, sf, cache_dir), labels):
            starts = tm.active_windows(audio, sample_rate, 1.0, 0.5)
            feats.append(tm.window_features(audio, sample_rate, starts))
            ys.append(np.full(starts.size, label))
            sf_of.append(np.full(starts.size, s))
    x, y, sf_of = np.concatenate(feats), np.concatenate(ys), np.concatenate(sf_of)
    model = tm.train_classifier(x, y)
    cross = [float(np.mean(tm.train_classifier(x[sf_of == a], y[sf_of == a]).predict(x[sf_of != a]) == y[sf_of != a]))
             for a in (0, 1)]
    info = {"soundfonts": [Path(s).name for s in CLASSIFIER_SOUNDFONTS], "melodies_in_pool": n_pool,
            "melodies_per_instrument": n_melodies, "seconds_per_melody": seconds, "train_windows": int(y.size),
            "cross_soundfont_accuracy": {f"train {Path(CLASSIFIER_SOUNDFONTS[a]).stem} -> other": cross[a]
                                         for a in (0, 1)},
            "features": "1 s windows (0.5 s hop): log-mel (48) mean/std rel. window level, MFCC 1-19, "
                        "log centroid, log 85% roll-off, flatness; standardised logistic regression"}
    return model, info


# ------------------------------------------------------------------------------------------------- plots
def save_plots(snippets: dict, results: dict, sample_rate: int, plots: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    written = []
    n_fft = tm.window_samples(sample_rate, 0.0427)
    for family, members in FAMILIES.items():
        members = [m for m in members if m in snippets]
        if not members:
            continue
        fig, axes = plt.subplots(len(members), 2, figsize=(11, 2.3 * len(members)), squeeze=False, sharey=True)
        for r, name in enumerate(members):
            for c, (label, x) in enumerate((("ours", snippets[name][0]), ("FluidSynth FluidR3", snippets[name][1]))):
                spec = np.abs(librosa.stft(x.astype(np.float32), n_fft=n_fft, hop_length=n_fft // 4)) ** 2
                db = 10 * np.log10(spec / max(spec.max(), 1e-20) + 1e-10)
                ax = axes[r, c]
                ax.imshow(db, origin="lower", aspect="auto", vmin=-90, vmax=0, cmap="magma",
                          extent=(0, x.size / sample_rate, 0, sample_rate / 2000))
                ax.set_title(f"{name}: {label}", fontsize=9)
                ax.set_ylabel("kHz")
        for ax in axes[-1]:
            ax.set_xlabel("s")
        fig.suptitle(f"{family} at {sample_rate} Hz (dB re. each picture's peak)", fontsize=10)
        fig.tight_layout()
        path = plots / f"timbre_spectrograms_{family}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(str(path))
    names = [n for n in results if results[n].get("profile_ours_db") is not None]
    if names:
        cols = 5
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharey=True)
        k = np.arange(1, N_HARMONICS + 1)
        for i, name in enumerate(names):
            ax = axes[i // cols, i % cols]
            r = results[name]
            ax.plot(k, np.array(r["profile_ours_db"], dtype=float), "o-", label="ours")
            ax.plot(k, np.array(r["profile_fluidsynth_db"], dtype=float), "s--", label="FluidR3")
            ax.set_title(f"{name} (MAD {r['profile_mad_db']:.1f} dB)", fontsize=9)
            ax.set_xticks(k[::2])
            ax.grid(alpha=0.3)
        for j in range(len(names), rows * cols):
            axes[j // cols, j % cols].axis("off")
        axes[0, 0].legend(fontsize=8)
        axes[0, 0].set_ylabel("dB re. strongest")
        fig.suptitle(f"median harmonic profile, notes >= {MIN_NOTE_S} s, {sample_rate} Hz", fontsize=10)
        fig.tight_layout()
        path = plots / "eval_timbre_profiles.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(str(path))
    return written


# ---------------------------------------------------------------------------------------------- the run
def _nan_to_none(x):
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else round(float(x), 3)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _nan_to_none(x.tolist())
    return x


def evaluate(args) -> dict:
    import torch

    from midi_ddsp.instruments import INSTRUMENTS, by_name
    try:
        from midi_ddsp import MidiDDSP
    except ImportError:
        from midi_ddsp.pipeline import MidiDDSP

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    sr = int(args.sample_rate)
    names = [i.name for i in INSTRUMENTS] if not args.instruments else [by_name(n).name for n in args.instruments]
    corpus = Path(args.corpus)
    cache_manifest = Path(args.cache_manifest) if args.cache_manifest else Path("cache") / corpus.name / "manifest.json"
    pieces = corpus_pieces(corpus, cache_manifest)
    chosen = choose_eval_pieces(pieces, names, args.max_pieces_per_instrument)
    eval_groups = {p["group"] for _, sel in chosen.values() for p in sel}
    model = MidiDDSP.from_pretrained(args.checkpoint)
    timings = {"load": time.perf_counter() - t_start}

    t = time.perf_counter()
    cache_dir = None if args.no_cache else Path(args.cache_dir)
    clf, clf_info = build_classifier(pieces, eval_groups, names, sr, args.classifier_melodies,
                                     args.classifier_seconds, cache_dir)
    timings["classifier"] = time.perf_counter() - t
    timings.update(render_ours=0.0, render_fluidsynth=0.0, measure=0.0, diagnose=0.0)

    results, snippets = {}, {}
    want_analysis = args.diagnose and getattr(model, "analysis_model", None) is not None
    for name in names:
        split, sel = chosen[name]
        inst = by_name(name)
        prof_o, prof_r, prof_a, prof_b = [], [], [], []
        cat_a, cat_b = [], []
        cat_o, cat_r, pred_o, pred_r = [], [], [], []
        n_long = 0
        for p in sel:
            with tempfile.TemporaryDirectory(prefix="eval_timbre_") as tmp:
                mid = str(Path(tmp) / "piece.mid")
                write_segments([(p["mid"], None, 0, args.max_seconds)], Path(mid))
                t = time.perf_counter()
                ref = render_reference(mid, sr)
                timings["render_fluidsynth"] += time.perf_counter() - t
                takes = []
                for seed in range(args.seeds):
                    t = time.perf_counter()
                    takes.append(fit_length(render_ours(model, mid, name, sr, not args.dry,
                                                        ref if args.controls == "recording" else None, seed,
                                                        args.prior_temperature),
                                            ref.size))
                    timings["render_ours"] += time.perf_counter() - t
                ours = takes[0]
                notes = note_list(mid, name)
            t = time.perf_counter()
            f0_r, conf_r = track_f0(ref, sr, notes)
            pr = note_profiles(ref, sr, f0_r, conf_r, notes)
            n_long += sum(1 for _, a, b in notes if b - a >= MIN_NOTE_S and b <= ref.size / sr)
            starts = tm.active_windows(ref, sr, 1.0, 1.0)
            cat_r.append(ref)
            if starts.size:
                pred_r += clf.predict(tm.window_features(ref, sr, starts)).tolist()
            for take in takes:  # every take against the one reference (its notes counted once per take)
                f0_o, conf_o = track_f0(take, sr, notes)
                po = note_profiles(take, sr, f0_o, conf_o, notes)
                both = [i for i in range(len(notes)) if pr[i] is not None and po[i] is not None]
                prof_r += [pr[i] for i in both]
                prof_o += [po[i] for i in both]
                cat_o.append(take)
                if starts.size:
                    pred_o += clf.predict(tm.window_features(take, sr, starts)).tolist()
            if name not in snippets and notes:
                a = int(max(0.0, notes[0][1] - 0.2) * sr)
                b = min(ref.size, a + int(args.plot_seconds * sr))
                snippets[name] = (ours[a:b], ref[a:b])
            timings["measure"] += time.perf_counter() - t
            if args.diagnose:
                t = time.perf_counter()
                lowest = inst.lowest_hz
                ra = resynth_measured(ref, sr, f0_r, lowest)
                fa, ca = track_f0(ra, sr, notes)
                pa = note_profiles(ra, sr, fa, ca, notes)
                prof_a += [(pr[i], pa[i]) for i in range(len(notes)) if pr[i] is not None and pa[i] is not None]
                cat_a.append(ra)
                if want_analysis:
                    rb = resynth_analysis(model, ref, sr, f0_r, name)
                    fb, cb = track_f0(rb, sr, notes)
                    pb = note_profiles(rb, sr, fb, cb, notes)
                    prof_b += [(pr[i], pb[i]) for i in range(len(notes)) if pr[i] is not None and pb[i] is not None]
                    cat_b.append(rb)
                timings["diagnose"] += time.perf_counter() - t
        r = {"split": split, "pieces": [p["id"] for p in sel], "notes_ge_0p3s": n_long, "notes_used": len(prof_o)}
        if not sel:
            results[name] = r
            continue
        mo, mr = tm.median_profile(prof_o, N_HARMONICS), tm.median_profile(prof_r, N_HARMONICS)
        lo, lr = tm.octave_band_levels(np.concatenate(cat_o), sr), tm.octave_band_levels(np.concatenate(cat_r), sr)
        d = lo - lr
        pred_o, pred_r = np.asarray(pred_o, dtype=int), np.asarray(pred_r, dtype=int)
        rate_o = float(np.mean(pred_o == inst.id)) if pred_o.size else float("nan")
        rate_r = float(np.mean(pred_r == inst.id)) if pred_r.size else float("nan")
        heard = Counter(INSTRUMENTS[k].name for k in pred_o.tolist())
        heard_r = Counter(INSTRUMENTS[k].name for k in pred_r.tolist())
        r.update({
            "profile_ours_db": mo, "profile_fluidsynth_db": mr, "profile_diff_db": mo - mr,
            "profile_mad_db": tm.profile_mad(mo, mr),
            "ltas_bands_hz": list(tm.OCTAVE_CENTRES_HZ), "ltas_ours_db": lo, "ltas_fluidsynth_db": lr,
            "ltas_diff_db": d, "ltas_max_abs_diff_db": float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else None,
            "high_band_11k_22k_ours_db": lo[-1], "high_band_11k_22k_fluidsynth_db": lr[-1],
            "high_band_11k_22k_diff_db": d[-1],
            "band_5p7k_11k_ours_db": lo[-2], "band_5p7k_11k_fluidsynth_db": lr[-2], "band_5p7k_11k_diff_db": d[-2],
            "classifier_windows": int(pred_o.size), "recognition_ours": rate_o, "recognition_fluidsynth": rate_r,
            "recognition_ratio": rate_o / rate_r if rate_r > 0 else float("nan"),
            "heard_as_ours": {k: v / max(pred_o.size, 1) for k, v in heard.most_common()},
            "heard_as_fluidsynth": {k: v / max(pred_r.size, 1) for k, v in heard_r.most_common()},
        })
        if args.diagnose:
            for key, pairs, cat in (("diagnose_measured_resynth", prof_a, cat_a),
                                    ("diagnose_analysis_resynth", prof_b, cat_b)):
                if cat:
                    r[key + "_ltas_diff_db"] = tm.octave_band_levels(np.concatenate(cat), sr) - lr
                if pairs:
                    ma = tm.median_profile([b for _, b in pairs], N_HARMONICS)
                    mra = tm.median_profile([a for a, _ in pairs], N_HARMONICS)
                    r[key + "_profile_db"] = ma
                    r[key + "_mad_db"] = tm.profile_mad(ma, mra)
        results[name] = r

    timings["total"] = time.perf_counter() - t_start
    summary = summarise(results)
    out = {"checkpoint": str(args.checkpoint), "model_sample_rate": int(model.sample_rate),
           "eval_sample_rate": sr, "ours_resampled": int(model.sample_rate) != sr,
           "reverb": not args.dry, "controls": args.controls, "prior_temperature": args.prior_temperature, "seeds": args.seeds, "max_seconds_per_piece": args.max_seconds,
           "max_pieces_per_instrument": args.max_pieces_per_instrument,
           "reference": f"FluidSynth, {Path(REFERENCE_SOUNDFONT).name}, dry (-R 0 -C 0), {sr} Hz",
           "f0_tracking": f"estimate_f0 on a {F0_RATE} Hz copy of each signal",
           "classifier": clf_info, "targets": TARGETS, "summary": summary, "instruments": results,
           "timings_s": timings}
    if args.plots:
        out["plots"] = save_plots(snippets, results, sr, Path(args.plots))
    return _nan_to_none(out)


def summarise(results: dict) -> dict:
    def vals(key):
        v = np.array([r[key] for r in results.values() if r.get(key) is not None], dtype=float)
        return v[np.isfinite(v)]

    mad, ltas, ratio = vals("profile_mad_db"), vals("ltas_max_abs_diff_db"), vals("recognition_ratio")
    s = {"profile_mad_mean_db": float(mad.mean()) if mad.size else None,
         "profile_mad_max_db": float(mad.max()) if mad.size else None,
         "ltas_max_abs_diff_mean_db": float(ltas.mean()) if ltas.size else None,
         "ltas_max_abs_diff_max_db": float(ltas.max()) if ltas.size else None,
         "high_band_diff_mean_db": float(vals("high_band_11k_22k_diff_db").mean())
         if vals("high_band_11k_22k_diff_db").size else None,
         "recognition_ours_mean": float(vals("recognition_ours").mean()) if vals("recognition_ours").size else None,
         "recognition_fluidsynth_mean": float(vals("recognition_fluidsynth").mean())
         if vals("recognition_fluidsynth").size else None,
         "recognition_ratio_min": float(ratio.min()) if ratio.size else None}
    for key in ("diagnose_measured_resynth_mad_db", "diagnose_analysis_resynth_mad_db"):
        v = vals(key)
        if v.size:
            s[key.replace("_mad_db", "_mad_mean_db")] = float(v.mean())
    s["pass"] = {
        "profile_mad_mean": s["profile_mad_mean_db"] is not None and s["profile_mad_mean_db"] <= TARGETS["profile_mad_mean_db"],
        "profile_mad_every_instrument": s["profile_mad_max_db"] is not None and s["profile_mad_max_db"] <= TARGETS["profile_mad_max_db"],
        "ltas_within_3db": s["ltas_max_abs_diff_max_db"] is not None and s["ltas_max_abs_diff_max_db"] <= TARGETS["ltas_max_abs_diff_db"],
        "classifier_ratio": s["recognition_ratio_min"] is not None and s["recognition_ratio_min"] >= TARGETS["classifier_ratio_min"],
    }
    return s


def print_table(out: dict) -> None:
    f = lambda v, w=6, p=1: (f"{v:{w}.{p}f}" if isinstance(v, (int, float)) else " " * (w - 1) + "-")  # noqa: E731
    diag = any("diagnose_measured_resynth_mad_db" in r for r in out["instruments"].values())
    print(f"\ntimbre vs FluidSynth FluidR3 at {out['eval_sample_rate']} Hz; model at {out['model_sample_rate']} Hz"
          f"{' (resampled)' if out['ours_resampled'] else ''}; checkpoint {out['checkpoint']}")
    head = (f"{'instrument':12s} {'split':5s} {'notes':>5s} {'profMAD':>7s} {'LTASmax':>7s} {'HB ours':>7s} "
            f"{'HB ref':>7s} {'HB d':>6s} {'5.7-11k d':>9s} {'rec ours':>8s} {'rec ref':>7s} {'ratio':>5s}  heard as")
    if diag:
        head += "  | diag meas  diag anal"
    print(head)
    for name, r in out["instruments"].items():
        heard = next(iter(r.get("heard_as_ours", {}).items()), None)
        heard_s = f"{heard[0]} {heard[1]:.2f}" if heard else "-"
        line = (f"{name:12s} {r['split']:5s} {r.get('notes_used', 0):5d} {f(r.get('profile_mad_db'), 7)} "
                f"{f(r.get('ltas_max_abs_diff_db'), 7)} {f(r.get('high_band_11k_22k_ours_db'), 7)} "
                f"{f(r.get('high_band_11k_22k_fluidsynth_db'), 7)} {f(r.get('high_band_11k_22k_diff_db'))} "
                f"{f(r.get('band_5p7k_11k_diff_db'), 9)} {f(r.get('recognition_ours'), 8, 2)} "
                f"{f(r.get('recognition_fluidsynth'), 7, 2)} {f(r.get('recognition_ratio'), 5, 2)}  {heard_s:18s}")
        if diag:
            line += (f" | {f(r.get('diagnose_measured_resynth_mad_db'), 9)}"
                     f"  {f(r.get('diagnose_analysis_resynth_mad_db'), 9)}")
        print(line)
    s = out["summary"]
    print(f"{'mean':12s} {'':5s} {'':5s} {f(s['profile_mad_mean_db'], 7)} {f(s['ltas_max_abs_diff_mean_db'], 7)} "
          f"{'':7s} {'':7s} {f(s['high_band_diff_mean_db'])} {'':9s} {f(s['recognition_ours_mean'], 8, 2)} "
          f"{f(s['recognition_fluidsynth_mean'], 7, 2)} {'':5s}"
          + (f"   | {f(s.get('diagnose_measured_resynth_mad_mean_db'), 9)}"
             f"  {f(s.get('diagnose_analysis_resynth_mad_mean_db'), 9)}" if diag else ""))
    print(f"profile MAD max {f(s['profile_mad_max_db'], 4)} dB; LTAS worst band {f(s['ltas_max_abs_diff_max_db'], 4)} dB; "
          f"min recognition ratio {f(s['recognition_ratio_min'], 4, 2)}; pass: {s['pass']}")
    c = out["classifier"]
    print(f"classifier: {c['train_windows']} windows from {', '.join(c['soundfonts'])}; cross-soundfont accuracy "
          + ", ".join(f"{k}: {v:.2f}" for k, v in c["cross_soundfont_accuracy"].items()))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in out["timings_s"].items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="model folder")
    ap.add_argument("--corpus", required=True, help="corpus folder with manifest.json (e.g. corpus48)")
    ap.add_argument("--cache-manifest", default=None, help="feature-cache manifest with the pieces' groups "
                    "(default cache/<corpus name>/manifest.json)")
    ap.add_argument("--sample-rate", type=int, default=48000, help="evaluation rate, Hz")
    ap.add_argument("--max-pieces-per-instrument", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="trim each piece to this many seconds")
    ap.add_argument("--seeds", type=int, default=1,
                    help="render each piece with seeds 0..N-1 (takes of the expression prior), all measured")
    ap.add_argument("--instruments", nargs="*", default=None, help="subset (default all 13)")
    ap.add_argument("--classifier-melodies", type=int, default=4, help="training melodies per instrument")
    ap.add_argument("--classifier-seconds", type=float, default=20.0, help="seconds of each training melody")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "midi_ddsp_eval_timbre"),
                    help="where the classifier's soundfont renders are cached")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--dry", action="store_true", help="render ours without the learned reverb")
    ap.add_argument("--controls", choices=("prior", "recording"), default="prior",
                    help="expression of our renders: the model's prior (default, as users render MIDI) or the "
                         "reference's own, measured from it (isolates the synthesis level from the prior's guess)")
    ap.add_argument("--prior-temperature", type=float, default=None, metavar="T",
                    help="with --controls prior: sample the expression prior at T (the f0 sampler stays at 1; "
                         "default: both at 1, as `midi-ddsp render`)")
    ap.add_argument("--diagnose", action="store_true", help="also profile the resynthesised training targets")
    ap.add_argument("--out", default="docs/eval_timbre.json")
    ap.add_argument("--plots", default=None, help="folder for the spectrogram and profile pictures")
    ap.add_argument("--plot-seconds", type=float, default=4.0)
    args = ap.parse_args(argv)

    from midi_ddsp.data.render import RenderError
    from midi_ddsp.errors import MidiDDSPError

    try:
        out = evaluate(args)
    except (MidiDDSPError, RenderError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_table(out)
    if args.out:
        from midi_ddsp.io.atomic import atomic_write

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out) as tmp:
            Path(tmp).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
