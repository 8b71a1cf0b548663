"""Feature cache: per piece f0 + confidence, true f0 (when known), A-weighted loudness, 250 Hz note frames.

``cache_features(CacheConfig(...))`` walks the pieces a loader finds (:mod:`midi_ddsp.data.loaders`), checks
each audio file, computes features in ``n_workers`` processes and writes::

    <out_dir>/features/<id>.npz     one file per piece (keys below)
    <out_dir>/audio/<id>.wav        only when the source audio had to be converted (resampled / stereo)
    <out_dir>/transcriptions/<id>.mid   source=audio only: the notes found in the recording (plain MIDI, the
                                    instrument's GM program), which are the piece's notes in the cache
    <out_dir>/manifest.jsonl        one line per processed piece, appended as results arrive (resume log)
    <out_dir>/manifest.json         complete manifest in source order: status "ok" or "skipped" + reason
    <out_dir>/summary.json          counts, minutes per instrument, speed (x real time)

Per-piece npz keys (F = n_samples // hop, hop = sample_rate / frame_rate; frame i centred on sample i*hop):
    f0_hz [F] float32 (tracker, Hz), f0_confidence [F] float32 in [0, 1],
    loudness_db [F] float32 (A-weighted, dB), true_f0_hz [F] float32 (only when known),
    frame_pitch [F] int64 (0 on rests), frame_onset / frame_offset [F] bool, frame_note_index [F] int64
    (-1 on rests), frame_position [F] float32 (see :mod:`midi_ddsp.note_level.frames`),
    note_pitch / note_onset_s / note_offset_s / note_velocity [N], instrument_id (), sample_rate (),
    frame_rate (), n_samples (), and for corpus pieces the performer's curves true_expression_db,
    true_cents [F].

Recordings without notes (``source=audio``, :func:`midi_ddsp.data.loaders.audio_pieces`) are transcribed
first by :func:`midi_ddsp.recording.transcribe_recording` (pitch tracking, loudness and onsets; no neural
network) at ``f0_sample_rate``; a recording where nothing pitched is found is skipped with that reason.

Checks (a failing file is skipped, its reason recorded; nothing aborts the run): unreadable/corrupt,
non-finite samples, wrong sample rate (unless ``resample``), too short, silent, annotation outside the
audio, notes over silence, or annotated pitches that do not match the tracked pitch at their time
(misaligned; see :func:`check_timing` and :func:`check_pitch_alignment`).
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from midi_ddsp.data.jobs import run_journaled
from midi_ddsp.synthesis.sizes import DEFAULT_SAMPLE_RATE
from midi_ddsp.data.loaders import PieceSource, find_pieces
from midi_ddsp.instruments import by_name


@dataclass
class CacheConfig:
    """Settings of :func:`cache_features` (mirrors conf/data/cache_features.yaml)."""

    source: str = "corpus"            # corpus | urmp | pairs | audio (recordings only: transcribed here)
    source_dir: str = "corpus"
    out_dir: str = "cache/corpus"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    frame_rate: int = 250
    f0_sample_rate: int = 16000       # the pitch tracker runs on a band-limited copy at this rate (cheaper)
    n_workers: int = 2
    min_duration_s: float = 4.0
    max_misalignment_s: float = 0.5   # annotation may end at most this far past the audio
    max_lag_s: float = 0.1            # pitch may match the notes best at most this far from lag 0
    silence_db: float = -60.0         # peak level (dBFS) below which a file counts as silent
    resample: bool = False            # resample other rates (else skip them with a reason)
    instrument: str | None = None     # pairs: instrument of every pair (else from MIDI programs); audio: required
    progress: bool = True


class SkipPiece(Exception):
    """A piece cannot be used; the message is the reason written to the manifest."""


def read_checked_audio(path: str, cfg: CacheConfig) -> tuple[np.ndarray, bool]:
    """Read ``path`` as mono float32 at ``cfg.sample_rate``; raise SkipPiece with a reason on any problem.

    Returns (audio [n], converted) where ``converted`` says the file was not already mono at that rate.
    """
    import soundfile as sf

    try:
        info = sf.info(path)
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        raise SkipPiece(f"corrupt or unreadable audio ({str(e).splitlines()[0][:120]})") from None
    if audio.shape[0] == 0:
        raise SkipPiece("empty audio")
    converted = audio.shape[1] != 1
    audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise SkipPiece("non-finite samples (NaN/inf)")
    if sr != cfg.sample_rate:
        if not cfg.resample:
            raise SkipPiece(f"wrong sample rate: {sr} Hz, expected {cfg.sample_rate} Hz (set resample=true)")
        from midi_ddsp.io.audio import resample

        audio = resample(audio, sr, cfg.sample_rate)
        converted = True
    del info
    dur = audio.shape[0] / cfg.sample_rate
    if dur < cfg.min_duration_s:
        raise SkipPiece(f"too short: {dur:.2f} s < {cfg.min_duration_s} s")
    peak = float(np.max(np.abs(audio)))
    if 20 * np.log10(peak + 1e-12) < cfg.silence_db:
        raise SkipPiece(f"silent: peak {20 * np.log10(peak + 1e-12):.1f} dBFS < {cfg.silence_db} dBFS")
    return audio.astype(np.float32), converted


def pitch_agreement(f0_hz: np.ndarray, confidence: np.ndarray, frame_pitch: np.ndarray, frame_rate: float,
                    max_lag_s: float = 1.0, tolerance_semitones: float = 0.75, min_confidence: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """How well the tracked pitch matches the annotated notes when the notes are shifted by each lag.

    For each lag (frames, +-``max_lag_s``) returns the fraction of annotated, confidently voiced frames
    whose tracked pitch lies within ``tolerance_semitones`` of the note's pitch class (octave errors of
    the tracker are forgiven). A positive lag means the audio comes later than the annotation.
    Returns (lags_s [L], agreement [L]).
    """
    f0 = np.asarray(f0_hz, np.float64)
    midi = 69 + 12 * np.log2(np.maximum(f0, 1e-3) / 440.0)
    voiced = np.asarray(confidence) >= min_confidence
    t = np.flatnonzero(np.asarray(frame_pitch) > 0)
    if t.size > 4000:  # subsample evenly: plenty for a fraction
        t = t[np.linspace(0, t.size - 1, 4000).astype(np.int64)]
    L = int(round(max_lag_s * frame_rate))
    lags = np.arange(-L, L + 1)
    idx = t[:, None] + lags[None, :]
    ok = (idx >= 0) & (idx < f0.size)
    idx = np.clip(idx, 0, f0.size - 1)
    d = midi[idx] - frame_pitch[t][:, None]
    d = np.abs((d + 6.0) % 12.0 - 6.0)
    hit = (d < tolerance_semitones) & voiced[idx] & ok
    den = np.maximum((voiced[idx] & ok).sum(axis=0), 1)
    return lags / frame_rate, hit.sum(axis=0) / den


def check_timing(src: PieceSource, audio: np.ndarray, loudness_db: np.ndarray, cfg: CacheConfig) -> dict:
    """Cheap checks before pitch tracking: notes must not run past the end of the audio, and the middle
    of most notes must be audible. Raises SkipPiece; returns figures for the manifest."""
    dur = audio.shape[0] / cfg.sample_rate
    if src.n_notes == 0:
        raise SkipPiece("no notes in the annotation")
    over = float(src.offset_s.max() - dur)
    if over > cfg.max_misalignment_s:
        raise SkipPiece(f"misaligned: notes run {over:.2f} s past the end of the audio")
    F = loudness_db.shape[0]
    mid = np.clip(((src.onset_s + src.offset_s) / 2 * cfg.frame_rate).astype(np.int64), 0, F - 1)
    ref = np.percentile(loudness_db, 95)
    audible = float(np.mean(loudness_db[mid] > ref - 40.0))
    if audible < 0.6:
        raise SkipPiece(f"misaligned: only {audible:.0%} of notes sound at their annotated time")
    return {"audible_notes": round(audible, 3)}


def check_pitch_alignment(f0_hz: np.ndarray, confidence: np.ndarray, frame_pitch: np.ndarray, cfg: CacheConfig
                          ) -> dict:
    """The tracked pitch must match the annotated pitches at lag 0. If the best match lies further than
    ``max_lag_s`` away the annotation is shifted; if nothing matches it belongs to other audio.
    Raises SkipPiece; returns figures for the manifest."""
    lags, agree = pitch_agreement(f0_hz, confidence, frame_pitch, cfg.frame_rate)
    zero = float(agree[lags.size // 2])
    best = int(np.argmax(agree))
    if zero < 0.5:
        if agree[best] >= zero + 0.2 and abs(lags[best]) > cfg.max_lag_s:
            raise SkipPiece(f"misaligned: the audio matches the notes best {lags[best] * 1000:+.0f} ms away "
                            f"({agree[best]:.0%} vs {zero:.0%} of frames at the annotated time)")
        raise SkipPiece(f"misaligned: only {zero:.0%} of annotated frames match the audio's pitch")
    return {"pitch_agreement": round(zero, 3), "best_lag_s": round(float(lags[best]), 3)}


def _frames_from_curve(times_s, values, n_frames, frame_rate) -> np.ndarray:
    t = np.arange(n_frames) / frame_rate
    return np.interp(t, np.asarray(times_s, float), np.asarray(values, float)).astype(np.float32)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad a frame curve to n frames."""
    x = np.asarray(x)
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]), mode="edge") if x.shape[0] else np.zeros(n, x.dtype)


