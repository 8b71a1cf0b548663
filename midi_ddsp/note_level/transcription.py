"""Note segmentation of a monophonic recording from frame features (no neural network).

:func:`transcribe` turns four frame curves at ``frame_rate`` (250 Hz by default; frame ``i`` centred on
``i / frame_rate`` s) into a :class:`~midi_ddsp.note_level.notes.NoteSequence`:

- ``f0_hz`` [F]: fundamental frequency (Hz; any value where unvoiced), e.g. from
  :func:`midi_ddsp.synthesis.ddsp.features.estimate_f0`;
- ``periodicity`` [F]: voicing confidence in [0, 1] from the same tracker;
- ``loudness_db`` [F]: A-weighted loudness in dB (:func:`~midi_ddsp.synthesis.ddsp.features.a_weighted_loudness`);
- ``onset_strength`` [F] (optional): spectral-flux onset evidence, e.g.
  :func:`midi_ddsp.note_level.audio_evidence.onset_strength`.

The steps, each vectorised over frames (loops run over notes or regions, never over frames):

1. **Sound and silence.** The noise floor is a low percentile of the loudness of aperiodic frames and the
   reference level a high percentile of the periodic ones; a frame can belong to a note when it is louder than
   ``max(reference - level_range_db, floor + floor_margin_db)``. Voiced regions use hysteresis: frames with
   periodicity >= ``voicing_hold`` (and at most ``hold_margin_db`` under the level threshold) form a region
   when at least one of them reaches ``voicing_threshold``. Gaps shorter than ``gap_fill_s`` (a legato change
   where the tracker hesitates) are bridged; regions shorter than ``min_note_s`` are dropped. Breaths, noise
   between phrases and silence are aperiodic or quiet, so they fall outside the regions.
2. **Pitch.** A global tuning offset (circular mean of the fractional semitone of every voiced frame, within
   +-50 cents, after a ``tuning_window_s`` moving average that removes vibrato: the circular mean of a raw
   vibrato wider than about +-38 cents points half a semitone away) is removed; then a Viterbi path over
   integer MIDI states (Gaussian emission of width ``pitch_sigma`` semitones, capped so that outlier frames
   cost a bounded amount, and a fixed cost ``switch_cost`` nats per change) follows the voiced frames. A
   change of state inside a region is a legato note boundary (no gap). The pieces are then cleaned up:
   shorter than ``min_note_s``: merged into a neighbour; a short (< ``excursion_s``) excursion a semitone away
   between two pieces of the same pitch, or one whose median pitch stays within 0.75 semitone of its
   neighbour (the crest or trough of a wide vibrato): merged back; a short piece between its neighbours'
   pitches whose pitch keeps moving (a slide; a passing note holds its pitch, 10-90 % spread under
   ``steady_st``): part of the next note; a first piece of a region shorter than ``scoop_s`` and a tone or
   less from the next (the attack's scoop): part of the next note. Each legato boundary is moved back to
   where the periodicity first falls ``periodicity_drop`` under the old note's steady value.
3. **Re-articulation.** Inside each piece, a loudness valley at least ``dip_db`` deep against the smaller of
   the two loudness peaks around it where the periodicity dips by ``periodicity_dip``, or where the loudness
   fell by ``release_db`` within 150 ms before it (the old note released: a bow change, a tongued repeat), or
   a valley of ``deep_dip_db`` followed by an onset-strength peak of ``deep_dip_onset`` (the loudness ripple
   of a wide vibrato is deep too, but starts no attack), or an onset-strength peak above ``onset_threshold`` followed by a
   rise of ``onset_rise_db`` (onset strength in units of the recording's median on voiced frames), starts a
   new note of the same pitch, when both parts last at least ``min_note_s``.
4. **Ends and velocity.** A note's end is trimmed to its last frame within ``tail_db`` of its own peak
   loudness (reverb tails and releases); velocity is ``100 + velocity_db_scale * (peak - reference)``,
   clipped to 1..127 (a rough mapping: the expression controls carry the real dynamics).

Times: onset = first frame / frame_rate, offset = (last frame + 1) / frame_rate, so the notes lay out on the
same frames again with :func:`~midi_ddsp.note_level.frames.notes_to_frames`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.audio_evidence import correct_octaves, harmonic_energies, harmonicity, onset_strength
from midi_ddsp.note_level.notes import Note, NoteSequence


@dataclass(frozen=True)
class TranscriptionConfig:
    """Thresholds of :func:`transcribe` (times in seconds, levels in dB, pitch in semitones)."""

    voicing_threshold: float = 0.6
    voicing_hold: float = 0.4
    level_range_db: float = 50.0
    floor_margin_db: float = 10.0
    hold_margin_db: float = 6.0
    gap_fill_s: float = 0.032
    min_note_s: float = 0.06
    pitch_sigma: float = 0.3
    outlier_cost: float = 6.0
    switch_cost: float = 10.0
    excursion_s: float = 0.15
    max_glide_s: float = 0.2
    dip_db: float = 4.0
    periodicity_dip: float = 0.05
    deep_dip_db: float = 7.0
    deep_dip_onset: float = 2.5
    release_db: float = 10.0
    onset_lead_s: float = 0.02
    periodicity_drop: float = 0.03
    legato_search_s: float = 0.12
    onset_threshold: float = 6.0
    onset_rise_db: float = 4.0
    tail_db: float = 35.0
    tuning: bool = True
    velocity_db_scale: float = 2.0
    tuning_window_s: float = 0.2
    scoop_s: float = 0.1
    steady_st: float = 0.35

    def replace(self, **changes) -> "TranscriptionConfig":
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise KeyError(f"unknown transcription setting(s) {sorted(bad)}; known: {sorted(known)}")
        return TranscriptionConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


@dataclass(frozen=True, eq=False)
class Transcription:
    """What :func:`transcribe` found.

    Attributes:
        sequence: the notes (instrument as asked).
        tuning_cents: the global tuning offset removed before rounding to semitones (cents, -50..50).
        voiced: bool [F], the frames inside a voiced region (before notes were trimmed).
        frame_pitch: int64 [F], the MIDI pitch of the note covering each frame, 0 elsewhere.
        reference_db, floor_db, threshold_db: the recording's reference level, noise floor and the level a
            frame must exceed to belong to a note (A-weighted dB).
        stats: figures about the input (``voiced_fraction``: voiced frames / frames above the threshold;
            ``median_periodicity``: on voiced frames; ``snr_db``: reference - floor).
    """

    sequence: NoteSequence
    tuning_cents: float
    voiced: np.ndarray
    frame_pitch: np.ndarray
    reference_db: float
    floor_db: float
    threshold_db: float
    stats: dict = field(default_factory=dict)


# -------------------------------------------------------------------------------------------- helpers
def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) frames of the runs of True in a bool [F] array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _value_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the runs of equal values of an int [n] array."""
    if x.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(np.diff(x) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [x.size]])
    return starts, ends


