"""Melody sources for the training corpus: music21's bundled corpus and user MIDI folders.

A :class:`Melody` is a plain monophonic note list in quarter lengths (score time), cheap to cache as
JSON; parsing music21 files is the slow part of a build, so each parsed file is cached once.

Evaluation blacklist
--------------------
String quartets and every work by Haydn, Mozart, Beethoven, Corelli, Schubert, Weber and Verdi are
reserved for evaluation and must never enter a training corpus. :func:`is_blacklisted` checks both
the file path and the composer/title metadata (word-prefix match for composers, so Monteverdi is not
Verdi; it errs on the side of excluding, e.g. it also drops Webern). The check runs before a file is
parsed (path) and again after (metadata), and the corpus builder re-checks every melody it uses.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from midi_ddsp.data.jobs import run_jobs

#: Reserved composers: a text is blacklisted when one of its words *starts with* one of these (so
#: "folkHaydn.abc", "Beethovens" and "W.A.Mozart" hit, while "Monteverdi" does not hit "verdi").
BLACKLIST_COMPOSERS: tuple[str, ...] = (
    "haydn", "mozart", "beethoven", "corelli", "schubert", "weber", "verdi",
)
#: Reserved genres: blacklisted when the text contains one of these anywhere (also inside compounds such
#: as "Streichquartett").
BLACKLIST_SUBSTRINGS: tuple[str, ...] = ("quartet", "quatuor", "quartetto")
BLACKLIST_TOKENS: tuple[str, ...] = BLACKLIST_COMPOSERS + BLACKLIST_SUBSTRINGS

_WORD_SPLIT = re.compile(r"[^A-Za-z]+|(?<=[a-z])(?=[A-Z])")


#: music21 corpus collections used by default and how many files to draw from each (seeded choice by
#: path, no parsing needed to choose). Multi-tune files (opus) yield up to ``MAX_TUNES_PER_OPUS`` tunes.
DEFAULT_COLLECTIONS: dict[str, int] = {
    "bach": 120,            # chorales: 4 voices each (soprano/alto/tenor/bass lines)
    "ryansMammoth": 150,    # fiddle tunes (reels, jigs, hornpipes, airs)
    "palestrina": 40,       # renaissance polyphony, 4-6 voices
    "monteverdi": 24,       # madrigals, 5 voices
    "trecento": 16,         # 14th-century polyphony
    "oneills1850": 3,       # Irish tunes (multi-tune files)
    "essenFolksong": 1,     # European folk songs (multi-tune files, slow to parse)
    "josquin": 4,
}
MAX_TUNES_PER_OPUS = 25


class BlacklistedSourceError(ValueError):
    """Raised when a blacklisted (evaluation-only) work would enter a training corpus."""


def is_blacklisted(*texts: str | None) -> str | None:
    """Return the reserved name/genre found in any of ``texts`` (path, composer, title), else None.

    Words are split at non-letters and at camelCase boundaries; a word that starts with a reserved
    composer's name hits (this errs on the side of excluding: "Webern" hits "weber"); the genre words
    hit anywhere.
    """
    for t in texts:
        if not t:
            continue
        s = str(t)
        low = s.lower()
        for sub in BLACKLIST_SUBSTRINGS:
            if sub in low:
                return sub
        for word in _WORD_SPLIT.split(s):
            w = word.lower()
            for tok in BLACKLIST_COMPOSERS:
                if w.startswith(tok):
                    return tok
    return None


@dataclass
class Melody:
    """A monophonic line in score time.

    Attributes:
        key: unique id, e.g. ``"bach/bwv66.6.mxl#0"`` (path inside the corpus, part or tune index).
        source: file path the melody came from.
        composer, title, part: metadata (may be empty).
        pitch: MIDI pitches.
        onset_ql, duration_ql: note starts and lengths in quarter notes (score time, sorted, no overlap).
        beat_strength: metrical strength per note in [0, 1] (1 = downbeat).
        fermata: True where the note carries a fermata.
        seconds_per_ql: set for melodies whose timing is already in seconds (MIDI input); None for scores.
    """

    key: str
    source: str
    composer: str = ""
    title: str = ""
    part: str = ""
    pitch: list[int] = field(default_factory=list)
    onset_ql: list[float] = field(default_factory=list)
    duration_ql: list[float] = field(default_factory=list)
    beat_strength: list[float] = field(default_factory=list)
    fermata: list[bool] = field(default_factory=list)
    seconds_per_ql: float | None = None

    @property
    def n_notes(self) -> int:
        return len(self.pitch)

    @property
    def pitch_range(self) -> tuple[int, int]:
        return (min(self.pitch), max(self.pitch)) if self.pitch else (0, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Melody":
        return cls(**d)


def make_monophonic(pitch, onset, duration, *extra):
    """Reduce overlapping notes to one line (highest note wins at a shared onset; a note is cut at
    the next onset). Returns the filtered arrays (pitch, onset, duration, *extra) sorted by onset."""
    pitch = np.asarray(pitch)
    onset = np.asarray(onset, dtype=np.float64)
    duration = np.asarray(duration, dtype=np.float64)
    if pitch.size == 0:
        return (pitch, onset, duration) + tuple(np.asarray(e) for e in extra)
    order = np.lexsort((-pitch, onset))
    pitch, onset, duration = pitch[order], onset[order], duration[order]
    extra = tuple(np.asarray(e)[order] for e in extra)
    keep = np.ones(pitch.size, dtype=bool)
    keep[1:] = onset[1:] > onset[:-1] + 1e-9  # first (highest) note at each onset
    pitch, onset, duration = pitch[keep], onset[keep], duration[keep]
    extra = tuple(e[keep] for e in extra)
    ends = onset + duration
    ends[:-1] = np.minimum(ends[:-1], onset[1:])
    duration = ends - onset
    ok = duration > 1e-6
    return (pitch[ok], onset[ok], duration[ok]) + tuple(e[ok] for e in extra)


def _score_to_melodies(score, key_prefix: str, source: str, composer: str, title: str) -> list[Melody]:
    from music21 import chord, expressions, note

    out = []
    for pi, part in enumerate(score.parts):
        try:
            part = part.stripTies()
        except Exception:  # noqa: BLE001 - malformed ties: use as is
            pass
        pitches, onsets, durs, strengths, ferm = [], [], [], [], []
        flat = part.flatten()
        for n in flat.notes:
            if isinstance(n, chord.Chord):
                if not n.pitches:
                    continue
                midi = max(p.midi for p in n.pitches)  # chord (double stop) -> top note
            elif isinstance(n, note.Note):
                midi = n.pitch.midi
            else:
                continue
            d = float(n.duration.quarterLength)
            if d <= 0:  # grace notes
                continue
            try:
                bs = float(n.beatStrength)
            except Exception:  # noqa: BLE001
                bs = 0.5
            pitches.append(int(midi))
            onsets.append(float(n.getOffsetBySite(flat)))
            durs.append(d)
            strengths.append(bs)
            ferm.append(any(isinstance(e, expressions.Fermata) for e in n.expressions))
        if len(pitches) < 8:
            continue
        p, o, d, s, f = make_monophonic(pitches, onsets, durs, strengths, ferm)
        o = o - o[0]
        name = getattr(part, "partName", None) or f"part{pi}"
        out.append(Melody(key=f"{key_prefix}#{pi}", source=source, composer=composer, title=title,
                          part=str(name), pitch=[int(x) for x in p], onset_ql=[float(x) for x in o],
                          duration_ql=[float(x) for x in d], beat_strength=[float(x) for x in s],
                          fermata=[bool(x) for x in f]))
    return out


def parse_music21_file(path: str, corpus_root: str | None = None) -> list[Melody]:
    """Parse one music21 corpus file into melodies (one per part; one per tune for multi-tune files).

    Blacklisted paths raise :class:`BlacklistedSourceError` before parsing; blacklisted metadata
    (composer/title) drops the melody after parsing.
    """
    from music21 import converter, stream

    rel = os.path.relpath(path, corpus_root) if corpus_root else str(path)
    tok = is_blacklisted(rel)
    if tok:
        raise BlacklistedSourceError(f"{rel}: blacklisted ({tok})")
    parsed = converter.parse(path)
    scores = list(parsed.scores)[:MAX_TUNES_PER_OPUS] if isinstance(parsed, stream.Opus) else [parsed]
    out = []
    for si, sc in enumerate(scores):
        md = sc.metadata
        composer = (md.composer or "") if md else ""
        title = (md.title or "") if md else ""
        if is_blacklisted(composer, title):
            continue
        prefix = f"{rel}@{si}" if len(scores) > 1 else rel
        out.extend(_score_to_melodies(sc, prefix, rel, str(composer), str(title)))
    return out


def music21_corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def select_music21_files(collections: dict[str, int] | None = None, seed: int = 0) -> list[str]:
    """Choose corpus files by path only (no parsing): a seeded sample of each collection.

    Returns absolute paths, blacklisted ones already removed.
    """
    collections = DEFAULT_COLLECTIONS if collections is None else collections
    root = music21_corpus_root()
    exts = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
    chosen = []
    for coll, count in sorted(collections.items()):
        d = root / coll
        if not d.is_dir() or count <= 0:
            continue
        files = sorted(str(p) for p in d.rglob("*") if p.suffix.lower() in exts)
        files = [f for f in files if not is_blacklisted(os.path.relpath(f, root))]
        if coll == "bach":  # chorales only (bwv*.mxl); drop alternative encodings of the same piece
            files = [f for f in files if Path(f).name.startswith("bwv") and f.endswith(".mxl")]
        rng = random.Random(f"{seed}:{coll}")
        rng.shuffle(files)
        chosen.extend(files[:count])
    return chosen


def _cache_name(path: str) -> str:
    st = os.stat(path)
    h = hashlib.sha1(f"{path}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:16]
    return f"{Path(path).stem[:40]}-{h}.json"


def load_or_parse(path: str, cache_dir: str | os.PathLike | None, corpus_root: str | None = None
                  ) -> tuple[list[Melody], str | None]:
    """Parse a file (or load its cached melodies). Returns (melodies, error-or-None); never raises."""
    cache_file = Path(cache_dir) / _cache_name(path) if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text())
            return [Melody.from_dict(d) for d in data["melodies"]], data.get("error")
        except Exception:  # noqa: BLE001 - unreadable cache: parse again
            pass
    err = None
    try:
        if Path(path).suffix.lower() in (".mid", ".midi"):
            mels = melodies_from_midi(path)
        else:
            mels = parse_music21_file(path, corpus_root)
    except BlacklistedSourceError as e:
        mels, err = [], str(e)
    except Exception as e:  # noqa: BLE001 - one bad file never aborts a build
        mels, err = [], f"{type(e).__name__}: {e}"
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"path": path, "error": err, "melodies": [m.to_dict() for m in mels]}))
        os.replace(tmp, cache_file)
    return mels, err


def melodies_from_midi(path: str | os.PathLike) -> list[Melody]:
    """Read a MIDI file into monophonic melodies (one per non-drum instrument track, top line).

    Timing stays in seconds (``seconds_per_ql = 0.5``: one "quarter" is 0.5 s), so the performer keeps
    the file's own tempo apart from its small tempo variations.
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    composer = ""
    tok = is_blacklisted(str(path))
    if tok:
        raise BlacklistedSourceError(f"{path}: blacklisted ({tok})")
    out = []
    for ti, inst in enumerate(pm.instruments):
        if inst.is_drum or len(inst.notes) < 8:
            continue
        if is_blacklisted(inst.name):
            continue
        p = [n.pitch for n in inst.notes]
        o = [n.start for n in inst.notes]
        d = [n.end - n.start for n in inst.notes]
        p, o, d = make_monophonic(p, o, d)
        if p.size < 8:
            continue
        o = o - o[0]
        spq = 0.5
        out.append(Melody(key=f"{Path(path).name}#{ti}", source=str(path), composer=composer,
                          title=Path(path).stem, part=inst.name or f"track{ti}",
                          pitch=[int(x) for x in p], onset_ql=[float(x) / spq for x in o],
                          duration_ql=[float(x) / spq for x in d],
                          beat_strength=[0.5] * int(p.size), fermata=[False] * int(p.size),
                          seconds_per_ql=spq))
    return out


def _parse_job(args):
    path, cache_dir, root = args
    return path, load_or_parse(path, cache_dir, root)


def gather_melodies(files: list[str], cache_dir: str | os.PathLike | None, n_workers: int = 2,
                    corpus_root: str | None = None, progress: bool = True
                    ) -> tuple[list[Melody], dict[str, str]]:
    """Parse ``files`` (cached, parallel); returns (melodies, {path: error}) in file order.

    Every returned melody has passed the blacklist on path, composer and title.
    """
    jobs = [(f, str(cache_dir) if cache_dir else None, corpus_root) for f in files]
    results = dict(run_jobs(_parse_job, jobs, n_workers, "parse melodies", progress, chunksize=4))
    melodies, errors = [], {}
    for f in files:
        mels, err = results[f]
        if err:
            errors[f] = err
        for m in mels:
            if is_blacklisted(m.source, m.composer, m.title):
                errors[f] = "blacklisted metadata"
                continue
            melodies.append(m)
    return melodies, errors
