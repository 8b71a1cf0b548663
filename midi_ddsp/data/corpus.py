"""Build the soundfont training corpus: melodies -> humanised performances -> FluidSynth audio.

Layout of a corpus directory::

    calibration.json            soundfont tuning/range per instrument (see calibration.py)
    melody_cache/               parsed melodies, one JSON per source file
    plan.json                   every planned piece (id, instrument, melody, transpose, seed, duration)
    pieces/<abbr>/<id>.wav      mono PCM-24 audio at the corpus rate (dry; 24 bits: a 16-bit file's
                                quantisation floor, ~-98 dBFS, is a hiss the generator would learn)
    pieces/<abbr>/<id>.npz      performed notes + expression curves (PerformedPiece.save)
    pieces/<abbr>/<id>.mid      the MIDI that was rendered
    manifest.jsonl              one line per finished piece (status ok / error with reason), appended
    manifest.json               the same, complete and in plan order, written at the end
    summary.json                minutes per instrument, build time, size, errors

The plan depends only on the seed, the configuration and the source files, so a re-run resumes: pieces
whose files exist and are in the manifest are skipped. Rendering runs in ``n_workers`` processes.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from midi_ddsp.data import calibration as calib
from midi_ddsp.data.corpus_sources import (
    DEFAULT_COLLECTIONS, BlacklistedSourceError, Melody, gather_melodies, is_blacklisted, music21_corpus_root,
    select_music21_files,
)
from midi_ddsp.data.jobs import run_journaled
from midi_ddsp.data.performer import MelodyTooShortError, PerformedPiece, PerformerConfig, perform
from midi_ddsp.instruments import INSTRUMENTS, by_name
from midi_ddsp.synthesis.sizes import DEFAULT_SAMPLE_RATE


@dataclass
class CorpusConfig:
    """Settings of :func:`build_corpus` (mirrors conf/data/corpus.yaml)."""

    out_dir: str = "corpus"
    seed: int = 0
    minutes_per_instrument: float = 12.0
    instruments: list[str] | None = None          # None: all 13
    use_music21: bool = True
    collections: dict[str, int] | None = None     # None: DEFAULT_COLLECTIONS
    midi_dirs: list[str] = field(default_factory=list)
    sample_rate: int = DEFAULT_SAMPLE_RATE
    n_workers: int = 2
    soundfont: str | None = None
    gain: float = 0.5
    min_piece_s: float = 20.0
    max_piece_s: float = 60.0
    keep_midi: bool = True
    progress: bool = True


def melody_fits(melody: Melody, low: int, high: int, center_frac: float = 0.45) -> int | None:
    """Best octave transposition (semitones, multiple of 12) that puts ``melody`` inside [low, high],
    choosing the one whose mean pitch is nearest the instrument's comfortable centre; None if none fits."""
    lo, hi = melody.pitch_range
    mean = float(np.mean(melody.pitch))
    center = low + center_frac * (high - low)
    best = None
    for k in range(-5, 6):
        s = 12 * k
        if lo + s >= low and hi + s <= high:
            d = abs(mean + s - center)
            if best is None or d < best[0]:
                best = (d, s)
    return None if best is None else best[1]


def _collection(m: Melody) -> str:
    src = m.source.replace("\\", "/")
    return src.split("/")[0] if "/" in src and not os.path.isabs(src) else "user"