def _moving_mean(x: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Mean of the valid values of ``x`` [F] in a centred window of ``n`` frames (NaN where none is valid)."""
    v = np.asarray(valid, bool) & np.isfinite(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(v, x, 0.0))])
    k = np.concatenate([[0], np.cumsum(v)])
    i = np.arange(x.size)
    a, b = np.clip(i - n // 2, 0, x.size), np.clip(i - n // 2 + n, 0, x.size)
    cnt = k[b] - k[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[b] - c[a]) / np.maximum(cnt, 1), np.nan)


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
    """Continuous MIDI pitch of f0 in Hz (NaN where f0 <= 0)."""
    f = np.asarray(f0_hz, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, 69.0 + 12.0 * np.log2(np.maximum(f, 1e-9) / 440.0), np.nan)


def estimate_tuning(midi: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Global tuning offset in semitones (-0.5..0.5): circular mean of the fractional part of ``midi``."""
    m = np.asarray(midi, np.float64)
    w = np.ones_like(m) if weights is None else np.asarray(weights, np.float64)
    ok = np.isfinite(m) & (w > 0)
    if not ok.any():
        return 0.0
    z = np.sum(w[ok] * np.exp(2j * np.pi * m[ok]))
    if abs(z) < 1e-9 * max(np.sum(w[ok]), 1e-12):
        return 0.0
    return float(np.angle(z) / (2 * np.pi))


def _viterbi_states(midi: np.ndarray, cfg: TranscriptionConfig) -> np.ndarray:
    """Integer MIDI pitch per frame of ``midi`` [n] (all voiced): the Viterbi path (see module docstring)."""
    import librosa

    lo = int(np.floor(np.nanmin(midi))) - 1
    hi = int(np.ceil(np.nanmax(midi))) + 1
    lo, hi = max(lo, 0), min(hi, 127)
    states = np.arange(lo, hi + 1)
    d = (midi[None, :] - states[:, None]) / cfg.pitch_sigma
    ll = -np.minimum(0.5 * d * d, cfg.outlier_cost)                        # [S, n] log-likelihood
    ll -= ll.max(axis=0, keepdims=True)
    S = states.size
    if S == 1:
        return np.full(midi.size, states[0], np.int64)
    trans = np.full((S, S), np.exp(-cfg.switch_cost))
    np.fill_diagonal(trans, 1.0)
    trans /= trans.sum(axis=1, keepdims=True)
    path = librosa.sequence.viterbi(np.exp(ll), trans)
    return states[path].astype(np.int64)


def _merge_pieces(starts: list[int], ends: list[int], pitch: list[int], midi: np.ndarray, min_len: int,
                  excursion: int, glide: int, scoop: int = 0, steady_st: float = 0.35
                  ) -> tuple[list[int], list[int], list[int]]:
    """Merge too-short pieces (one region) into a neighbour; fold back semitone excursions (A B A).
    Lengths in frames; ``steady_st``: the 10-90 % pitch spread (semitones) under which a piece holds its pitch."""
    changed = True
    while changed and len(starts) > 1:
        changed = False
        # a short excursion between two pieces of the same pitch: one piece again
        for i in range(1, len(starts) - 1):
            if (pitch[i - 1] == pitch[i + 1] and abs(pitch[i] - pitch[i - 1]) == 1
                    and ends[i] - starts[i] < excursion):
                ends[i - 1] = ends[i + 1]
                del starts[i:i + 2], ends[i:i + 2], pitch[i:i + 2]
                changed = True
                break
        if changed:
            continue
        # a short piece a semitone from a neighbour whose pitch it mostly keeps (the crest or trough of a wide
        # vibrato at a region's end or before a change): part of that neighbour. A real semitone step sits
        # near its own pitch, a vibrato crest at most a little past the half-way point.
        for i in range(len(starts)):
            if ends[i] - starts[i] >= excursion or len(starts) < 2:
                continue
            med = float(np.nanmedian(midi[starts[i]:ends[i]]))
            near = [j for j in (i - 1, i + 1) if 0 <= j < len(starts) and abs(pitch[j] - pitch[i]) == 1
                    and abs(med - pitch[j]) < 0.75]
            if near:
                j = near[0]
                if j < i:
                    ends[j] = ends[i]
                else:
                    starts[j] = starts[i]
                del starts[i], ends[i], pitch[i]
                changed = True
                break
        if changed:
            continue
        # a short piece far below (or above) both neighbours, at a legato change: the tracker reading the common
        # sub-harmonic of the old note still ringing and the new one; it belongs to the next note
        for i in range(len(starts) - 1):
            others = [pitch[j] for j in (i - 1, i + 1) if 0 <= j < len(starts)]
            d = [pitch[i] - o for o in others]
            if ends[i] - starts[i] < excursion and all(abs(x) >= 7 for x in d) and len(set(np.sign(d))) == 1:
                starts[i + 1] = starts[i]
                del starts[i], ends[i], pitch[i]
                if i > 0:
                    ends[i - 1] = starts[i]
                changed = True
                break
        if changed:
            continue
        # a short piece in the middle of a slide (pitch between its neighbours', moving): part of the next note.
        # A passing note of a fast run holds its pitch in its middle half; a slide keeps moving there.
        for i in range(1, len(starts) - 1):
            lo, hi = sorted((pitch[i - 1], pitch[i + 1]))
            if lo < pitch[i] < hi and ends[i] - starts[i] < excursion:
                seg = midi[starts[i]:ends[i]]
                k = max(1, min(3, seg.size // 3))
                move = (np.nanmedian(seg[-k:]) - np.nanmedian(seg[:k])) * np.sign(pitch[i + 1] - pitch[i - 1])
                mid = seg[seg.size // 4: seg.size - seg.size // 4]
                mid = mid[np.isfinite(mid)]
                steady = mid.size >= 4 and float(np.percentile(mid, 90) - np.percentile(mid, 10)) < steady_st
                if move >= 0.6 and not steady:
                    starts[i + 1] = starts[i]
                    del starts[i], ends[i], pitch[i]
                    ends[i - 1] = starts[i]
                    changed = True
                    break
        if changed:
            continue
        # a short first piece of a region a tone or less from a longer next piece: the attack's scoop (or the
        # tracker reading the attack transient), part of the note
        if (len(starts) > 1 and ends[0] - starts[0] < scoop and abs(pitch[0] - pitch[1]) <= 2
                and ends[1] - starts[1] > ends[0] - starts[0]):
            starts[1] = starts[0]
            del starts[0], ends[0], pitch[0]
            changed = True
            continue
        lens = np.array(ends) - np.array(starts)
        i = int(np.argmin(lens))
        if lens[i] >= min_len:
            break
        # merge into the neighbour whose pitch is closer to the piece's median pitch (longer on a tie)
        med = float(np.nanmedian(midi[starts[i]:ends[i]]))
        cands = [j for j in (i - 1, i + 1) if 0 <= j < len(starts)]
        j = min(cands, key=lambda j: (abs(pitch[j] - med), -(ends[j] - starts[j])))
        if j < i:
            ends[j] = ends[i]
        else:
            starts[j] = starts[i]
        del starts[i], ends[i], pitch[i]
        changed = True
        # two neighbours of the same pitch now touching: still two notes only if re-articulated (step 3)
    # neighbouring pieces of the same pitch are one piece (a re-articulation is found in step 3)
    k = 1
    while k < len(starts):
        if pitch[k] == pitch[k - 1]:
            ends[k - 1] = ends[k]
            del starts[k], ends[k], pitch[k]
        else:
            k += 1
    # a note reached by a slide starts where the pitch leaves the previous note (not halfway through the slide)
    for k in range(1, len(starts)):
        direction = np.sign(pitch[k] - pitch[k - 1])
        lo = max(starts[k - 1] + 1, starts[k] - glide)
        dev = (midi[lo:starts[k]] - pitch[k - 1]) * direction
        inside = np.flatnonzero(~(dev > 0.5))  # frames still on the previous note (NaN counts as on it)
        new = lo + (int(inside[-1]) + 1 if inside.size else 0)
        if new < starts[k] and starts[k] - new >= 0:
            ends[k - 1] = new
            starts[k] = new
    return starts, ends, pitch


def _refine_legato(starts: list[int], ends: list[int], per: np.ndarray, search: int, min_len: int,
                   drop: float) -> None:
    """Move each legato boundary (in place) back to where the periodicity starts to fall below the previous
    note's steady value: the change begins there, while the tracker still reads the old pitch (its frame
    straddles both notes, and a released note may ring on under the new one)."""
    for k in range(1, len(starts)):
        b = starts[k]
        lo = max(starts[k - 1] + min_len, b - search)
        if lo >= b:
            continue
        steady = per[starts[k - 1]:lo]
        if steady.size < 3:
            continue
        low = per[lo:b] < float(np.median(steady)) - drop                # [b - lo]
        if not low.any():
            continue
        # the earliest frame from which at least 70 % of the frames up to the boundary are low
        share = np.cumsum(low[::-1])[::-1] / np.arange(low.size, 0, -1)
        ok = np.flatnonzero(low & (share >= 0.7))
        if ok.size:
            new = lo + int(ok[0])
            ends[k - 1] = new
            starts[k] = new


def _split_points(loud: np.ndarray, per: np.ndarray, onset: np.ndarray | None, onset_ref: float, a: int, b: int,
                  cfg: TranscriptionConfig, min_len: int, frame_rate: float) -> list[int]:
    """Frames in (a, b) where a same-pitch note is re-articulated (loudness valley or onset peak)."""
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import find_peaks

    if b - a < 2 * min_len:
        return []
    seg = uniform_filter1d(loud[a:b].astype(np.float64), 3, mode="nearest")
    cands: list[int] = []
    # prominence of a valley = its depth below the lower of the two highest points around it within the
    # window (+-150 ms): a quick dip, not the slow trough between two swells
    # A valley counts when the periodicity dips with it (the old note stops, the new one starts: the tracker's
    # frame holds both) or when it is very deep: loudness ripples of a sustained note (vibrato moving the
    # partials through the instrument's resonances, bow or breath wavering) keep the periodicity.
    valleys, props = find_peaks(-seg, prominence=cfg.dip_db, wlen=int(0.3 * frame_rate) | 1)
    lead = int(round(cfg.onset_lead_s * frame_rate))
    w = max(1, int(round(0.02 * frame_rate)))
    p_seg = per[a:b]
    p_ref = float(np.percentile(p_seg, 90))  # the piece's steady periodicity
    env = (onset[a:b].astype(np.float64) / onset_ref if onset is not None and onset_ref > 0
           else np.full(b - a, np.inf))
    w_on = max(2, int(round(0.04 * frame_rate)))
    half_w = int(0.15 * frame_rate)
    for v, prom in zip(valleys, props["prominences"]):
        dip = p_ref - float(p_seg[max(0, v - w):v + w + 1].min())
        # a deep valley without a periodicity dip counts only with an attack after it (onset evidence): the
        # loudness ripple of a wide vibrato is deep too, but it starts no new attack
        attack = float(env[v:v + w_on + 1].max(initial=0.0)) >= cfg.deep_dip_onset
        # ... or a valley after a release: the old note fell by release_db (a bow change, a tongued repeat)
        fall = float(seg[max(0, v - half_w):v + 1].max()) - float(seg[v])
        if dip >= cfg.periodicity_dip or (prom >= cfg.deep_dip_db and attack) or fall >= cfg.release_db:
            cands.append(int(v) - lead)
    if onset is not None and onset_ref > 0:
        env = onset[a:b].astype(np.float64) / onset_ref
        peaks, _ = find_peaks(env, height=cfg.onset_threshold, distance=max(1, min_len))
        w = max(2, int(0.04 * frame_rate))
        for p in peaks:
            before = seg[max(0, p - w):p + 1].min()
            after = seg[p:min(seg.size, p + w + 1)].max()
            if after - before >= cfg.onset_rise_db:
                cands.append(int(np.argmin(seg[max(0, p - w):p + 1]) + max(0, p - w)))
    if not cands:
        return []
    cands = sorted(set(cands))
    out: list[int] = []
    last = 0
    for c in cands:  # keep splits that leave both parts at least min_len long
        if c - last >= min_len and (b - a) - c >= min_len:
            out.append(a + c)
            last = c
    return out


# ----------------------------------------------------------------------------------------------- main
def transcribe(f0_hz, periodicity, loudness_db, onset_strength: np.ndarray | None = None,
               frame_rate: float = 250.0, instrument: str = "violin", config: TranscriptionConfig | None = None,
               name: str = "") -> Transcription:
    """Notes of a monophonic recording from its frame features (see the module docstring).

    Args:
        f0_hz, periodicity, loudness_db: [F] float arrays at ``frame_rate`` (Hz, 0..1, A-weighted dB).
        onset_strength: optional [F] onset evidence (any scale; it is normalised by its median on voiced
            frames).
        instrument: instrument name of the returned sequence.
    Returns:
        :class:`Transcription` (its ``sequence`` may be empty when nothing pitched was found).
    """
    cfg = config or TranscriptionConfig()
    inst = by_name(instrument).name
    f0 = np.asarray(f0_hz, np.float64).reshape(-1)
    per = np.nan_to_num(np.asarray(periodicity, np.float64).reshape(-1), nan=0.0)
    loud = np.nan_to_num(np.asarray(loudness_db, np.float64).reshape(-1), nan=-80.0)
    F = min(f0.size, per.size, loud.size)
    f0, per, loud = f0[:F], per[:F], loud[:F]
    ons = None
    if onset_strength is not None:
        ons = np.zeros(F)
        o = np.nan_to_num(np.asarray(onset_strength, np.float64).reshape(-1))[:F]
        ons[:o.size] = o
    midi = hz_to_midi(f0)
    pitched = (per >= cfg.voicing_threshold) & np.isfinite(midi)

    # 1. levels and voiced regions
    aper = per < 0.3
    floor = float(np.percentile(loud[aper], 25)) if aper.sum() >= max(5, 0.05 * F) else -80.0
    reference = float(np.percentile(loud[pitched], 95)) if pitched.any() else float(np.max(loud, initial=-80.0))
    threshold = max(reference - cfg.level_range_db, floor + cfg.floor_margin_db)
    loud_enough = loud >= threshold
    hold = (per >= cfg.voicing_hold) & np.isfinite(midi) & (loud >= threshold - cfg.hold_margin_db)
    enter = pitched & loud_enough
    starts, ends = _runs(hold)
    if starts.size:
        csum = np.concatenate([[0], np.cumsum(enter)])
        has_enter = (csum[ends] - csum[starts]) > 0
        starts, ends = starts[has_enter], ends[has_enter]
    gap = int(round(cfg.gap_fill_s * frame_rate))
    if starts.size > 1 and gap > 0:
        keep_gap = (starts[1:] - ends[:-1]) > gap
        starts = np.concatenate([starts[:1], starts[1:][keep_gap]])
        ends = np.concatenate([ends[:-1][keep_gap], ends[-1:]])
    min_len = max(1, int(round(cfg.min_note_s * frame_rate)))
    long_enough = (ends - starts) >= min_len
    starts, ends = starts[long_enough], ends[long_enough]
    voiced = np.zeros(F, bool)
    for a, b in zip(starts, ends):
        voiced[a:b] = True

    # 2. pitch: tuning, then a Viterbi path over the voiced frames (bridged gaps take their neighbours' f0)
    sel = voiced & pitched
    if cfg.tuning:
        smooth = _moving_mean(midi, sel, max(1, int(round(cfg.tuning_window_s * frame_rate))))
        tune = estimate_tuning(smooth[sel], per[sel])
    else:
        tune = 0.0
    m = midi - tune
    vidx = np.flatnonzero(voiced)
    frame_pitch = np.zeros(F, np.int64)
    notes: list[tuple[int, int, int]] = []
    if vidx.size:
        good = voiced & pitched
        gidx = np.flatnonzero(good)
        mv = m[vidx]
        if gidx.size:  # frames of a region that are not confidently pitched take the nearest confident value
            near = np.clip(np.searchsorted(gidx, vidx), 0, gidx.size - 1)
            left = np.clip(near - 1, 0, gidx.size - 1)
            pick = np.where(np.abs(gidx[left] - vidx) <= np.abs(gidx[near] - vidx), gidx[left], gidx[near])
            mv = np.where(good[vidx], mv, m[pick])
        mv = np.where(np.isfinite(mv), mv, np.nanmedian(mv) if np.isfinite(mv).any() else 60.0)
        path = np.zeros(F, np.int64)
        path[vidx] = _viterbi_states(mv, cfg)
        ons_ref = 0.0
        if ons is not None and ons[vidx].size:
            ons_ref = float(np.median(ons[vidx]))
            if ons_ref <= 0:
                ons_ref = float(np.mean(ons[vidx])) or 0.0
        excursion = int(round(cfg.excursion_s * frame_rate))
        glide = int(round(cfg.max_glide_s * frame_rate))
        scoop = int(round(cfg.scoop_s * frame_rate))
        search = int(round(cfg.legato_search_s * frame_rate))
        for a, b in zip(starts, ends):
            ps, pe = _value_runs(path[a:b])
            s_l, e_l = list(ps + a), list(pe + a)
            p_l = [int(path[x]) for x in s_l]
            s_l, e_l, p_l = _merge_pieces(s_l, e_l, p_l, m, min_len, excursion, glide, scoop, cfg.steady_st)
            _refine_legato(s_l, e_l, per, search, min_len, cfg.periodicity_drop)
            for s, e, p in zip(s_l, e_l, p_l):
                cuts = _split_points(loud, per, ons, ons_ref, s, e, cfg, min_len, frame_rate)
                bounds = [s] + cuts + [e]
                notes += [(bounds[k], bounds[k + 1], p) for k in range(len(bounds) - 1)]

    # 4. ends, velocity
    out = []
    for k, (s, e, p) in enumerate(notes):
        seg = loud[s:e]
        peak = float(seg.max())
        above = np.flatnonzero(seg >= peak - cfg.tail_db)
        e = s + int(above[-1]) + 1 if above.size else e
        if e - s < min_len:
            e = min(s + min_len, notes[k + 1][0] if k + 1 < len(notes) else F)
        if e <= s or not 0 <= p <= 127:
            continue
        vel = int(np.clip(round(100 + cfg.velocity_db_scale * (peak - reference)), 1, 127))
        frame_pitch[s:e] = p
        out.append(Note(int(p), s / frame_rate, e / frame_rate, vel, inst))
    seq = NoteSequence(tuple(out), inst, name)
    loud_frames = loud_enough.sum()
    stats = {
        "voiced_fraction": float((loud_enough & pitched).sum() / loud_frames) if loud_frames else 0.0,
        "median_periodicity": float(np.median(per[voiced])) if voiced.any() else 0.0,
        "snr_db": float(reference - floor),
        "n_frames": int(F),
    }
    return Transcription(seq, 100.0 * tune, voiced, frame_pitch, reference, floor, threshold, stats)


__all__ = ["TranscriptionConfig", "Transcription", "transcribe", "onset_strength", "harmonicity",
           "harmonic_energies", "correct_octaves",
           "estimate_tuning", "hz_to_midi"]
