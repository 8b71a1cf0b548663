"""The studio's audio: a full render of the open performance, and regional re-renders spliced into it.

State (:class:`RenderState`): every voice's **dry** stem (the synthesizer's output before the reverb), its wet
stem (dry + reverb), and its f0 (Hz) and loudness (dB of the harmonic amplitude) curves at the model's frame
rate. The mix is the sum of the wet stems at one gain, chosen at a full render and kept through edits (lowered only
when an edit would push the peak over ``MIX_PEAK``).

A regional re-render (:func:`plan_regions`, :meth:`RenderState.rerender`) renders, with the public
:meth:`MidiDDSP.render` and the session's seed, only the changed voices (their random draws keyed as in a full
render) and only their notes near the changed ones (``CONTEXT_S`` of neighbours on each side), and splices the
dry result into the dry stem over a *cut span*: from the onset of the note before the first changed note to the
onset of the first unchanged note at least ``POST_S`` after the last
changed one (note onsets mask the short crossfade, ``XFADE_S``), or to the end of the stem. The reverb is
linear, so the wet stem is corrected by the reverb of (new dry - old dry) over the cut span: the reverb tail of
the region is exact and nothing outside the cut span and its reverb tail changes.

How exact: with randomness keyed per note (the user-contract issue) the spliced region equals a full re-render
up to the harmonic oscillator's phase (which a full render accumulates from the start of the piece) and the
crossfade. While the f0 sampler draws from one stream per render, the region is a new take of the f0 curve of
the notes in it, which is what a full re-render would give too (it re-draws every note after the edit).

Every change is also returned as a :class:`Patch` (the old and new dry samples and curves of the cut spans) so
undo / redo restore the exact earlier audio without rendering.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from midi_ddsp.errors import MidiDDSPWarning
from midi_ddsp.instruments import by_name
from midi_ddsp.note_level.notes import NoteSequence, Performance

from .edits import Change

MIX_PEAK = 0.99
HEADROOM_DB = 3.0  # a full render leaves this much under MIX_PEAK for later edits before the gain must move
CONTEXT_S = 1.0  # neighbours rendered on each side of a cut span (covers the generator's receptive field)
PRE_S = 0.3  # a cut span starts at least this long before the first changed note (or at the previous onset)
POST_S = 0.3  # ... and ends at the first unchanged onset at least this long after the last changed offset
MAX_REACH_S = 4.0  # farthest a cut point is moved to find a note onset; else cut PRE_S/RELEASE_S from the notes
RELEASE_S = 1.5  # without a later onset within reach: cut this long after the last changed offset
XFADE_S = 0.01  # raised-cosine crossfade at each cut point
FULL_FRACTION = 0.6  # re-render everything when the cut spans cover more than this fraction of the piece


@dataclass
class Patch:
    """The samples a change replaced: per (voice, s0, s1) span the dry samples before and after, the curve frames
    before and after, and the stem lengths / instruments before and after."""

    spans: list = field(default_factory=list)  # (voice, s0, s1, old_dry, new_dry, f0, f1, old_curves, new_curves)
    n_before: int = 0
    n_after: int = 0
    instruments_before: list = field(default_factory=list)
    instruments_after: list = field(default_factory=list)
    tail: tuple | None = None  # (dry, wet, f0, loudness) beyond n_after when the stems got shorter

    @property
    def nbytes(self) -> int:
        extra = sum(t.nbytes for t in self.tail) if self.tail is not None else 0
        return extra + sum(s[3].nbytes + s[4].nbytes + s[7].nbytes + s[8].nbytes for s in self.spans)


def plan_regions(perf: Performance, spans: list[tuple[float, float]], end_s: float) -> list[tuple[float, float]]:
    """Cut spans (seconds) covering the changed note ``spans`` of one voice (new notes ``perf``); merged, sorted.

    ``end_s`` is the length of the stem; a span reaching past the last note ends there.
    """
    onsets = np.sort(perf.sequence.onsets_s) if len(perf) else np.zeros(0)
    cuts = []
    for a, b in sorted(spans):
        before = onsets[onsets <= a - PRE_S]
        start = float(before[-1]) if before.size and before[-1] >= a - MAX_REACH_S else max(0.0, a - PRE_S)
        after = onsets[onsets >= b + POST_S]
        if after.size and after[0] <= b + MAX_REACH_S:
            stop = float(after[0])
        elif after.size:
            stop = b + RELEASE_S
        else:
            stop = end_s
        cuts.append([max(0.0, start), min(end_s, max(stop, start))])
    merged: list[list[float]] = []
    for c in cuts:
        if merged and c[0] <= merged[-1][1] + 2 * CONTEXT_S:
            merged[-1][1] = max(merged[-1][1], c[1])
        else:
            merged.append(c)
    return [(a, b) for a, b in merged]


def _context_notes(perf: Performance, cuts: list[tuple[float, float]]) -> Performance:
    """The notes of ``perf`` within CONTEXT_S of any cut span (what a regional render needs)."""
    if not len(perf):
        return perf
    on, off = perf.sequence.onsets_s, perf.sequence.offsets_s
    keep = np.zeros(len(perf), bool)
    for a, b in cuts:
        keep |= (off > a - CONTEXT_S) & (on < b + CONTEXT_S)
    idx = np.flatnonzero(keep)
    return Performance(NoteSequence(tuple(perf.notes[i] for i in idx), perf.instrument, perf.name),
                       perf.controls[idx])


class RenderState:
    """Stems and curves of the open performance (see module docstring).

    Attributes:
        dry, wet: float32 ``[voices, samples]``; f0_hz, loudness_db: float32 ``[voices, frames]``.
        instruments: each voice's instrument; sample_rate (Hz), hop (samples per frame), frame_rate (Hz).
        mix: float32 ``[samples]`` (peak <= MIX_PEAK); gain: the scale applied to it.
    """

    def __init__(self, model, seed: int = 0, temperature: float = 1.0):
        self.model, self.seed, self.temperature = model, int(seed), float(temperature)
        self.sample_rate, self.hop, self.frame_rate = model.sample_rate, model.hop, model.frame_rate
        self.dry = self.wet = np.zeros((0, 0), np.float32)
        self.f0_hz = self.loudness_db = np.zeros((0, 0), np.float32)
        self.instruments: list[str] = []
        self.mix = np.zeros(0, np.float32)
        self.gain = 1.0
        self.version = 0  # bumped on every change of the audio

    # ---------------------------------------------------------------------------------------- rendering
    def _render(self, perfs: list[Performance], voices: list[int] | None = None):
        """Dry stems ``[len(perfs), samples]`` and curves ``[len(perfs), frames]`` of ``perfs`` via the public
        render(); ``voices``: the voice of the open performance each of ``perfs`` is (its random draws)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MidiDDSPWarning)
            res = self.model.render(perfs, temperature=self.temperature, seed=self.seed, reverb=False,
                                    keep_params="curves", progress=False, voice_keys=voices)
        dry = res.stems if res.gain == 1.0 else res.stems / np.float32(res.gain)
        n = self.n_samples_for(perfs)  # render() trims its tail; the studio keeps the full length so that
        if dry.shape[1] < n:           # whole and regional renders line up sample for sample
            dry = np.pad(dry, ((0, 0), (0, n - dry.shape[1])))
        f0 = np.stack([p.f0_hz[0, :, 0].float().numpy() for p in res.params])
        amp = np.stack([p.amplitude[0, :, 0].float().numpy() for p in res.params])
        loud = (20.0 * np.log10(np.maximum(amp, 1e-5))).astype(np.float32)
        return dry.astype(np.float32, copy=False), f0.astype(np.float32), loud

    def n_samples_for(self, perfs: list[Performance]) -> int:
        return self.model.n_frames_for(perfs) * self.hop

    def _reverb(self, dry: np.ndarray, voices: list[int]) -> np.ndarray:
        """Dry ``[len(voices), n]`` -> dry + reverb tail, ``[len(voices), n + taps]`` (the model's rooms)."""
        ids = torch.as_tensor([by_name(self.instruments[v]).id for v in voices], dtype=torch.long)
        reverb = self.model.synth.reverb
        taps = reverb.irs.shape[-1]
        with torch.inference_mode():
            x = F.pad(torch.from_numpy(np.ascontiguousarray(dry, dtype=np.float32)), (0, taps))
            return reverb(x, ids).numpy()

    def full(self, perfs: list[Performance]) -> Patch:
        """Render everything from scratch."""
        rendered = self._render(perfs)  # first: a failure leaves the state as it was
        before = self._snapshot_all()
        self.instruments = [p.instrument for p in perfs]
        self.dry, self.f0_hz, self.loudness_db = rendered
        n = self.dry.shape[1]
        self.wet = self._reverb(self.dry, list(range(len(perfs))))[:, :n] if len(perfs) else self.dry.copy()
        self._remix(regain=True)
        after = self._snapshot_all()
        return Patch([("all", 0, 0, before[0], after[0], 0, 0, before[1], after[1])], before[2], n,
                     before[3], list(self.instruments))

    def load(self, perfs: list[Performance], dry: np.ndarray, f0: np.ndarray, loud: np.ndarray) -> None:
        """Adopt cached dry stems and curves (render cache) for ``perfs``."""
        self.instruments = [p.instrument for p in perfs]
        self.dry, self.f0_hz, self.loudness_db = dry.astype(np.float32), f0.astype(np.float32), loud.astype(np.float32)
        n = self.dry.shape[1]
        self.wet = self._reverb(self.dry, list(range(len(perfs))))[:, :n]
        self._remix(regain=True)

    def _snapshot_all(self):
        return (self.dry.copy(), np.stack([self.f0_hz, self.loudness_db]), self.dry.shape[1],
                list(self.instruments))

    def rerender(self, new: list[Performance], change: Change) -> Patch:
        """Bring the state from the performance before ``change`` to ``new``, rendering as little as possible."""
        if change.replace is not None or len(new) != self.dry.shape[0]:
            return self.full(new)
        n_old, n_new = self.dry.shape[1], self.n_samples_for(new)
        dry = f0 = loud = None
        end_s = n_new / self.sample_rate
        plan: dict[int, list[tuple[float, float]]] = {}
        for vc in change.voices:
            if vc.instrument_changed:
                plan[vc.voice] = [(0.0, end_s)]
            else:
                plan[vc.voice] = plan_regions(new[vc.voice], vc.spans(), end_s)
        covered = sum(b - a for cuts in plan.values() for a, b in cuts)
        if covered > FULL_FRACTION * end_s * len(new):
            return self.full(new)
        patch = Patch(n_before=n_old, n_after=n_new, instruments_before=list(self.instruments),
                      instruments_after=[p.instrument for p in new])
        row: dict[int, int] = {}
        if plan:  # render first (only the changed voices, keyed as in a full render): a failure leaves the state
            row = {v: j for j, v in enumerate(sorted(plan))}
            dry, f0, loud = self._render([_context_notes(new[v], plan[v]) for v in row], list(row))
        if n_new < n_old:  # keep what the shorter stems drop, for undo
            fa = n_new // self.hop
            patch.tail = (self.dry[:, n_new:].copy(), self.wet[:, n_new:].copy(), self.f0_hz[:, fa:].copy(),
                          self.loudness_db[:, fa:].copy())
        self._resize(n_new)
        hop = self.hop
        for v, cuts in plan.items():
            for a, b in cuts:
                s0, s1 = int(round(a * self.frame_rate)) * hop, min(n_new, int(round(b * self.frame_rate)) * hop)
                if s1 <= s0:
                    continue
                old = self.dry[v, s0:s1].copy()
                seg = np.zeros(s1 - s0, np.float32)
                have = max(0, min(s1, dry.shape[1]) - s0)
                seg[:have] = dry[row[v], s0:s0 + have]
                self._crossfade(seg, old, s0, s1, n_new)
                fa, fb = s0 // hop, -(-s1 // hop)
                old_c = np.stack([self.f0_hz[v, fa:fb], self.loudness_db[v, fa:fb]])
                new_c = np.stack([np.zeros(fb - fa, np.float32), np.full(fb - fa, -100.0, np.float32)])
                k = max(0, min(fb, f0.shape[1]) - fa)
                new_c[0, :k], new_c[1, :k] = f0[row[v], fa:fa + k], loud[row[v], fa:fa + k]
                patch.spans.append((v, s0, s1, old, seg, fa, fb, old_c, new_c))
        self.apply_patch(patch, forwards=True)
        return patch

    def _crossfade(self, seg: np.ndarray, old: np.ndarray, s0: int, s1: int, n: int) -> None:
        """Fade from the old audio into ``seg`` at s0 and back at s1 (not at the ends of the stem)."""
        L = min(int(XFADE_S * self.sample_rate), seg.shape[0] // 2)
        if L <= 0:
            return
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(L) + 0.5) / L)).astype(np.float32)
        if s0 > 0:
            seg[:L] = old[:L] * (1 - ramp) + seg[:L] * ramp
        if s1 < n:
            seg[-L:] = seg[-L:] * ramp[::-1] + old[-L:] * (1 - ramp[::-1])

    # ------------------------------------------------------------------------------------- applying
    def _resize(self, n: int) -> None:
        def fit(x, length, fill=0.0):
            if x.shape[1] >= length:
                return np.ascontiguousarray(x[:, :length])
            return np.concatenate([x, np.full((x.shape[0], length - x.shape[1]), fill, np.float32)], 1)

        if n != self.dry.shape[1]:
            frames = n // self.hop
            self.dry, self.wet = fit(self.dry, n), fit(self.wet, n)
            self.f0_hz, self.loudness_db = fit(self.f0_hz, frames), fit(self.loudness_db, frames, -100.0)

    def apply_patch(self, patch: Patch, forwards: bool) -> None:
        """Replay a patch forwards (redo) or backwards (undo) without rendering."""
        if patch.spans and patch.spans[0][0] == "all":
            _, _, _, old, new, _, _, old_c, new_c = patch.spans[0]
            dry, curves = (new, new_c) if forwards else (old, old_c)
            self.instruments = list(patch.instruments_after if forwards else patch.instruments_before)
            self.dry = dry.copy()
            self.f0_hz, self.loudness_db = curves[0].copy(), curves[1].copy()
            n = self.dry.shape[1]
            self.wet = self._reverb(self.dry, list(range(len(self.dry))))[:, :n] if len(self.dry) else self.dry
            self._remix()
            return
        whole = {v for v, (a, b) in enumerate(zip(patch.instruments_before, patch.instruments_after)) if a != b}
        if forwards:
            self._resize(patch.n_after)
            self.instruments = list(patch.instruments_after)
        else:
            self.instruments = list(patch.instruments_before)
        n = self.dry.shape[1]
        for v, s0, s1, old, new, fa, fb, old_c, new_c in patch.spans:
            seg, cur, curves = (new, old, new_c) if forwards else (old, new, old_c)
            self.dry[v, s0:s1] = seg
            self.f0_hz[v, fa:fb], self.loudness_db[v, fa:fb] = curves[0], curves[1]
            if v not in whole:  # the reverb is linear: add the reverb of the change
                tail = self._reverb((seg - cur)[None], [v])[0]
                stop = min(n, s0 + tail.shape[0])
                self.wet[v, s0:stop] += tail[:stop - s0]
        if not forwards:
            self._resize(patch.n_before)
            if patch.tail is not None:
                m, fm = patch.n_after, patch.n_after // self.hop
                self.dry[:, m:], self.wet[:, m:] = patch.tail[0], patch.tail[1]
                self.f0_hz[:, fm:], self.loudness_db[:, fm:] = patch.tail[2], patch.tail[3]
        n = self.dry.shape[1]
        for v in whole:
            self.wet[v] = self._reverb(self.dry[v][None], [v])[0, :n]
        self._remix()

    def _remix(self, regain: bool = False) -> None:
        """Sum the wet stems at the session's gain. The gain is chosen at a full render (``regain``: the peak
        kept ``HEADROOM_DB`` under MIX_PEAK) and kept through edits, so an edit changes the mix only where it
        changes the stems; it is lowered only when an edit would clip."""
        mix = self.wet.sum(0) if self.wet.shape[0] else np.zeros(self.wet.shape[1], np.float32)
        top = float(np.max(np.abs(mix))) if mix.size else 0.0
        if regain:
            self.gain = min(1.0, MIX_PEAK * 10.0 ** (-HEADROOM_DB / 20.0) / top) if top > 0 else 1.0
        if top * self.gain > MIX_PEAK:
            self.gain = MIX_PEAK / top
        self.mix = (mix * np.float32(self.gain)).astype(np.float32, copy=False)
        self.version += 1

    @property
    def duration_s(self) -> float:
        return self.dry.shape[1] / self.sample_rate if self.dry.size else 0.0