def plan_corpus(melodies: list[Melody], cfg: CorpusConfig, cal: dict | None) -> list[PerformedPiece]:
    """Assign melodies to instruments until each has ``minutes_per_instrument`` of audio.

    Always serves the instrument with the least audio so far; picks a collection at random among those
    with a fitting melody (so styles stay mixed), then the least-used fitting melody of it. Each
    performance gets its own seed derived from ``cfg.seed``. Deterministic.
    """
    rng = np.random.default_rng(cfg.seed)
    insts = [by_name(n) for n in cfg.instruments] if cfg.instruments else list(INSTRUMENTS)
    pcfg = PerformerConfig(min_duration_s=cfg.min_piece_s, max_duration_s=cfg.max_piece_s,
                           shortest_piece_s=min(8.0, cfg.min_piece_s))
    ranges, offsets = {}, {}
    for inst in insts:
        if cal is not None:
            ranges[inst.name] = calib.usable_range(cal, inst)
            offsets[inst.name] = calib.tuning_offsets(cal, inst.name)
        else:
            ranges[inst.name] = (inst.low, inst.high)
            offsets[inst.name] = {}
    fits: dict[str, list[tuple[int, int]]] = {}
    for inst in insts:
        lo, hi = ranges[inst.name]
        fits[inst.name] = [(i, s) for i, m in enumerate(melodies) if (s := melody_fits(m, lo, hi)) is not None]
    target = cfg.minutes_per_instrument * 60.0
    total = {inst.name: 0.0 for inst in insts}
    count = {inst.name: 0 for inst in insts}
    uses: Counter = Counter()
    dead: set[int] = set()
    exhausted: set[str] = set()
    pieces: list[PerformedPiece] = []
    k = 0
    while True:
        open_insts = [i for i in insts if total[i.name] < target and i.name not in exhausted]
        if not open_insts:
            break
        inst = min(open_insts, key=lambda i: (total[i.name], i.id))
        cands = [(i, s) for i, s in fits[inst.name] if i not in dead and uses[(i, inst.name)] == 0]
        if not cands:
            exhausted.add(inst.name)
            continue
        by_coll = defaultdict(list)
        for i, s in cands:
            by_coll[_collection(melodies[i])].append((i, s))
        colls = sorted(by_coll)
        coll = colls[int(rng.integers(len(colls)))]
        group = by_coll[coll]
        least = min(uses[i] for i, _ in group)
        group = [(i, s) for i, s in group if uses[i] == least]
        i, s = group[int(rng.integers(len(group)))]
        seed = int(np.random.SeedSequence([cfg.seed, k]).generate_state(1)[0])
        k += 1
        mel = melodies[i]
        if is_blacklisted(mel.source, mel.composer, mel.title):  # belt and braces
            raise BlacklistedSourceError(f"blacklisted melody reached the planner: {mel.key}")
        pid = f"{inst.abbreviation}_{count[inst.name]:04d}"
        try:
            piece = perform(mel, inst, seed=seed, transpose=s, config=pcfg,
                            tuning_offsets_cents=offsets[inst.name], name=pid)
        except MelodyTooShortError:
            dead.add(i)
            continue
        uses[i] += 1
        uses[(i, inst.name)] += 1
        count[inst.name] += 1
        total[inst.name] += piece.duration_s
        pieces.append(piece)
    return pieces


def _piece_paths(out_dir: Path, piece: PerformedPiece) -> dict[str, Path]:
    abbr = by_name(piece.instrument).abbreviation
    d = out_dir / "pieces" / abbr
    return {"wav": d / f"{piece.name}.wav", "npz": d / f"{piece.name}.npz", "mid": d / f"{piece.name}.mid"}


def render_piece(piece: PerformedPiece, out_dir: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 soundfont: str | None = None, gain: float = 0.5, keep_midi: bool = True) -> dict:
    """Render one performance and write its wav/npz/mid. Returns its manifest entry (never raises)."""
    import soundfile as sf

    from midi_ddsp.data.render import render_tracks

    out = Path(out_dir)
    paths = _piece_paths(out, piece)
    paths["wav"].parent.mkdir(parents=True, exist_ok=True)
    entry = {"id": piece.name, "instrument": piece.instrument, "instrument_id": piece.instrument_id,
             "melody": piece.melody_key, "transpose": piece.transpose, "seed": piece.seed,
             "duration_s": round(piece.duration_s, 3), "n_notes": piece.n_notes, "bpm": round(piece.bpm, 1),
             "pitch_min": int(piece.notes["pitch"].min()), "pitch_max": int(piece.notes["pitch"].max())}
    t0 = time.perf_counter()
    try:
        audio = render_tracks(piece.to_tracks(), piece.duration_s, sample_rate, soundfont=soundfont, gain=gain,
                              midi_path=paths["mid"])
        if not np.all(np.isfinite(audio)):
            raise ValueError("non-finite samples")
        peak = float(np.max(np.abs(audio)))
        if peak < 1e-4:
            raise ValueError(f"silent render (peak {peak:.2e})")
        if peak > 0.99:  # never clip: scale down, and record it
            audio = audio * (0.99 / peak)
            entry["scaled"] = 0.99 / peak
        piece.save(paths["npz"])
        tmp = paths["wav"].with_suffix(".tmp.wav")
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_24")
        os.replace(tmp, paths["wav"])
        if not keep_midi:
            paths["mid"].unlink(missing_ok=True)
        entry.update(status="ok", peak_db=round(20 * np.log10(peak), 2),
                     rms_db=round(float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)), 2),
                     files={k: str(v.relative_to(out)) for k, v in paths.items() if k != "mid" or keep_midi})
    except Exception as e:  # noqa: BLE001 - one bad piece never aborts a build
        entry.update(status="error", reason=f"{type(e).__name__}: {e}")
    entry["render_s"] = round(time.perf_counter() - t0, 3)
    return entry


def _render_job(args):
    piece, out_dir, sr, sf2, gain, keep_midi = args
    return render_piece(piece, out_dir, sr, sf2, gain, keep_midi)


