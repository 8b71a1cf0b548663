"""The synthesis generator run window by window over a whole piece: bounded memory, no seams, local edits.

- **Conditioning, timbre** (non-autoregressive dilated convolutions): each window is computed with enough
  context on both sides to cover the networks' receptive field, then cropped, so the result is the same as
  processing the whole piece at once (tested).
- **f0** (autoregressive) is sampled in short **segments keyed to the notes**, each independent of the
  others, so that an edit of one note changes the pitch curve only near that note (:func:`f0_segments`).
  A segment starts ``F0_WARMUP_S`` (0.2 s) plus the conditioning's receptive field after a note onset (or
  after the end of a note followed by a long rest, or on a 1 s grid inside long notes and fast runs), so
  its warm-up sees only that note; it runs from a fresh recurrent state (as the model was trained, on clips
  that start anywhere) with random draws seeded by ``(seed, voice, start frame)``, and on ``F0_CROSSFADE_S``
  (0.4 s) past the next segment's start. There the two hand over: at the first rest frame if there is one,
  else with a raised-cosine crossfade of the pitch deviation (f0 stays continuous: no jump, no click).
  The note transition into each note is sampled by the segment before it, in one piece.
- **Oscillator phase re-anchored**: the phase of the harmonic oscillator integrates f0, so a changed pitch
  curve would shift the waveform of everything after it. At the end of every crossfade (an *anchor*), the
  cycles accumulated since the previous anchor are made a whole number by a smooth glide of f0 over the
  ``PHASE_GLIDE_S`` (1 s, or the interval between the anchors if shorter) before the anchor, weighted towards
  rests (half a cycle at most: under 1.3 Hz for a 0.6 s interval; on the example chorale median 1.4 cents,
  99th percentile 9 cents), so the phase after an anchor depends only on the f0 after the previous one.
- **Rests hold the previous note's pitch** for ``HOLD_S`` (1 s, the release), then the next note's.
- **Silence is skipped**: a voice is not run through the networks where it has no note (allowing for the
  networks' context and a release); its f0 there is the held note pitch, its amplitude zero.

Reach of an edit of one note (its controls, pitch or timing). Before the onset: the f0 model is causal, so the
pitch curve changes only from the conditioning's receptive field before the onset, plus at most one phase
glide; the timbre adds its receptive field. After the offset: up to the end of the hand-over after the first
segment that starts after the note (``receptive field + warm-up + crossfade``, for a note at least
``F0_MIN_SEGMENT_S`` apart from the next onset; up to one grid step more in fast runs), plus the timbre's
receptive field and the reverb's tail. Measured on the example chorale with the shipped model (20 edits of
controls, pitch and timing): at most 0.9 s before, 3.4 s after (reverb included). ``tests/test_local_edits.py`` checks the promise: audio equal within 1e-4
farther than 3 s before the onset and 4 s after the offset.

The first window is short (:data:`FIRST_WINDOW_S`), so the first audio of a long piece arrives quickly; the
window layout and the f0 segments depend only on the piece, so every way of consuming the run gives the same
parameters. Voices active in a window are batched (all voices share one frame grid); every segment has its
own random stream, so a voice's f0 does not depend on the other voices.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .conditioning import batch_inputs, frame_inputs
from .instruments import by_name
from .note_level.controllers import rescale_vibrato_in
from .note_level.expression import VIBRATO_MIN_DEPTH, VIBRATO_MIN_FRAMES, vibrato_depth
from .note_level.frames import note_frame_bounds, notes_to_frames
from .note_level.notes import Performance
from .synthesis.ddsp.functional import midi_to_hz
from .synthesis.generator import N_FRAME_FEATURES, GeneratorInputs, SynthesisGenerator
from .synthesis.params import SynthParams

RELEASE_S = 1.0  # MIDI-DDSP's trailing rest: time given to the model's release after the last note
CONTEXT_FRAMES = 8  # frames of context kept around each window (as the synthesizer's noise filter once needed)
BLOCK_ELEMENTS = 1 << 18  # frames x channels per network block (~1 MB of float32 activations)
FIRST_WINDOW_S = 2.0  # seconds in the first window (the first audio of a long piece arrives after it)
F0_WARMUP_S = 0.2  # f0 sampled (and dropped) before a segment's start, from a fresh recurrent state
F0_CROSSFADE_S = 0.4  # seconds a segment runs past the next one's start (the hand-over)
F0_MIN_SEGMENT_S = 0.6  # segments are at least this long (> the crossfade)
F0_GRID_S = 1.0  # inside long notes and fast runs, segments start on this grid
PHASE_GLIDE_S = 1.0  # the oscillator phase is re-anchored by an f0 glide over this long before each anchor
PHASE_REST_WEIGHT = 10.0  # the glide weighs rest frames this much more than note frames
HOLD_S = RELEASE_S  # rests hold the previous note's pitch this long, then the next note's
MAX_VIBRATO_SCALE = 3.0  # a sampled vibrato is scaled towards its note's asked depth by at most this factor
VIBRATO_RATE_HZ = 5.5  # where the sampler made none, a note asked for vibrato gets one at this rate ...
VIBRATO_ONSET_S = 0.15  # ... faded in over this long from the note's start


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers of any size (independent streams for independent purposes)."""
    words = [p & 0xFFFFFFFFFFFFFFFF if -(1 << 63) <= p < (1 << 64) else (abs(p) << 1) | (p < 0)
             for p in map(int, parts)]  # two's complement in 64 bits; larger ones as they are (>= 2**64)
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def receptive_field(module: nn.Module) -> int:
    """Frames of context on each side that the 1-d convolutions inside ``module`` see (stacked, same padding)."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            total += m.dilation[0] * (m.kernel_size[0] - 1) // 2
    return total


def blocks(n: int, size: int, margin: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks [a, b) of ``size`` frames over ``n`` frames, each with its context [lo, hi) of ``margin`` frames."""
    for a in range(0, n, size):
        b = min(a + size, n)
        yield a, b, max(0, a - margin), min(n, b + margin)