def wav_bytes(x: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono WAV of float audio ``[samples]`` in [-1, 1] (clipped)."""
    import io
    import wave

    pcm = np.clip(np.round(np.asarray(x, np.float32) * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def spectrogram(x: np.ndarray, sample_rate: int, t0: float, t1: float, width: int, height: int,
                f_lo: float = 30.0, f_hi: float | None = None) -> np.ndarray:
    """uint8 ``[height, width]`` log-magnitude spectrogram of ``x`` between t0 and t1 s, on a log-frequency axis
    from ``f_lo`` to ``f_hi`` Hz (row 0 = highest frequency); 255 = the loudest bin, 0 = 80 dB below."""
    f_hi = f_hi or sample_rate / 2.0
    n_fft = 1024
    centres = (t0 + (np.arange(width) + 0.5) * (t1 - t0) / width) * sample_rate
    starts = np.clip(centres.astype(np.int64) - n_fft // 2, -n_fft, max(0, x.shape[0]))
    padded = np.concatenate([np.zeros(n_fft, np.float32), x.astype(np.float32), np.zeros(2 * n_fft, np.float32)])
    frames = padded[(starts + n_fft)[:, None] + np.arange(n_fft)[None]] * np.hanning(n_fft).astype(np.float32)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    freqs = f_lo * (f_hi / f_lo) ** ((height - 1 - np.arange(height)) / max(1, height - 1))
    bins = np.clip(np.round(freqs / sample_rate * n_fft).astype(np.int64), 0, mag.shape[1] - 1)
    db = 20 * np.log10(np.maximum(mag[:, bins].T, 1e-9))
    top = db.max() if db.size else 0.0
    return np.clip((db - (top - 80.0)) / 80.0 * 255.0, 0, 255).astype(np.uint8)


__all__ = ["RenderState", "Patch", "plan_regions", "wav_bytes", "spectrogram", "MIX_PEAK"]