def compute_features(src: PieceSource, cfg: CacheConfig, out_dir: str) -> dict:
    """Check and featurise one piece; write its npz. Returns the manifest entry (never raises)."""
    import torch

    from midi_ddsp.note_level.frames import notes_to_frames
    from midi_ddsp.note_level.notes import Note, NoteSequence
    from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness, estimate_f0

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    entry = {"id": src.id, "instrument": src.instrument, "source_audio": src.audio_path, "group": src.group,
             "n_notes": src.n_notes}
    out = Path(out_dir)
    try:
        inst = by_name(src.instrument)
        entry["instrument_id"] = inst.id
        audio, converted = read_checked_audio(src.audio_path, cfg)
        sr, fr = cfg.sample_rate, cfg.frame_rate
        if src.meta.get("transcribe"):
            src = transcribed(src, audio, cfg, out)
            entry.update(n_notes=src.n_notes, transcription=src.meta["transcription"],
                         tuning_cents=src.meta["tuning_cents"])
        hop = sr // fr
        n = audio.shape[0]
        F = n // hop
        loud = a_weighted_loudness(torch.from_numpy(audio)[None], sr, frame_rate=fr)[0, :, 0].numpy()
        loud = _fit(loud.astype(np.float32), F)
        entry.update(check_timing(src, audio, loud, cfg))
        fmin = max(30.0, 440.0 * 2 ** ((inst.low - 3 - 69) / 12))
        fmax = min(0.45 * sr, 440.0 * 2 ** ((inst.high + 3 - 69) / 12))
        f0_sr = min(cfg.f0_sample_rate, sr)
        if f0_sr != sr:
            from midi_ddsp.io.audio import resample

            f0, conf = estimate_f0(resample(audio, sr, f0_sr), f0_sr, frame_rate=fr, fmin=fmin,
                                   fmax=min(fmax, 0.45 * f0_sr))
        else:
            f0, conf = estimate_f0(audio, sr, frame_rate=fr, fmin=fmin, fmax=fmax)
        f0, conf = _fit(f0, F), _fit(conf, F)
        try:
            seq = NoteSequence([Note(int(p), float(a), float(b), int(v), inst.name)
                                for p, a, b, v in zip(src.pitch, src.onset_s, src.offset_s, src.velocity)],
                               instrument=inst.name, name=src.id)
        except ValueError as e:
            raise SkipPiece(f"bad annotation: {e}") from None
        nf = notes_to_frames(seq, F, frame_rate=fr)
        entry.update(check_pitch_alignment(f0, conf, nf.pitch, cfg))
        d = {
            "f0_hz": _fit(f0, F).astype(np.float32), "f0_confidence": _fit(conf, F).astype(np.float32),
            "loudness_db": loud,
            "frame_pitch": nf.pitch, "frame_onset": nf.onset, "frame_offset": nf.offset,
            "frame_note_index": nf.note_index, "frame_position": nf.position,
            "note_pitch": seq.pitches.astype(np.int64), "note_onset_s": seq.onsets_s, "note_offset_s": seq.offsets_s,
            "note_velocity": seq.velocities.astype(np.int64),
            "instrument_id": np.asarray(inst.id), "sample_rate": np.asarray(sr), "frame_rate": np.asarray(fr),
            "n_samples": np.asarray(n),
        }
        tc = src.true_curves
        if "f0_hz" in tc and "f0_times_s" in tc:  # URMP point annotation
            d["true_f0_hz"] = _frames_from_curve(tc["f0_times_s"], tc["f0_hz"], F, fr)
        elif "f0_hz" in tc:
            if src.true_frame_rate and abs(src.true_frame_rate - fr) > 1e-6:
                t = np.arange(len(tc["f0_hz"])) / src.true_frame_rate
                for k in ("f0_hz", "expression_db", "cents"):
                    if k in tc:
                        d[f"true_{k}"] = _frames_from_curve(t, tc[k], F, fr)
            else:
                for k in ("f0_hz", "expression_db", "cents"):
                    if k in tc:
                        d[f"true_{k}"] = _fit(np.asarray(tc[k], np.float32), F)
        audio_rel = None
        if converted:
            import soundfile as sf

            ap = out / "audio" / f"{src.id}.wav"
            ap.parent.mkdir(parents=True, exist_ok=True)
            tmp = ap.with_suffix(".tmp.wav")
            sf.write(str(tmp), audio, sr, subtype="PCM_24")
            os.replace(tmp, ap)
            audio_rel = str(ap.relative_to(out))
        fp = out / "features" / f"{src.id}.npz"
        fp.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(fp) + ".tmp.npz"
        np.savez(tmp, **d)
        os.replace(tmp, fp)
        elapsed = time.perf_counter() - t0
        entry.update(status="ok", features=str(fp.relative_to(out)),
                     audio=audio_rel if audio_rel else str(Path(src.audio_path).resolve()),
                     n_samples=int(n), n_frames=int(F), duration_s=round(n / sr, 3),
                     has_true_f0="true_f0_hz" in d, seconds=round(elapsed, 3),
                     x_realtime=round(n / sr / max(elapsed, 1e-9), 1))
    except SkipPiece as e:
        entry.update(status="skipped", reason=str(e))
    except Exception as e:  # noqa: BLE001 - one bad file never aborts a long build
        entry.update(status="skipped", reason=f"error: {type(e).__name__}: {e}")
    return entry


