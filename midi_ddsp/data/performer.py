"""A humanising performer: score-time melody -> expressive MIDI + the exact expression it played.

Given a :class:`~midi_ddsp.data.corpus_sources.Melody` and an instrument, :func:`perform` decides, from a
seed, how a player would shape it:

* **Tempo**: a base tempo from the melody's note values (chorale quarters slower, dance-tune eighths
  quicker), a slow random tempo drift (a few per cent), phrase-final ritardando, fermatas held longer.
* **Phrasing**: phrases end at rests, fermatas, long notes and every few bars; each phrase gets its own
  dynamic level (velocity) and a swell (CC11) that rises to a peak and falls away; long notes get
  a messa di voce (crescendo/diminuendo) on top.
* **Articulation** per phrase: legato (notes joined), detache (small gaps), staccato (short notes),
  plus accents (louder attacks) on some strong beats. Repeated pitches are always re-articulated.
* **Breathing**: winds and brass take a breath gap (120-300 ms) at phrase ends; strings lift the bow.
* **Vibrato** by pitch bend: rate about 4.5-7 Hz, depth per note, delayed onset with a fade-in on long
  notes; how often and how deep depends on the instrument (strings and flute/sax almost always; clarinet
  and horn hardly ever).
* **Timing and tuning**: onsets jitter by a few milliseconds; each note is a few cents off; some notes
  scoop into pitch.

Everything that reaches the synthesiser is recorded: the performed notes (pitch, onset, offset,
velocity, articulation, vibrato parameters) and frame-level curves at 250 Hz, including the true f0
implied by note pitch + pitch bend, corrected by the soundfont's measured tuning (see
:mod:`midi_ddsp.data.calibration`) so that it is the pitch that actually sounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from midi_ddsp.data.render import (
    BEND_RANGE_SEMITONES, FLUIDSYNTH_LATENCY_S, MidiTrack, bend_to_cents, cents_to_bend,
)
from midi_ddsp.instruments import Instrument

FRAME_RATE = 250.0

ARTICULATIONS = ("legato", "detache", "staccato")

# Instrument families by id (MIDI-DDSP order).
STRINGS = {0, 1, 2, 3}
WINDS = {4, 5, 6, 7, 8}
BRASS = {9, 10, 11, 12}

# id -> (probability of vibrato on a long-enough note, depth range in cents (peak), rate range in Hz)
VIBRATO = {
    0: (0.92, (12.0, 30.0), (5.2, 7.0)),   # violin
    1: (0.90, (12.0, 28.0), (5.0, 6.6)),   # viola
    2: (0.90, (10.0, 26.0), (4.8, 6.4)),   # cello
    3: (0.75, (8.0, 20.0), (4.5, 5.8)),    # double bass
    4: (0.80, (8.0, 20.0), (4.6, 6.0)),    # flute
    5: (0.75, (6.0, 16.0), (4.8, 6.2)),    # oboe
    6: (0.04, (3.0, 6.0), (4.5, 5.5)),     # clarinet: classical players rarely use vibrato
    7: (0.75, (8.0, 22.0), (4.6, 6.0)),    # saxophone
    8: (0.50, (5.0, 12.0), (4.6, 5.8)),    # bassoon
    9: (0.30, (5.0, 12.0), (4.8, 6.2)),    # trumpet
    10: (0.08, (3.0, 7.0), (4.5, 5.5)),    # horn: rarely
    11: (0.20, (4.0, 10.0), (4.5, 5.8)),   # trombone
    12: (0.12, (3.0, 8.0), (4.5, 5.5)),    # tuba
}

# family -> articulation probabilities (legato, detache, staccato)
ARTIC_PROBS = {"strings": (0.45, 0.40, 0.15), "winds": (0.50, 0.35, 0.15), "brass": (0.35, 0.45, 0.20)}


def family(instrument_id: int) -> str:
    if instrument_id in STRINGS:
        return "strings"
    if instrument_id in WINDS:
        return "winds"
    return "brass"


@dataclass
class PerformerConfig:
    """Knobs of the performer (all ranges are sampled uniformly per piece/phrase/note).

    Times in seconds, levels in dB, pitch in cents.
    """

    min_duration_s: float = 20.0        # target piece length is drawn from [min, max]
    max_duration_s: float = 60.0
    shortest_piece_s: float = 8.0       # melodies shorter than this are rejected
    lead_in_s: tuple[float, float] = (0.3, 0.6)
    tail_s: float = 1.2                 # silence rendered after the last note-off (release)
    tempo_drift: float = 0.04           # std of the log tempo drift
    ritardando: tuple[float, float] = (0.0, 0.15)
    fermata_stretch: tuple[float, float] = (1.5, 2.2)
    onset_jitter_s: float = 0.006
    detune_cents: float = 3.0
    swell_db: tuple[float, float] = (3.0, 9.0)
    messa_di_voce_db: tuple[float, float] = (2.0, 5.0)
    accent_prob: float = 0.07
    breath_gap_s: tuple[float, float] = (0.12, 0.30)
    vibrato_min_note_s: float = 0.3
    scoop_prob: float = 0.12
    cc11_floor_db: float = -20.0


@dataclass
class PerformedPiece:
    """The performance of one melody by one instrument.

    ``notes``: dict of per-note arrays ``[n_notes]``: pitch (MIDI int), onset_s, offset_s (seconds,
    sounding note-on/off times), velocity (1..127), articulation (index into ARTICULATIONS), accent
    (bool), detune_cents, vibrato_depth_cents (0 = none), vibrato_rate_hz, vibrato_delay_s, phrase.

    ``curves``: dict of frame arrays ``[n_frames]`` at ``frame_rate`` (frame i at time i / frame_rate):
    f0_hz (true sounding f0; on rests it holds the last note's pitch, which is what a release tail
    sounds at), cents (deviation from the nominal note pitch in cents: detune + vibrato + scoop),
    note_index (-1 where no note is held), cc11 (0..127), expression_db (40 log10(cc11/127): the gain
    CC11 applies under the SoundFont default modulator), velocity (velocity of the held note, 0 on rests),
    bend (the 14-bit pitch-bend value sent).
    """

    name: str
    instrument: str
    instrument_id: int
    program: int
    melody_key: str
    transpose: int
    seed: int
    duration_s: float
    bpm: float
    frame_rate: float = FRAME_RATE
    notes: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)

    @property
    def n_notes(self) -> int:
        return int(len(self.notes["pitch"]))

    def to_tracks(self, channel: int = 0, latency_s: float = FLUIDSYNTH_LATENCY_S) -> list[MidiTrack]:
        """MIDI events: notes, a pitch bend per frame where it changes, CC11 where it changes.

        Every event is sent ``latency_s`` early (see :data:`midi_ddsp.data.render.FLUIDSYNTH_LATENCY_S`) so
        that the rendered sound starts at the annotated times.
        """
        tr = MidiTrack(program=self.program, channel=channel)
        fr = self.frame_rate
        t = np.maximum(np.arange(len(self.curves["bend"])) / fr - latency_s, 0.0)
        bend = self.curves["bend"]
        ch = np.ones(bend.size, dtype=bool)
        ch[1:] = bend[1:] != bend[:-1]
        tr.extend(t[ch], "bend", bend[ch])
        cc = self.curves["cc11"]
        ch = np.ones(cc.size, dtype=bool)
        ch[1:] = cc[1:] != cc[:-1]
        tr.extend(t[ch], "cc", 11, cc[ch])
        n = self.notes
        # the bend a note starts with, sent exactly at its note-on (before it, same tick)
        on_frame = np.minimum(np.ceil(n["onset_s"] * fr).astype(np.int64), bend.size - 1)
        on_t = np.maximum(n["onset_s"] - latency_s, 0.0)
        tr.extend(on_t, "bend", bend[on_frame])
        tr.extend(on_t, "on", n["pitch"], n["velocity"])
        tr.extend(np.maximum(n["offset_s"] - latency_s, 0.0), "off", n["pitch"], 0)
        return [tr]

    def to_dict(self) -> dict:
        """Flat dict of numpy arrays and scalars (for ``np.savez``)."""
        d = {f"note_{k}": np.asarray(v) for k, v in self.notes.items()}
        d.update({f"curve_{k}": np.asarray(v) for k, v in self.curves.items()})
        for k in ("name", "instrument", "melody_key"):
            d[k] = np.asarray(getattr(self, k))
        for k in ("instrument_id", "program", "transpose", "seed"):
            d[k] = np.asarray(int(getattr(self, k)))
        for k in ("duration_s", "bpm", "frame_rate"):
            d[k] = np.asarray(float(getattr(self, k)))
        return d

    @classmethod
    def from_dict(cls, d) -> "PerformedPiece":
        notes = {k[5:]: np.asarray(d[k]) for k in d.keys() if k.startswith("note_")}
        curves = {k[6:]: np.asarray(d[k]) for k in d.keys() if k.startswith("curve_")}
        return cls(name=str(d["name"]), instrument=str(d["instrument"]), instrument_id=int(d["instrument_id"]),
                   program=int(d["program"]), melody_key=str(d["melody_key"]), transpose=int(d["transpose"]),
                   seed=int(d["seed"]), duration_s=float(d["duration_s"]), bpm=float(d["bpm"]),
                   frame_rate=float(d["frame_rate"]), notes=notes, curves=curves)

    def save(self, path) -> None:
        import os

        tmp = str(path) + ".tmp.npz"
        np.savez_compressed(tmp, **self.to_dict())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "PerformedPiece":
        with np.load(path, allow_pickle=False) as z:
            return cls.from_dict({k: z[k] for k in z.files})

    def to_note_sequence(self):
        """The performed notes as a :class:`midi_ddsp.note_level.notes.NoteSequence`."""
        from midi_ddsp.note_level.notes import Note, NoteSequence

        n = self.notes
        notes = [Note(pitch=int(p), onset_s=float(a), offset_s=float(b), velocity=int(v), instrument=self.instrument)
                 for p, a, b, v in zip(n["pitch"], n["onset_s"], n["offset_s"], n["velocity"])]
        return NoteSequence(notes=notes, instrument=self.instrument, name=self.name)


class MelodyTooShortError(ValueError):
    """The melody gives less music than ``PerformerConfig.shortest_piece_s``."""


def _phrase_ends(on_ql, dur_ql, fermata, beat_strength, median_ql) -> np.ndarray:
    """Boolean [n]: True where a phrase ends after note i."""
    n = len(on_ql)
    ends = np.zeros(n, dtype=bool)
    ends[-1] = True
    start_ql = on_ql[0]
    for i in range(n - 1):
        span = on_ql[i] + dur_ql[i] - start_ql
        gap = on_ql[i + 1] - (on_ql[i] + dur_ql[i])
        if (fermata[i] or gap > 1e-6
                or (dur_ql[i] >= 1.9 * median_ql and span >= 4.0)
                or (span >= 8.0 and beat_strength[i + 1] >= 1.0)
                or span >= 16.0):
            ends[i] = True
            start_ql = on_ql[i + 1]
    return ends


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or x.size < n:
        return x
    k = np.hanning(n + 2)[1:-1]
    k /= k.sum()
    pad = n // 2
    xp = np.pad(x, (pad, n - 1 - pad), mode="edge")
    return np.convolve(xp, k, mode="valid")


def perform(melody, instrument: Instrument, seed: int, transpose: int = 0,
            config: PerformerConfig | None = None, tuning_offsets_cents: dict[int, float] | None = None,
            name: str | None = None, frame_rate: float = FRAME_RATE) -> PerformedPiece:
    """Perform ``melody`` on ``instrument``, deterministically from ``seed``.

    Args:
        melody: a Melody (score time in quarter lengths).
        instrument: target instrument (program, id).
        seed: random seed; the same seed gives the same performance.
        transpose: semitones added to every pitch (the corpus planner uses octaves).
        config: PerformerConfig; defaults when None.
        tuning_offsets_cents: measured tuning of the soundfont per MIDI pitch for this instrument
            (sounding minus nominal, cents); the bend pre-compensates it, the stored f0 includes it.
        name: piece name (defaults to the melody key).
        frame_rate: curve frame rate in Hz (250).

    Raises:
        MelodyTooShortError: when the performance would be shorter than ``config.shortest_piece_s``.
    """
    cfg = config or PerformerConfig()
    rng = np.random.default_rng(seed)
    iid = instrument.id
    fam = family(iid)

    pitch = np.asarray(melody.pitch, dtype=np.int64) + int(transpose)
    on_ql = np.asarray(melody.onset_ql, dtype=np.float64)
    dur_ql = np.asarray(melody.duration_ql, dtype=np.float64)
    bs = np.asarray(melody.beat_strength, dtype=np.float64)
    ferm = np.asarray(melody.fermata, dtype=bool)
    n = pitch.size
    if n < 4:
        raise MelodyTooShortError(f"{melody.key}: only {n} notes")

    # ---- tempo -------------------------------------------------------------------------------
    median_ql = float(np.median(dur_ql))
    if melody.seconds_per_ql:
        spq = melody.seconds_per_ql * rng.uniform(0.92, 1.08)
    else:
        d = rng.uniform(0.17, 0.32) if median_ql <= 0.5 else rng.uniform(0.35, 0.75)
        spq = float(np.clip(d / median_ql, 60 / 180, 60 / 40))
    bpm = 60.0 / spq
    ends = _phrase_ends(on_ql, dur_ql, ferm, bs, median_ql)
    phrase = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)
    n_phr = int(phrase[-1]) + 1
    # slow log-tempo drift: knots every 4 quarter notes, linear between
    knots_x = np.arange(0.0, on_ql[-1] + dur_ql[-1] + 8.0, 4.0)
    knots_y = np.cumsum(rng.normal(0, cfg.tempo_drift * 0.5, knots_x.size))
    knots_y = np.clip(knots_y - knots_y.mean(), -2.5 * cfg.tempo_drift, 2.5 * cfg.tempo_drift)
    stretch = np.exp(np.interp(on_ql, knots_x, knots_y))
    # phrase-final ritardando over the last ~2 quarters of each phrase
    rit = rng.uniform(*cfg.ritardando, n_phr)
    phrase_end_ql = np.zeros(n_phr)
    for k in range(n_phr):
        last = np.flatnonzero(phrase == k)[-1]
        phrase_end_ql[k] = on_ql[last] + dur_ql[last]
    to_end = phrase_end_ql[phrase] - on_ql
    stretch *= 1.0 + rit[phrase] * np.clip(1.0 - to_end / 2.0, 0.0, 1.0)
    stretch[-2:] *= 1.0 + rng.uniform(0.05, 0.2)  # final ritardando
    ferm_extra = np.where(ferm, rng.uniform(*cfg.fermata_stretch, n) - 1.0, 0.0)
    dur_s = dur_ql * spq * stretch * (1.0 + ferm_extra)
    ioi_s = np.empty(n)
    ioi_s[:-1] = np.diff(on_ql) * spq * stretch[:-1] + dur_ql[:-1] * spq * stretch[:-1] * ferm_extra[:-1]
    ioi_s[-1] = dur_s[-1]
    # a short caesura at some phrase ends (all instruments), longer after fermatas
    caesura = np.where(ends & (rng.random(n) < 0.3), rng.uniform(0.03, 0.15, n), 0.0)
    caesura += np.where(ferm, rng.uniform(0.1, 0.3, n), 0.0)
    caesura[-1] = 0.0
    ioi_s += caesura
    lead = rng.uniform(*cfg.lead_in_s)
    onset = lead + np.concatenate([[0.0], np.cumsum(ioi_s[:-1])])

    # ---- cut to a target length at a phrase end -------------------------------------------
    target = rng.uniform(cfg.min_duration_s, cfg.max_duration_s)
    note_end = onset + dur_s
    cand = np.flatnonzero(ends & (note_end >= target) & (note_end <= cfg.max_duration_s))
    if cand.size:
        last = int(cand[0])
    else:
        ok = np.flatnonzero(note_end <= cfg.max_duration_s)
        if ok.size == 0:
            raise MelodyTooShortError(f"{melody.key}: first note longer than the maximum length")
        last = int(ok[-1])
    m = last + 1
    if note_end[last] < cfg.shortest_piece_s:
        raise MelodyTooShortError(f"{melody.key}: {note_end[last]:.1f} s < {cfg.shortest_piece_s} s")
    pitch, on_ql, dur_ql, bs, ferm = pitch[:m], on_ql[:m], dur_ql[:m], bs[:m], ferm[:m]
    onset, dur_s, ioi_s, ends, phrase = onset[:m], dur_s[:m], ioi_s[:m], ends[:m].copy(), phrase[:m]
    ends[-1] = True
    n = m
    n_phr = int(phrase[-1]) + 1

    # ---- articulation and note lengths ----------------------------------------------------------
    probs = ARTIC_PROBS[fam]
    phrase_artic = rng.choice(3, size=n_phr, p=probs)
    artic = phrase_artic[phrase].copy()
    next_on = np.append(onset[1:], np.inf)
    gap_score = next_on - (onset + dur_s)  # > 0 where the score has a rest
    length = np.empty(n)
    # legato: sound until the next onset (or the written length before a rest)
    length[:] = np.minimum(dur_s, next_on - onset)
    det = artic == 1
    det_gap = np.clip(ioi_s * rng.uniform(0.06, 0.18, n), 0.03, 0.12)
    length[det] = np.minimum(dur_s[det], next_on[det] - onset[det] - det_gap[det])
    stc = (artic == 2) & (ioi_s <= 0.6)
    artic[(artic == 2) & ~stc] = 1
    length[stc] = np.minimum(ioi_s[stc] * rng.uniform(0.35, 0.55, stc.sum()), 0.2)
    # notes before a rest release a little early
    before_rest = gap_score > 1e-6
    length[before_rest] = np.minimum(length[before_rest], dur_s[before_rest] * rng.uniform(0.88, 0.97, before_rest.sum()))
    # repeated pitches are re-articulated even in legato
    rep = np.append(pitch[1:] == pitch[:-1], False)
    length[rep] = np.minimum(length[rep], next_on[rep] - onset[rep] - rng.uniform(0.04, 0.08, rep.sum()))
    # breathing (winds/brass) or bow lift (strings) at phrase ends
    if fam in ("winds", "brass"):
        gap = rng.uniform(*cfg.breath_gap_s, n)
    else:
        gap = np.where(rng.random(n) < 0.5, rng.uniform(0.03, 0.1, n), 0.0)
    pe = ends[:-1] if n > 1 else np.zeros(0, bool)
    idx = np.flatnonzero(np.append(pe, False))
    for i in idx:
        have = next_on[i] - (onset[i] + length[i])
        if have < gap[i]:
            length[i] = max(length[i] - (gap[i] - have), 0.5 * length[i])
    length = np.maximum(length, 0.05)

    # ---- timing deviations ------------------------------------------------------------------
    jitter = np.clip(rng.normal(0, cfg.onset_jitter_s, n), -2.5 * cfg.onset_jitter_s, 2.5 * cfg.onset_jitter_s)
    jitter[0] = 0.0
    new_on = onset + jitter
    legato_join = np.append(np.abs((onset[:-1] + length[:-1]) - onset[1:]) < 1e-9, False)
    offset = new_on + length
    offset[legato_join] = new_on[1:][legato_join[:-1]]
    onset = new_on
    # monophonic, minimum 50 ms
    offset[:-1] = np.minimum(offset[:-1], onset[1:])
    offset = np.maximum(offset, onset + 0.05)
    onset[1:] = np.maximum(onset[1:], offset[:-1])
    offset = np.maximum(offset, onset + 0.05)

    # ---- dynamics: velocity ----------------------------------------------------------------------
    level = rng.uniform(-1.0, 1.0)
    phrase_level = np.clip(level + rng.normal(0, 0.35, n_phr), -1.3, 1.3)
    metric = np.where(bs >= 1.0, 6.0, np.where(bs >= 0.5, 2.0, np.where(bs < 0.25, -3.0, 0.0)))
    accent = rng.random(n) < cfg.accent_prob
    accent |= (artic != 0) & (bs >= 1.0) & (rng.random(n) < 0.2)
    phrase_start = np.append(True, phrase[1:] != phrase[:-1])
    vel = 72 + 22 * phrase_level[phrase] + metric + rng.normal(0, 4, n) + accent * rng.uniform(14, 24, n) \
        + phrase_start * 4
    vel = np.clip(np.rint(vel), 25, 124).astype(np.int64)

    # ---- frame curves --------------------------------------------------------------------------
    duration = float(offset[-1] + cfg.tail_s)
    n_frames = int(np.ceil(duration * frame_rate)) + 1
    t = np.arange(n_frames) / frame_rate
    ref = np.clip(np.searchsorted(onset, t, side="right") - 1, 0, n - 1)  # last note started
    active = (t >= onset[ref]) & (t < offset[ref])
    note_index = np.where(active, ref, -1)
    tau = t - onset[ref]  # time since that note's onset

    # CC11: a swell per phrase (from its first onset to its last offset) + messa di voce on long notes
    p_start = np.array([onset[phrase == k][0] for k in range(n_phr)])
    p_end = np.array([offset[phrase == k][-1] for k in range(n_phr)])
    peak = rng.uniform(0.35, 0.75, n_phr)
    depth = rng.uniform(*cfg.swell_db, n_phr)
    pf = phrase[ref]
    u = np.clip((t - p_start[pf]) / np.maximum(p_end[pf] - p_start[pf], 1e-3), 0, 1)
    pk = peak[pf]
    bump = np.where(u < pk, 0.5 - 0.5 * np.cos(np.pi * u / pk), 0.5 + 0.5 * np.cos(np.pi * (u - pk) / (1 - pk)))
    db = -depth[pf] * (1.0 - bump)
    long_note = (offset - onset) >= 0.7
    mdv = long_note & (rng.random(n) < 0.6)
    mdv_depth = np.where(mdv, rng.uniform(*cfg.messa_di_voce_db, n), 0.0)
    mdv_shape = rng.integers(0, 3, n)  # 0 cresc-dim, 1 cresc, 2 dim
    v = np.clip(tau / np.maximum(offset[ref] - onset[ref], 1e-3), 0, 1)
    shape = np.where(mdv_shape[ref] == 0, np.sin(np.pi * v), np.where(mdv_shape[ref] == 1, v, 1 - v))
    db = db + np.where(active, mdv_depth[ref] * (shape - 1.0), 0.0)
    db = _smooth(np.minimum(db, 0.0), int(0.04 * frame_rate))
    db = np.clip(db, cfg.cc11_floor_db, 0.0)
    cc11 = np.clip(np.rint(127.0 * 10.0 ** (db / 40.0)), 1, 127).astype(np.int64)
    expression_db = 40.0 * np.log10(cc11 / 127.0)

    # pitch: detune + vibrato + scoop (cents)
    piece_detune = rng.normal(0, 1.5)
    detune = np.clip(piece_detune + rng.normal(0, cfg.detune_cents, n), -12, 12)
    p_vib, depth_rng, rate_rng = VIBRATO[iid]
    personality = rng.uniform(0.75, 1.25)
    base_rate = rng.uniform(*rate_rng)
    note_len = offset - onset
    min_len = cfg.vibrato_min_note_s * (0.85 if fam == "strings" else 1.0)
    has_vib = (note_len >= min_len) & (rng.random(n) < p_vib)
    vib_depth = np.where(has_vib, np.clip(rng.uniform(*depth_rng, n) * personality, 2.0, 40.0), 0.0)
    vib_rate = np.clip(base_rate + rng.normal(0, 0.25, n), 4.5, 7.0)
    vib_delay = np.where(note_len >= 0.8, rng.uniform(0.12, 0.35, n), rng.uniform(0.0, 0.08, n))
    vib_delay = np.minimum(vib_delay, 0.4 * note_len)
    vib_ramp = rng.uniform(0.1, 0.25, n)
    tv = tau - vib_delay[ref]
    env = np.clip(tv / vib_ramp[ref], 0, 1)
    env = 0.5 - 0.5 * np.cos(np.pi * env)
    drift = 1.0 + 0.05 * np.sin(2 * np.pi * 0.6 * t + ref)  # slow depth wander
    vib = np.where(active & (tv > 0), vib_depth[ref] * drift * env * np.sin(2 * np.pi * vib_rate[ref] * np.maximum(tv, 0)), 0.0)
    leap = np.abs(np.diff(pitch, prepend=pitch[0])) >= 5
    scoop_p = cfg.scoop_prob * np.where(leap, 2.0, 1.0)
    scoop = np.where(rng.random(n) < scoop_p, -rng.uniform(10, 30, n), 0.0)
    scoop_tau = rng.uniform(0.02, 0.04, n)
    sc = np.where(active, scoop[ref] * np.exp(-np.maximum(tau, 0) / scoop_tau[ref]), 0.0)
    cents = detune[ref] + vib + sc
    offsets = tuning_offsets_cents or {}
    calib = np.array([float(offsets.get(int(p), 0.0)) for p in pitch])
    bend = cents_to_bend(cents - calib[ref], BEND_RANGE_SEMITONES)
    sounding_cents = bend_to_cents(bend, BEND_RANGE_SEMITONES) + calib[ref]
    f0_hz = 440.0 * 2.0 ** ((pitch[ref] + sounding_cents / 100.0 - 69.0) / 12.0)
    velocity_frames = np.where(active, vel[ref], 0)

    notes = {
        "pitch": pitch.astype(np.int64),
        "onset_s": onset.astype(np.float64),
        "offset_s": offset.astype(np.float64),
        "velocity": vel,
        "articulation": artic.astype(np.int64),
        "accent": accent.astype(bool),
        "detune_cents": detune.astype(np.float32),
        "vibrato_depth_cents": vib_depth.astype(np.float32),
        "vibrato_rate_hz": vib_rate.astype(np.float32),
        "vibrato_delay_s": vib_delay.astype(np.float32),
        "phrase": phrase.astype(np.int64),
    }
    curves = {
        "f0_hz": f0_hz.astype(np.float32),
        "cents": cents.astype(np.float32),
        "note_index": note_index.astype(np.int64),
        "cc11": cc11,
        "expression_db": expression_db.astype(np.float32),
        "velocity": velocity_frames.astype(np.int64),
        "bend": bend,
    }
    return PerformedPiece(name=name or melody.key, instrument=instrument.name, instrument_id=iid,
                          program=instrument.program, melody_key=melody.key, transpose=int(transpose),
                          seed=int(seed), duration_s=duration, bpm=float(bpm), frame_rate=frame_rate,
                          notes=notes, curves=curves)