def _read_manifest_lines(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line cut by an interrupted build
            done[e["id"]] = e
    return done


def dir_size_bytes(path: str | os.PathLike) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def build_corpus(cfg: CorpusConfig) -> dict:
    """Build (or resume) a corpus; returns the summary that is also written to ``summary.json``."""
    t_start = time.perf_counter()
    cpu_start = _cpu_seconds()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = _logger(cfg.progress)
    sf2 = str(calib.find_soundfont(cfg.soundfont))
    insts = [by_name(n) for n in cfg.instruments] if cfg.instruments else list(INSTRUMENTS)
    cal = calib.load_or_calibrate(out / "calibration.json", sf2, cfg.sample_rate, insts)
    log(f"calibration ready ({time.perf_counter() - t_start:.1f} s)")

    files: list[str] = []
    root = str(music21_corpus_root()) if cfg.use_music21 else None
    if cfg.use_music21:
        files += select_music21_files(cfg.collections if cfg.collections is not None else DEFAULT_COLLECTIONS,
                                      seed=cfg.seed)
    for d in cfg.midi_dirs:
        files += sorted(str(p) for p in Path(d).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    melodies, parse_errors = gather_melodies(files, out / "melody_cache", n_workers=cfg.n_workers,
                                             corpus_root=root, progress=cfg.progress)
    log(f"{len(melodies)} melodies from {len(files)} files, {len(parse_errors)} skipped "
        f"({time.perf_counter() - t_start:.1f} s)")
    if not melodies:
        raise RuntimeError("no usable melodies (check collections / midi_dirs)")

    pieces = plan_corpus(melodies, cfg, cal)
    plan = [{"id": p.name, "instrument": p.instrument, "melody": p.melody_key, "transpose": p.transpose,
             "seed": p.seed, "duration_s": round(p.duration_s, 3)} for p in pieces]
    (out / "plan.json").write_text(json.dumps({"config": asdict(cfg), "pieces": plan}, indent=1))
    log(f"planned {len(pieces)} pieces ({time.perf_counter() - t_start:.1f} s)")

    manifest_path = out / "manifest.jsonl"
    done = _read_manifest_lines(manifest_path)
    todo = []
    for p in pieces:
        e = done.get(p.name)
        paths = _piece_paths(out, p)
        if e and e.get("status") == "ok" and e.get("seed") == p.seed and paths["wav"].is_file() \
                and paths["npz"].is_file():
            continue
        if e and e.get("status") == "error" and e.get("seed") == p.seed:
            continue  # failed before with the same plan: keep the recorded reason
        todo.append(p)
    log(f"{len(pieces) - len(todo)} pieces already built, {len(todo)} to render")
    jobs = [(p, str(out), cfg.sample_rate, sf2, cfg.gain, cfg.keep_midi) for p in todo]
    run_journaled(_render_job, jobs, cfg.n_workers, "render", cfg.progress, manifest_path, done)

    entries = [done[p.name] for p in pieces if p.name in done]
    (out / "manifest.json").write_text(json.dumps({"sample_rate": cfg.sample_rate, "soundfont": sf2,
                                                   "pieces": entries}, indent=1))
    minutes = defaultdict(float)
    for e in entries:
        if e.get("status") == "ok":
            minutes[e["instrument"]] += e["duration_s"] / 60.0
    summary = {
        "n_pieces": len(entries),
        "n_ok": sum(e.get("status") == "ok" for e in entries),
        "errors": {e["id"]: e.get("reason") for e in entries if e.get("status") != "ok"},
        "parse_errors": parse_errors,
        "minutes_per_instrument": {k: round(v, 2) for k, v in sorted(minutes.items())},
        "total_minutes": round(sum(minutes.values()), 2),
        "build_s_this_run": round(time.perf_counter() - t_start, 1),
        "build_cpu_s_this_run": round(_cpu_seconds() - cpu_start, 1),
        "size_bytes": dir_size_bytes(out),
        "n_melodies": len(melodies),
        "seed": cfg.seed,
        "n_workers": cfg.n_workers,
        "short_of_target": sorted(i for i in (cfg.instruments or [x.name for x in INSTRUMENTS])
                                  if minutes.get(by_name(i).name, 0.0) < cfg.minutes_per_instrument),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if summary["short_of_target"]:
        log(f"warning: not enough fitting melodies for {', '.join(summary['short_of_target'])} "
            f"(add collections or midi_dirs)")
    log(f"done: {summary['n_ok']}/{summary['n_pieces']} pieces, {summary['total_minutes']:.1f} min, "
        f"{summary['size_bytes'] / 1e6:.0f} MB, {summary['build_s_this_run']:.0f} s")
    return summary


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (workers, fluidsynth)."""
    import resource

    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def load_manifest(corpus_dir: str | os.PathLike, ok_only: bool = True) -> list[dict]:
    """Entries of a built corpus (from manifest.json, or manifest.jsonl while a build runs)."""
    d = Path(corpus_dir)
    if (d / "manifest.json").is_file():
        entries = json.loads((d / "manifest.json").read_text())["pieces"]
    else:
        entries = list(_read_manifest_lines(d / "manifest.jsonl").values())
    return [e for e in entries if e.get("status") == "ok"] if ok_only else entries


def _logger(enabled: bool):
    def log(msg: str) -> None:
        if enabled:
            print(f"[corpus {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    return log