def transcribed(src: PieceSource, audio: np.ndarray, cfg: CacheConfig, out: Path) -> PieceSource:
    """``src`` with the notes transcribed from ``audio`` (mono, ``cfg.sample_rate``); the notes are written to
    ``out/transcriptions/<id>.mid``. Raises SkipPiece when the recording holds nothing usable."""
    from dataclasses import replace

    from midi_ddsp.io.midi import write_midi
    from midi_ddsp.recording import RecordingError, transcribe_recording

    try:
        tr, _, _ = transcribe_recording(audio, cfg.sample_rate, src.instrument,
                                        analysis_rate=min(cfg.f0_sample_rate, cfg.sample_rate), name=src.id)
    except RecordingError as e:
        raise SkipPiece(f"transcription: {e}") from None
    seq = tr.sequence
    path = out / "transcriptions" / f"{src.id}.mid"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_midi(seq, path)
    meta = dict(src.meta, transcription=str(path.relative_to(out)), tuning_cents=round(tr.tuning_cents, 1))
    return replace(src, pitch=seq.pitches.astype(np.int64), onset_s=seq.onsets_s, offset_s=seq.offsets_s,
                   velocity=seq.velocities.astype(np.int64), meta=meta)


def _job(args):
    src, cfg, out_dir = args
    return compute_features(src, cfg, out_dir)