def f0_segments(starts: np.ndarray, ends: np.ndarray, n_frames: int, offset: int, min_len: int, grid: int
                ) -> np.ndarray:
    """Start frames of a voice's f0 segments (int64, sorted, the first 0), consecutive ones ``>= min_len`` apart.

    Candidates are ``offset`` frames after every note onset, and after the end of every note followed by a
    rest of at least ``min_len`` (or by nothing); a candidate is kept when the candidate before it (any, kept
    or not: a purely local rule, so an edit cannot shift segments far away) is at least ``min_len`` earlier.
    Grid points (every ``grid`` frames) farther than ``min_len`` from every kept candidate are added.

    Args:
        starts, ends: note frame ranges ``[start, end)`` (:func:`note_frame_bounds`), in order.
    """
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    nxt = np.append(starts[1:], np.iinfo(np.int64).max // 2)
    cand = np.unique(np.concatenate([starts + offset, (ends + offset)[nxt - ends >= min_len]]))
    cand = cand[cand < n_frames]
    keep = cand[cand - np.concatenate([[0], cand[:-1]]) >= min_len]
    g = np.arange(grid, n_frames, grid, dtype=np.int64)
    if keep.size and g.size:
        i = np.searchsorted(keep, g)
        left = np.abs(g - keep[np.clip(i - 1, 0, keep.size - 1)])
        right = np.abs(keep[np.clip(i, 0, keep.size - 1)] - g)
        g = g[np.minimum(left, right) >= min_len]
    return np.unique(np.concatenate([[0], keep, g])).astype(np.int64)


def bounded_hold(held: np.ndarray, in_note: np.ndarray, hold: int) -> np.ndarray:
    """``held [F]`` (MIDI pitch per frame, rests holding the previous note's) with rest frames more than
    ``hold`` frames after the previous note taking the next note's pitch instead (where there is one)."""
    on = in_note > 0.5
    if not on.any():
        return held
    idx = np.arange(held.shape[0])
    last_on = np.maximum.accumulate(np.where(on, idx, -1))
    next_on = np.minimum.accumulate(np.where(on, idx, held.shape[0])[::-1])[::-1]
    late = (~on) & (last_on >= 0) & (idx - last_on > hold) & (next_on < held.shape[0])
    out = held.copy()
    out[late] = held[next_on[late]]
    return out


def anchor_phase(f0: np.ndarray, zone: int, rest: np.ndarray, hop: int, sample_rate: float) -> np.ndarray:
    """f0 ``[n + 1]`` (Hz, float64) over frames ``[A0, A1]`` between two phase anchors -> f0 ``[n]`` for
    frames ``[A0, A1)``, glided over its last ``zone`` frames so that the oscillator gains a whole number of
    cycles from ``A0`` to ``A1`` (as :func:`~midi_ddsp.synthesis.ddsp.functional.harmonic_oscillator`
    integrates: linear interpolation, ``hop`` samples per frame). ``rest [n]``: 1 on rest frames, which
    take more of the glide."""
    n = f0.shape[0] - 1
    cycles = float(np.sum(f0[:-1] * (hop + 1) / 2 + f0[1:] * (hop - 1) / 2)) / sample_rate
    excess = cycles - round(cycles)
    z = max(n - int(zone), 0)
    shape = np.zeros(n)
    shape[z:] = np.sin(np.pi * np.arange(n - z) / max(n - z, 1))  # 0 at the zone's first frame: A0 untouched
    shape[z:] *= 1.0 + PHASE_REST_WEIGHT * rest[z:]
    total = shape.sum() * hop / sample_rate  # interior frames count hop / sample_rate each in ``cycles``
    if total <= 0:
        return f0[:-1].copy()
    return f0[:-1] - excess * shape / total


def _frames_of(inputs: GeneratorInputs, lo: int, hi: int) -> GeneratorInputs:
    """Frames [lo, hi) of generator inputs."""
    return GeneratorInputs(inputs.features[:, lo:hi], inputs.held_pitch[:, lo:hi], inputs.in_note[:, lo:hi],
                           inputs.instrument)


class GeneratorRun:
    """Windowed synthesis generator over a batch of voices sharing one frame grid (see the module docstring).

    Iterating yields, per window ``[a, b)`` in order, ``(a, b, voices, params)``: the voices active in the
    window and their SynthParams ``[len(voices), b - a, ...]`` (None when no voice is active). A window is
    yielded once the f0 of every voice is final a little past its end (a window's timbre needs the f0
    hand-over and the phase anchor after it), usually one window behind the f0 sampling.
    ``f0`` (Hz, ``[V, n_frames]``) holds every voice's final f0 once its window is yielded.

    Args:
        generator: the synthesis generator; sample_rate, frame_rate: Hz (the model's).
        performances: one per voice; n_frames: frames of the render.
        temperature, top_p, seed: f0 sampling; f0_hz: optional per-voice f0 curves (Hz) used as given
            instead of sampling (no phase anchoring either).
        window_s: seconds per window.
        voice_keys: the integer each voice's random streams are keyed to (default: its position), so that a
            voice rendered alone can draw what it draws among others.
        vibrato_st: per voice, each note's asked vibrato depth in semitones (peak, as
            :func:`~midi_ddsp.note_level.expression.vibrato_depth` measures it): within every sampled segment,
            a note's vibrato is scaled to that depth (by at most :data:`MAX_VIBRATO_SCALE`), and a part with no
            vibrato to scale gets one of that depth (:data:`VIBRATO_RATE_HZ`, faded in over
            :data:`VIBRATO_ONSET_S` from the note's start). None: as sampled.
    """

    def __init__(self, generator: SynthesisGenerator, sample_rate: int, frame_rate: float,
                 performances: Sequence[Performance], n_frames: int, temperature: float, top_p: float,
                 seed: int, f0_hz=None, window_s: float = 30.0, voice_keys: Sequence[int] | None = None,
                 vibrato_st: Sequence[np.ndarray] | None = None) -> None:
        gen = generator
        self.gen = gen
        self.fr, self.sr = float(frame_rate), int(sample_rate)
        self.hop = int(round(self.sr / self.fr))
        self.F = int(n_frames)
        self.V = len(performances)
        self.keys = list(range(self.V)) if voice_keys is None else [int(k) for k in voice_keys]
        if len(self.keys) != self.V:
            raise ValueError(f"got {len(self.keys)} voice keys for {self.V} voices")
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), int(seed)
        block = gen.f0.block
        self.rf_c, self.rf_t = receptive_field(gen.context), receptive_field(gen.timbre)
        self.M = CONTEXT_FRAMES
        up = lambda x: int(math.ceil(x / block) * block)  # noqa: E731
        sec = lambda s: int(round(s * self.fr))  # noqa: E731
        self.W, self.X = sec(F0_WARMUP_S), max(sec(F0_CROSSFADE_S), 1)
        self.min_seg = max(sec(F0_MIN_SEGMENT_S), self.X + 1)
        self.grid = max(sec(F0_GRID_S), self.min_seg)
        self.glide = max(sec(PHASE_GLIDE_S), 1)
        self.L = max(up(window_s * self.fr), up(2 * self.X))
        first = min(self.L, max(up(FIRST_WINDOW_S * self.fr), up(2 * self.X)))
        starts = [0] + list(range(first, self.F, self.L)) if self.F else []
        self.windows = [(a, min(b, self.F)) for a, b in zip(starts, starts[1:] + [self.F])]
        self.ids = [by_name(p.instrument).id for p in performances]

        # Whole-piece frame inputs (a few bytes per frame per voice), activity intervals and f0 segments.
        self.inputs, self.activity, self.segments, self.bounds = [], [], [], []
        self.vibrato = None if vibrato_st is None else [np.asarray(x, dtype=np.float64) for x in vibrato_st]
        pre = self.rf_c + self.rf_t + self.M + block
        post = int(round(RELEASE_S * self.fr)) + self.rf_c + self.rf_t + self.M
        hold = sec(HOLD_S)
        for p in performances:
            if len(p) == 0:  # a voice without notes: all rest (and never active below)
                self.inputs.append({"features": np.zeros((self.F, N_FRAME_FEATURES), np.float32),
                                    "held_pitch": np.full((self.F, 1), 60.0, np.float32),
                                    "in_note": np.zeros((self.F, 1), np.float32)})
            else:
                x = frame_inputs(notes_to_frames(p.sequence, self.F, self.fr), p.controls)
                x["held_pitch"] = bounded_hold(x["held_pitch"][:, 0], x["in_note"][:, 0], hold)[:, None]
                self.inputs.append(x)
            s, e = note_frame_bounds(p.sequence, self.fr)
            self.bounds.append((s, e))
            self.activity.append((s - pre, e + post))
            self.segments.append(f0_segments(s, e, self.F, self.rf_c + self.W, self.min_seg, self.grid)
                                 if self.F else np.zeros(0, np.int64))
        self.held = np.stack([x["held_pitch"][:, 0] for x in self.inputs]) if self.V else np.zeros((0, self.F))
        self.user_f0 = None
        if f0_hz is not None:
            self.user_f0 = np.stack([np.asarray(_np(f), dtype=np.float32).reshape(-1) for f in f0_hz])
            if self.user_f0.shape != (self.V, self.F):
                raise ValueError(f"f0_hz must give {self.F} frames for each of the {self.V} voices, "
                                 f"got {self.user_f0.shape}")
        self.f0 = midi_to_hz(torch.from_numpy(self.held)).numpy().astype(np.float32)  # final f0, Hz [V, F]
        if self.user_f0 is not None:
            self.f0 = self.user_f0.copy()
        self.dev = np.zeros((self.V, self.F))  # final f0 deviation from the held pitch, semitones
        self.next_seg = [0] * self.V  # the next segment of each voice to sample
        self.tails: list[np.ndarray | None] = [None] * self.V  # deviation over the next segment's hand-over
        self.anchor = [0] * self.V  # f0 is final (phase anchored) before this frame
        if self.user_f0 is not None:
            self.anchor = [self.F] * self.V
        self.nh, self.nb = gen.head.n_harmonics, gen.head.n_noise_bands
        self.timings = {"conditioning": 0.0, "f0": 0.0, "timbre": 0.0}
        # Convolutions run on blocks of this many frames (plus margins): activations of a block stay in cache.
        self.block_frames = max(256, int(BLOCK_ELEMENTS // max(1, gen.head.proj.in_features)))

    def _blocked(self, n: int, margin: int, fn):
        """``fn(lo, hi)`` over cache-sized blocks with receptive-field margins, cropped: [(a, b, lo, result)]."""
        if n <= self.block_frames + 2 * margin:
            return None
        return [(a, b, lo, fn(lo, hi)) for a, b, lo, hi in blocks(n, self.block_frames, margin)]

    def _conditioning(self, inputs: GeneratorInputs) -> Tensor:
        """``gen.conditioning`` computed in cache-sized blocks with receptive-field margins (exact)."""
        parts = self._blocked(inputs.n_frames, self.rf_c,
                              lambda lo, hi: self.gen.conditioning(_frames_of(inputs, lo, hi)))
        if parts is None:
            return self.gen.conditioning(inputs)
        return torch.cat([c[:, a - lo:b - lo] for a, b, lo, c in parts], 1)

    def _timbre(self, cond: Tensor, inputs: GeneratorInputs, f0: Tensor) -> SynthParams:
        """``gen.timbre_params`` in cache-sized blocks with receptive-field margins (exact)."""
        sr, fr = float(self.sr), float(self.fr)
        parts = self._blocked(inputs.n_frames, self.rf_t, lambda lo, hi: self.gen.timbre_params(
            cond[:, lo:hi], _frames_of(inputs, lo, hi), f0[:, lo:hi], sr, fr))
        if parts is None:
            return self.gen.timbre_params(cond, inputs, f0, sr, fr)
        return SynthParams.cat([p.frames(a - lo, b - lo) for a, b, lo, p in parts])

    def _overlaps(self, v: int, lo: int, hi: int) -> bool:
        return bool(np.any((self.activity[v][0] < hi) & (self.activity[v][1] > lo)))

    def active(self, lo: int, hi: int) -> list[int]:
        return [v for v in range(self.V) if self._overlaps(v, lo, hi)]

    def _inputs(self, voices: Sequence[int], lo: int, hi: int) -> GeneratorInputs:
        items = [{k: x[lo:hi] for k, x in self.inputs[v].items()} for v in voices]
        return batch_inputs(items, [self.ids[v] for v in voices])

    def window_params(self, voices: Sequence[int], params: SynthParams | None, a: int, b: int
                      ) -> list[SynthParams]:
        """Every voice's parameters for frames [a, b) of a window (``params`` of the active ``voices``; silent
        voices get silent parameters), one ``[1, b - a, ...]`` each."""
        out: dict[int, SynthParams] = {}
        if voices:
            out.update({v: params.map(lambda t, i=i: t[i:i + 1]) for i, v in enumerate(voices)})
        silent = [v for v in range(self.V) if v not in out]
        if silent:
            sp = self.silent_params(silent, a, b)
            out.update({v: sp.map(lambda t, i=i: t[i:i + 1]) for i, v in enumerate(silent)})
        return [out[v] for v in range(self.V)]

    def silent_params(self, voices: Sequence[int], lo: int, hi: int) -> SynthParams:
        """Zero-amplitude parameters of ``voices`` over frames [lo, hi) (f0: their final f0 there)."""
        n, B = hi - lo, len(voices)
        f0 = torch.from_numpy(self.f0[list(voices), lo:hi].copy())[..., None]
        return SynthParams(f0, torch.zeros(B, n, 1), torch.full((B, n, self.nh), 1.0 / self.nh),
                           torch.zeros(B, n, self.nb), self.fr)

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[tuple[int, int, list[int], SynthParams | None]]:
        pending: deque = deque()
        for a, b in self.windows:
            pending.append(self._window(a, b))
            final = min(self.anchor, default=self.F)
            while pending and final >= min(self.F, pending[0][1] + self.rf_t):
                yield self._finish(*pending.popleft())
        while pending:
            yield self._finish(*pending.popleft())

    # ------------------------------------------------------------------------------------------- f0
    def _window(self, a: int, b: int):
        """Conditioning of window [a, b) and f0 of the segments that start in it: the window's pending state."""
        voices = self.active(a - self.M, b + self.M)  # activity intervals include the networks' context
        todo = []  # (voice, segment index, lo, hi): segments starting in [a, b), sampled over [lo, hi)
        if self.user_f0 is None:
            for v in range(self.V):
                seg = self.segments[v]
                while self.next_seg[v] < seg.size and seg[self.next_seg[v]] < b:
                    i = self.next_seg[v]
                    stop = seg[i + 1] if i + 1 < seg.size else self.F
                    todo.append((v, i, max(0, int(seg[i]) - self.W), min(self.F, int(stop) + self.X)))
                    self.next_seg[v] += 1
        sampled = [t for t in todo if self._overlaps(t[0], t[2], t[3])]
        rows = sorted(set(voices) | {t[0] for t in sampled})
        state = None
        if rows:
            lo = min([a - self.rf_t] + [t[2] for t in sampled])
            hi = max([b + self.rf_t] + [t[3] for t in sampled])
            ca, cb = max(0, lo - self.rf_c), min(self.F, hi + self.rf_c)
            t0 = time.perf_counter()
            inputs = self._inputs(rows, ca, cb)
            cond = self._conditioning(inputs)
            t1 = time.perf_counter()
            self.timings["conditioning"] += t1 - t0
            devs = self._sample(sampled, cond, rows, ca)
            self.timings["f0"] += time.perf_counter() - t1
            state = (voices, rows, inputs, cond, ca)
        else:
            devs = {}
        for v, i, lo, hi in todo:
            start = int(self.segments[v][i])
            d = devs.get((v, i))
            self._stitch(v, i, d[start - lo:] if d is not None else np.zeros(hi - start))
        return a, b, state

    def _sample(self, segs, cond: Tensor, rows: list[int], ca: int) -> dict:
        """Sample the f0 deviation (semitones, ``[hi - lo]`` float64) of segments ``(v, i, lo, hi)`` in one
        batch, each from a fresh state with its own random stream."""
        if not segs:
            return {}
        f0m = self.gen.f0
        pooled = [f0m.pool(cond[rows.index(v):rows.index(v) + 1, lo - ca:hi - ca])[0] for v, i, lo, hi in segs]
        steps = max(p.shape[0] for p in pooled)
        batch = torch.stack([torch.cat([p, p[-1:].expand(steps - p.shape[0], -1)]) for p in pooled])
        uniforms = torch.full((len(segs), steps), 0.5, dtype=torch.float64)
        for k, ((v, i, lo, hi), p) in enumerate(zip(segs, pooled)):
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.keys[v], int(self.segments[v][i]), 0xF0))
            uniforms[k, :p.shape[0]] = torch.rand(p.shape[0], generator=g, dtype=torch.float64)
        bins = f0m.sample(batch, self.temperature, self.top_p, uniforms=uniforms,
                          lengths=[p.shape[0] for p in pooled])
        semis = f0m.to_semitones(bins)
        out = {}
        for k, ((v, i, lo, hi), p) in enumerate(zip(segs, pooled)):
            dev = f0m.unpool(semis[k:k + 1, :p.shape[0], None], hi - lo)[0, :, 0]
            out[(v, i)] = self._obey_vibrato(v, lo, hi, dev.numpy().astype(np.float64))
        return out

    def _obey_vibrato(self, v: int, lo: int, hi: int, dev: np.ndarray) -> np.ndarray:
        """``dev`` (semitones over frames [lo, hi) of voice ``v``) with each note part's vibrato scaled to the
        note's asked depth (see ``vibrato_st``); a function of the segment alone, so edits stay local."""
        if self.vibrato is None:
            return dev
        s, e = self.bounds[v]
        a, b = np.maximum(s, lo) - lo, np.minimum(e, hi) - lo
        k = np.flatnonzero(b - a > VIBRATO_MIN_FRAMES)
        if not k.size:
            return dev
        measured = vibrato_depth(dev, a[k], b[k], self.fr)
        scale = np.ones(dev.size)
        added = np.zeros(dev.size)
        for j, m, want in zip(k, measured, self.vibrato[v][k]):  # the few notes of one segment
            if m > 0:
                scale[a[j]:b[j]] = min(max(want, 0.0) / m, MAX_VIBRATO_SCALE)
            elif want > VIBRATO_MIN_DEPTH:  # nothing to scale: a vibrato in phase with the note's start
                t = (np.arange(a[j], b[j]) + lo - s[j]) / self.fr  # seconds since the note's start
                fade = np.clip(t / VIBRATO_ONSET_S, 0.0, 1.0)
                added[a[j]:b[j]] = want * fade * np.sin(2 * np.pi * VIBRATO_RATE_HZ * t)
        return rescale_vibrato_in(dev, scale, a[k], b[k], self.fr) + added

    def _stitch(self, v: int, i: int, d: np.ndarray) -> None:
        """Join segment ``i`` of voice ``v`` (deviation ``d`` from its start on) to the one before, then anchor
        the phase of the interval that ends with this hand-over."""
        seg = self.segments[v]
        start = int(seg[i])
        stop = int(seg[i + 1]) if i + 1 < seg.size else self.F
        prev = self.tails[v]
        if prev is not None:
            n = prev.shape[0]
            rest = np.flatnonzero(self.inputs[v]["in_note"][start:start + n, 0] < 0.5)
            if rest.size:  # hand over at the first rest frame
                d[:rest[0]] = prev[:rest[0]]
            else:  # raised-cosine crossfade of the deviation
                w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
                d[:n] = (1 - w) * prev + w * d[:n]
        self.dev[v, start:stop] = d[:stop - start]
        self.tails[v] = d[stop - start:].copy() if stop < self.F else None
        if prev is not None:  # the hand-over into this segment is over: a phase anchor
            self._anchor(v, start + prev.shape[0])
        if stop >= self.F:  # the last segment: everything after the last anchor is final
            self._anchor(v, self.F)

    def _anchor(self, v: int, end: int) -> None:
        """Final f0 of voice ``v`` from its last anchor to ``end``: a new phase anchor, or the end of the piece."""
        a0 = self.anchor[v]
        if end <= a0:
            return
        midi = self.held[v, a0:end + 1].astype(np.float64) + self.dev[v, a0:end + 1]
        hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
        if end >= self.F:  # nothing after the end to anchor for
            self.f0[v, a0:end] = hz[:end - a0]
        else:
            rest = 1.0 - self.inputs[v]["in_note"][a0:end, 0].astype(np.float64)
            self.f0[v, a0:end] = anchor_phase(hz, self.glide, rest, self.hop, self.sr)
        self.anchor[v] = end

    # ------------------------------------------------------------------------------------------ timbre
    def _finish(self, a: int, b: int, state):
        if state is None or not state[0]:
            return a, b, [], None
        voices, rows, inputs, cond, ca = state
        sel = [rows.index(v) for v in voices]
        if len(sel) != len(rows):
            inputs = GeneratorInputs(inputs.features[sel], inputs.held_pitch[sel], inputs.in_note[sel],
                                     inputs.instrument[sel])
            cond = cond[sel]
        ta, tb = max(0, a - self.rf_t), min(self.F, b + self.rf_t)
        sl = slice(ta - ca, tb - ca)
        f0 = torch.from_numpy(self.f0[voices, ta:tb])[..., None]
        t0 = time.perf_counter()
        params = self._timbre(cond[:, sl], _frames_of(inputs, sl.start, sl.stop), f0)
        self.timings["timbre"] += time.perf_counter() - t0
        return a, b, voices, params.frames(a - ta, b - ta)


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


__all__ = ["GeneratorRun", "derive_seed", "receptive_field", "blocks", "f0_segments", "anchor_phase",
           "bounded_hold", "RELEASE_S", "FIRST_WINDOW_S", "F0_WARMUP_S", "F0_CROSSFADE_S", "F0_MIN_SEGMENT_S",
           "F0_GRID_S", "PHASE_GLIDE_S", "HOLD_S"]
