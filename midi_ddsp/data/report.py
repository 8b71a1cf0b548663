"""Corpus report: minutes per instrument, pitch ranges, note lengths, sources, expression statistics.

``write_report(corpus_dir, out)`` writes ``<out>.txt`` and ``<out>.png`` and returns both paths.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from midi_ddsp.instruments import INSTRUMENTS

NOTE_LENGTH_BINS_S = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6, 2.4, 3.2, 6.4, 100.0])


def corpus_statistics(corpus_dir: str | Path) -> dict:
    """Gather per-instrument statistics from a built corpus (its manifest and per-piece npz files)."""
    from midi_ddsp.data.corpus import load_manifest
    from midi_ddsp.data.performer import ARTICULATIONS, PerformedPiece

    root = Path(corpus_dir)
    entries = load_manifest(root, ok_only=False)
    ok = [e for e in entries if e.get("status") == "ok"]
    stats = {i.name: {"minutes": 0.0, "pieces": 0, "notes": 0, "pitch_min": None, "pitch_max": None,
                      "lengths": [], "vibrato_notes": 0, "vibrato_rates": [], "vibrato_depths": [],
                      "articulation": Counter(), "velocity": [], "bpm": []} for i in INSTRUMENTS}
    sources = Counter()
    for e in ok:
        s = stats[e["instrument"]]
        p = PerformedPiece.load(root / e["files"]["npz"])
        n = p.notes
        s["minutes"] += e["duration_s"] / 60.0
        s["pieces"] += 1
        s["notes"] += p.n_notes
        lo, hi = int(n["pitch"].min()), int(n["pitch"].max())
        s["pitch_min"] = lo if s["pitch_min"] is None else min(s["pitch_min"], lo)
        s["pitch_max"] = hi if s["pitch_max"] is None else max(s["pitch_max"], hi)
        s["lengths"].append(n["offset_s"] - n["onset_s"])
        vib = n["vibrato_depth_cents"] > 0
        s["vibrato_notes"] += int(vib.sum())
        s["vibrato_rates"].append(n["vibrato_rate_hz"][vib])
        s["vibrato_depths"].append(n["vibrato_depth_cents"][vib])
        s["articulation"].update(ARTICULATIONS[a] for a in n["articulation"])
        s["velocity"].append(n["velocity"])
        s["bpm"].append(e.get("bpm", p.bpm))
        sources[e["melody"].split("/")[0] if "/" in e["melody"] else "user"] += 1
    for s in stats.values():
        for k in ("lengths", "vibrato_rates", "vibrato_depths", "velocity"):
            s[k] = np.concatenate(s[k]) if s[k] else np.zeros(0)
    summary = {}
    if (root / "summary.json").is_file():
        summary = json.loads((root / "summary.json").read_text())
    return {"instruments": stats, "sources": sources, "n_pieces": len(entries), "n_ok": len(ok),
            "errors": [(e["id"], e.get("reason")) for e in entries if e.get("status") != "ok"],
            "summary": summary}


def _note_name(p: int | None) -> str:
    if p is None:
        return "-"
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{names[p % 12]}{p // 12 - 1}"


def format_cache_summary(cache_dir: str | Path) -> list[str]:
    p = Path(cache_dir) / "summary.json"
    if not p.is_file():
        return []
    c = json.loads(p.read_text())
    lines = ["", f"feature cache ({cache_dir}): {c['n_ok']} pieces ok, {c['n_skipped']} skipped; "
                 f"{c['x_realtime_per_process']}x real time per process; last run {c['wall_s_this_run'] / 60:.1f} min"]
    lines += [f"  skipped {k}: {v}" for k, v in sorted(c.get("skipped", {}).items())]
    return lines


def format_report(st: dict) -> str:
    lines = ["# Soundfont training corpus", ""]
    sm = st["summary"]
    if sm:
        lines += [f"pieces: {st['n_ok']} ok of {st['n_pieces']}; total {sm.get('total_minutes', 0):.1f} min of audio; "
                  f"size {sm.get('size_bytes', 0) / 1e6:.0f} MB; seed {sm.get('seed')}; melodies available "
                  f"{sm.get('n_melodies')}", ""]
        if "build_s_this_run" in sm:
            lines += [f"build time of the last run (wall clock, {sm.get('n_workers', 2)} processes, shared 2-core "
                      f"machine): {sm['build_s_this_run'] / 60:.1f} min"
                      + (f"; CPU time {sm['build_cpu_s_this_run'] / 60:.1f} min" if "build_cpu_s_this_run" in sm else ""),
                      ""]
        if sm.get("short_of_target"):
            lines += [f"below the per-instrument target: {', '.join(sm['short_of_target'])}", ""]
    hdr = (f"{'instrument':<12} {'min':>6} {'pieces':>6} {'notes':>6} {'range':>11} {'med len s':>9} "
           f"{'vib %':>6} {'vib Hz':>10} {'vib cents':>10} {'legato/det/stacc %':>19} {'vel':>9} {'bpm':>8}")
    lines += [hdr, "-" * len(hdr)]
    for name, s in st["instruments"].items():
        n = max(s["notes"], 1)
        art = s["articulation"]
        tot = max(sum(art.values()), 1)
        rates, depths = s["vibrato_rates"], s["vibrato_depths"]
        vel = s["velocity"]
        vel_s = f"{vel.min()}-{vel.max()}" if vel.size else "-"
        bpm_s = f"{min(s['bpm']):.0f}-{max(s['bpm']):.0f}" if s["bpm"] else "-"
        lines.append(
            f"{name:<12} {s['minutes']:6.1f} {s['pieces']:6d} {s['notes']:6d} "
            f"{_note_name(s['pitch_min']) + '-' + _note_name(s['pitch_max']):>11} "
            f"{np.median(s['lengths']) if s['lengths'].size else 0:9.2f} {100 * s['vibrato_notes'] / n:6.1f} "
            f"{(f'{rates.min():.1f}-{rates.max():.1f}' if rates.size else '-'):>10} "
            f"{(f'{depths.min():.0f}-{depths.max():.0f}' if depths.size else '-'):>10} "
            f"{'/'.join(str(round(100 * art[a] / tot)) for a in ('legato', 'detache', 'staccato')):>19} "
            f"{vel_s:>9} {bpm_s:>8}")
    lines += ["", "note lengths (seconds), all instruments:"]
    alllen = np.concatenate([s["lengths"] for s in st["instruments"].values()])
    hist, _ = np.histogram(alllen, NOTE_LENGTH_BINS_S)
    for a, b, c in zip(NOTE_LENGTH_BINS_S[:-1], NOTE_LENGTH_BINS_S[1:], hist):
        lines.append(f"  {a:5.2f}-{b:<6.2f} {c:7d} {'#' * int(60 * c / max(hist.max(), 1))}")
    lines += ["", "pieces per source collection: " + ", ".join(f"{k} {v}" for k, v in sorted(st["sources"].items()))]
    if st["errors"]:
        lines += ["", f"failed pieces ({len(st['errors'])}):"] + [f"  {i}: {r}" for i, r in st["errors"]]
    return "\n".join(lines) + "\n"


def plot_report(st: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(st["instruments"])
    s = st["instruments"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    ax = axes[0]
    ax.barh(names, [s[n]["minutes"] for n in names], color="tab:blue")
    ax.axvline(10, color="tab:red", ls="--", lw=1, label="10 min target")
    ax.invert_yaxis()
    ax.set_xlabel("minutes of audio")
    ax.set_title("Audio per instrument")
    ax.legend(loc="lower right")
    ax = axes[1]
    for k, (n, inst) in enumerate(zip(names, INSTRUMENTS)):
        ax.plot([inst.low, inst.high], [k, k], color="0.8", lw=8, solid_capstyle="butt")
        if s[n]["pitch_min"] is not None:
            ax.plot([s[n]["pitch_min"], s[n]["pitch_max"]], [k, k], color="tab:green", lw=4, solid_capstyle="butt")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("MIDI pitch")
    ax.set_title("Pitch range used (green) vs instrument range (grey)")
    ax = axes[2]
    allen = {fam: np.concatenate([s[n]["lengths"] for n in names if n in members] or [np.zeros(0)])
             for fam, members in (("strings", names[0:4]), ("winds", names[4:9]), ("brass", names[9:13]))}
    bins = np.geomspace(0.04, 8.0, 40)
    for fam, x in allen.items():
        ax.hist(np.clip(x, 0.04, 8.0), bins=bins, histtype="step", lw=1.5, label=fam)
    ax.set_xscale("log")
    ax.set_xlabel("note length (s)")
    ax.set_ylabel("notes")
    ax.set_title("Note-length histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(corpus_dir: str | Path, out: str | Path, cache_dir: str | Path | None = None
                 ) -> tuple[Path, Path]:
    """Write ``<out>.txt`` and ``<out>.png`` for the corpus in ``corpus_dir`` (plus the feature cache's
    figures when ``cache_dir`` holds one)."""
    if not Path(corpus_dir).is_dir():
        raise FileNotFoundError(f"corpus directory {corpus_dir} does not exist")
    st = corpus_statistics(corpus_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    txt, png = out.with_suffix(".txt"), out.with_suffix(".png")
    text = format_report(st)
    if cache_dir is not None:
        text += "\n".join(format_cache_summary(cache_dir)) + "\n"
    txt.write_text(text)
    plot_report(st, png)
    return txt, png