def cache_features(cfg: CacheConfig) -> dict:
    """Featurise every piece of ``cfg.source_dir`` (resumable, parallel). Returns the summary."""
    t_start = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pieces, problems = find_pieces(cfg.source, cfg.source_dir, cfg.instrument)
    ids = [p.id for p in pieces]
    if len(set(ids)) != len(ids):
        raise RuntimeError("duplicate piece ids in the source")
    log_path = out / "manifest.jsonl"
    done: dict[str, dict] = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            done[e["id"]] = e
    todo = []
    for p in pieces:
        e = done.get(p.id)
        if e and e["status"] == "ok" and (out / e["features"]).is_file():
            continue
        if e and e["status"] == "skipped" and e.get("source_audio") == p.audio_path:
            continue
        todo.append(p)
    jobs = [(p, cfg, str(out)) for p in todo]
    run_journaled(_job, jobs, cfg.n_workers, "features", cfg.progress, log_path, done)
    entries = [done[p.id] for p in pieces if p.id in done]
    entries += [{"id": Path(path).stem, "source_audio": path, "status": "skipped", "reason": reason}
                for path, reason in problems]
    (out / "manifest.json").write_text(json.dumps({"config": asdict(cfg), "pieces": entries}, indent=1))
    ok = [e for e in entries if e["status"] == "ok"]
    minutes = defaultdict(float)
    for e in ok:
        minutes[e["instrument"]] += e["duration_s"] / 60
    secs = sum(e.get("seconds", 0.0) for e in ok)
    summary = {"n_pieces": len(entries), "n_ok": len(ok), "n_skipped": len(entries) - len(ok),
               "skipped": {e["id"]: e.get("reason") for e in entries if e["status"] != "ok"},
               "minutes_per_instrument": {k: round(v, 2) for k, v in sorted(minutes.items())},
               "x_realtime_per_process": round(sum(e["duration_s"] for e in ok) / max(secs, 1e-9), 1),
               "wall_s_this_run": round(time.perf_counter() - t_start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.progress:
        print(f"[cache] {summary['n_ok']} ok, {summary['n_skipped']} skipped, "
              f"{summary['x_realtime_per_process']}x real time per process, {summary['wall_s_this_run']} s")
    return summary


def load_manifest(cache_dir: str | os.PathLike, ok_only: bool = True) -> list[dict]:
    """Entries of a feature cache (from manifest.json)."""
    entries = json.loads((Path(cache_dir) / "manifest.json").read_text())["pieces"]
    return [e for e in entries if e["status"] == "ok"] if ok_only else entries


def load_features(cache_dir: str | os.PathLike, entry: dict) -> dict[str, np.ndarray]:
    """The npz arrays of one cached piece as a dict."""
    with np.load(Path(cache_dir) / entry["features"], allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def audio_path(cache_dir: str | os.PathLike, entry: dict) -> Path:
    """Absolute path of a cached piece's mono audio (at the cache's ``sample_rate``)."""
    p = Path(entry["audio"])
    return p if p.is_absolute() else Path(cache_dir) / p
