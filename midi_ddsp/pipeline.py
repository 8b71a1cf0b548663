"""The product: MIDI (or an edited performance) -> audio, and timbre transfer of recordings.

:class:`MidiDDSP` stacks the three levels of the hierarchy; every level is a method that takes the level
above and returns the level below, so a user can enter anywhere::

    m = MidiDDSP.from_pretrained()                       # checkpoints/ (or a folder path)
    voices = m.read("song.mid").voices                   # MIDI -> monophonic NoteSequences (+ warnings)
    perfs = m.perform(voices, temperature=1.0, seed=0)   # notes -> Performance (6 controls per note)
    perfs[0] = perfs[0].set_control("vibrato", 0.9, notes=3)
    params = m.synth_params(perfs, seed=0)               # Performance -> SynthParams (f0, amps, noise)
    stems = m.audio(params, [p.instrument for p in perfs], seed=0)   # SynthParams -> audio
    result = m.render("song.mid", seed=0)                # all of the above; result.mix, result.stems

Long pieces are processed in windows of ``window_s`` seconds (default 30 s), so working memory does not
grow with the length of the piece (only the output buffers do, one float32 row per voice):

- **Generator, timbre** (non-autoregressive dilated convolutions): each window is computed with enough context
  on both sides to cover the networks' receptive field, then cropped, so the result is the same as
  processing the whole piece at once (checked by the tests).
- **Generator, f0** (autoregressive): each window samples from ``warmup_s`` (2 s) before its start, so the
  recurrent state has context, and runs ``overlap`` frames past its end. In the overlap the previous
  window's f0 hands over to the next one's: at the first rest frame if there is one, else with a
  raised-cosine crossfade of the pitch deviation (f0 stays continuous: no jump, no click).
- **Synthesizer**: the harmonic oscillator is run per window with its phase carried over exactly (a one-frame
  silent pre-roll whose f0 is chosen so that the accumulated phase matches), the filtered noise is run with
  a few frames of margin on a noise excitation that is a fixed function of (seed, voice, sample index), and
  the reverb is an overlap-add of each window's convolution tail. Windowed output equals the whole-signal
  render to float rounding: there are no chunk seams.
- **Silence is skipped**: a voice is not run through the networks or the synthesizer in windows where it has
  no note (allowing for the model's look-ahead and a release); there it is exactly silent.

Voices active in a window are batched together (all voices of a piece share one frame grid). In
:meth:`MidiDDSP.render` the synthesizer works on a second thread, one window behind the generator, with
single-threaded torch ops on both sides: on two cores this beats splitting every op over two threads.

Mixing: stems are summed; if the mix peak exceeds ``MIX_PEAK`` (0.99) the mix *and every stem* are scaled
by the same gain, so the stems still sum to the mix and keep their balance (the gain is reported in
:attr:`RenderResult.gain`). Renders end ``tail_s`` after the last note offset: a 1 s release plus the time
the reverb's impulse response takes to decay by 60 dB, so neither release nor reverb is cut.

Seeds: the same inputs and seed give the same audio. The expression prior uses ``seed + voice`` (see
:mod:`midi_ddsp.performance.sampling`), the f0 sampler one generator derived from ``seed``, and the noise
source a stream derived from ``(seed, voice index)``. A voice's f0 sample can depend on which other voices
are batched with it in a window, so a voice rendered alone may differ from the same voice in a mix.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import CheckpointError, construct, save_weights
from .errors import MidiDDSPError, MidiDDSPWarning
from .instruments import INSTRUMENTS, Instrument, by_name
from .io.midi import load_midi, note_name
from .note_level.expression import ControlNormalizer, extract_controls
from .note_level.frames import note_frame_bounds, notes_to_frames
from .note_level.notes import N_CONTROLS, NoteSequence, Performance
from .note_level.serialization import load_performances
from .synthesis.conditioning import batch_inputs, frame_inputs
from .synthesis.ddsp.functional import hz_to_midi, midi_to_hz
from .synthesis.loading import load_analysis, load_generator
from .synthesis.generator import N_FRAME_FEATURES, GeneratorInputs, SynthesisGenerator
from .synthesis.params import SynthParams
from .synthesis.synthesizer import Synthesizer

DEFAULT_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
GENERATOR_FILE = "generator.safetensors"
PERFORMANCE_FILE = "performance.safetensors"
TRANSFER_FILE = "transfer.safetensors"
ANALYSIS_FILE = "analysis.safetensors"

MIX_PEAK = 0.99
RELEASE_S = 1.0  # MIDI-DDSP's trailing rest: time given to the model's release after the last note
NOISE_BLOCK = 1 << 16  # samples per independently seeded block of the noise excitation
SYNTH_MARGIN = 8  # frames of context for the noise filter (windowed overlap-add + 128-tap FIR)
BLOCK_ELEMENTS = 1 << 18  # frames x channels per network block (~1 MB of float32 activations)
SHORT_NOTE_FRAMES = 1  # notes shorter than this many frames may vanish from the frame grid: warned

# Loudness statistics used for timbre transfer when the checkpoint has none and no generator can measure
# them (A-weighted dB as a_weighted_loudness reads it; 0 dB is about a -20 dBFS sine).
DEFAULT_LOUDNESS_MEAN_DB = -20.0
DEFAULT_LOUDNESS_STD_DB = 8.0


# ---------------------------------------------------------------------------------------------- results
@dataclass
class ReadResult:
    """Voices read from a MIDI file and the problems worth telling the user (one line each)."""

    voices: list[NoteSequence]
    warnings: list[str] = field(default_factory=list)


@dataclass
class RenderResult:
    """What :meth:`MidiDDSP.render` produced.

    Attributes:
        mix: float32 ``[samples]``, peak <= MIX_PEAK.
        stems: float32 ``[voices, samples]``, one row per voice, scaled by the same ``gain`` as the mix
            (so ``stems.sum(0) == mix``).
        performances: the performance of every voice (the level users edit and export).
        params: the synthesis parameters of every voice (``[1, frames, ...]`` each), or None when the render
            was asked not to keep them (saves memory on long pieces).
        sample_rate: Hz.
        gain: the linear gain applied to mix and stems to avoid clipping (1.0 when none was needed).
        warnings: one line per non-fatal problem (out-of-range notes, ...).
        timings: seconds per stage (``perform``, ``generate_and_synthesize``, ...).
    """

    mix: np.ndarray
    stems: np.ndarray
    performances: list[Performance]
    params: list[SynthParams] | None
    sample_rate: int
    gain: float = 1.0
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.mix.shape[-1] / self.sample_rate


@dataclass
class TransferResult:
    """What :meth:`MidiDDSP.transfer` produced.

    Attributes:
        audio: float32 ``[samples]`` at ``sample_rate``, same length as the input (resampled to 16 kHz).
        params: the synthesis parameters (``[1, frames, ...]``).
        f0_hz, confidence, loudness_db: ``[frames]`` float32 features after octave shift and loudness
            adjustment (the model's inputs); ``note_on``: ``[frames]`` bool, the detected note frames.
        octave_shift: octaves actually applied (manual + automatic).
    """

    audio: np.ndarray
    sample_rate: int
    params: SynthParams
    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray
    note_on: np.ndarray
    octave_shift: int = 0


# ------------------------------------------------------------------------------------------------ helpers
def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (independent streams for independent purposes)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def noise_excitation(seed: int, voice: int, start: int, stop: int) -> Tensor:
    """Uniform noise in [-1, 1) for samples ``[start, stop)`` of voice ``voice``: ``[stop - start]`` float32.

    A fixed function of (seed, voice, sample index), made of independently seeded blocks of
    :data:`NOISE_BLOCK` samples, so any window of a render sees the same excitation as the whole render.
    """
    if stop <= start:
        return torch.zeros(0)
    first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
    blocks = []
    for b in range(first, last + 1):
        g = torch.Generator().manual_seed(derive_seed(seed, voice, 0x4E015E, b))
        blocks.append(torch.rand(NOISE_BLOCK, generator=g) * 2 - 1)
    x = torch.cat(blocks)
    off = start - first * NOISE_BLOCK
    return x[off:off + stop - start]


def receptive_field(module: nn.Module) -> int:
    """Frames of context on each side that the 1-d convolutions inside ``module`` see (stacked, same padding)."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            total += m.dilation[0] * (m.kernel_size[0] - 1) // 2
    return total


def ir_decay_s(ir: Tensor | np.ndarray, sample_rate: float, drop_db: float = 60.0) -> float:
    """Seconds until the energy left in impulse response ``ir [taps]`` falls ``drop_db`` below its total
    (Schroeder backward integration); 0 for a silent IR."""
    x = np.asarray(ir.detach().cpu() if isinstance(ir, Tensor) else ir, dtype=np.float64).reshape(-1)
    energy = np.cumsum((x ** 2)[::-1])[::-1]
    if energy.size == 0 or energy[0] <= 0:
        return 0.0
    above = np.flatnonzero(energy > energy[0] * 10.0 ** (-drop_db / 10.0))
    return float(above[-1] + 1) / sample_rate if above.size else 0.0


def _tqdm(total: int, show: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=desc, unit="window", file=sys.stderr, leave=False)


def _as_performances(source) -> list[Performance]:
    if isinstance(source, Performance):
        return [source]
    return list(source)


def _short_note_warnings(voices: Sequence[NoteSequence], frame_rate: float) -> list[str]:
    out = []
    for v in voices:
        d = v.offsets_s - v.onsets_s if len(v) else np.zeros(0)
        bad = np.flatnonzero(d * frame_rate < SHORT_NOTE_FRAMES)
        if bad.size:
            shown = ", ".join(f"{note_name(v[i].pitch)} at {v[i].onset_s:.3f} s" for i in bad[:5])
            out.append(f"{v.name or v.instrument}: {bad.size} note{'s' if bad.size > 1 else ''} shorter than "
                       f"{1000 * SHORT_NOTE_FRAMES / frame_rate:.0f} ms may not sound: {shown}")
    return out


def _range_warnings(voices: Sequence[NoteSequence]) -> list[str]:
    out = []
    for v in voices:
        bad = v.out_of_range()
        if bad:
            inst = v.instrument_info
            shown = ", ".join(f"{note_name(v[i].pitch)} ({v[i].pitch}) at {v[i].onset_s:.2f} s" for i in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            out.append(f"{v.name or 'voice'} ({inst.name}): {len(bad)} note{'s' if len(bad) > 1 else ''} outside "
                       f"the usual range {note_name(inst.low)}-{note_name(inst.high)} ({inst.low}-{inst.high}): "
                       f"{shown}{more}; rendered anyway (the model extrapolates)")
    return out


def _emit(messages: Sequence[str]) -> None:
    for m in messages:
        warnings.warn(m, MidiDDSPWarning, stacklevel=3)


def _blocks(n: int, size: int, margin: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks [a, b) of ``size`` frames over ``n`` frames, each with its context [lo, hi) of ``margin`` frames."""
    for a in range(0, n, size):
        b = min(a + size, n)
        yield a, b, max(0, a - margin), min(n, b + margin)


def _frames_of(inputs: GeneratorInputs, lo: int, hi: int) -> GeneratorInputs:
    """Frames [lo, hi) of generator inputs."""
    return GeneratorInputs(inputs.features[:, lo:hi], inputs.held_pitch[:, lo:hi], inputs.in_note[:, lo:hi],
                           inputs.instrument)


# ------------------------------------------------------------------------------------------ the synthesizer
class _SynthStream:
    """Renders SynthParams window by window into per-voice output rows, seamlessly (see module docstring).

    Args:
        synth: the Synthesizer (harmonic + noise modules and the reverb bank).
        instrument_ids: ``[V]`` instrument id of each voice (selects its impulse response).
        n_frames: frames of the whole render; output has ``n_frames * hop`` samples.
        reverb: add the reverb (with its tail carried across windows).
        impulse_response: optional user IR ``[taps]`` (all voices) or ``[V, taps]``.
        seed: noise seed.
    """

    def __init__(self, synth: Synthesizer, instrument_ids: Sequence[int], n_frames: int, hop: int,
                 sample_rate: int, seed: int, reverb: bool = True, impulse_response=None) -> None:
        self.synth, self.hop, self.sample_rate, self.seed = synth, int(hop), int(sample_rate), int(seed)
        self.n_frames = int(n_frames)
        self.ids = list(int(i) for i in instrument_ids)
        V = len(self.ids)
        self.out = np.zeros((V, self.n_frames * self.hop), dtype=np.float32)
        self.phase = np.zeros(V, dtype=np.float64)  # fundamental phase (cycles, mod 1) at the next window start
        self.reverb = bool(reverb)
        self.timings = {"harmonic": 0.0, "noise": 0.0, "reverb": 0.0}
        self.irs: Tensor | None = None
        if self.reverb:
            if impulse_response is None:
                self.irs = synth.reverb.irs.detach()[torch.as_tensor(self.ids, dtype=torch.long)]
            else:
                ir = torch.as_tensor(np.asarray(impulse_response, dtype=np.float32))
                if ir.dim() == 1:
                    ir = ir[None].expand(V, -1)
                if ir.dim() != 2 or ir.shape[0] not in (1, V) or ir.shape[1] < 1:
                    raise ValueError(f"impulse_response must be [taps] or [voices, taps], got {tuple(ir.shape)}")
                self.irs = ir.expand(V, -1).contiguous()

    def advance_phase(self, voices: Sequence[int], f0: np.ndarray, a: int, b: int) -> np.ndarray:
        """Phase at the start of frame ``a`` (returned) and advance it to frame ``b``.

        ``f0`` float32 ``[len(voices), n]`` holds frames ``a .. a+n-1`` (n >= b - a; frame b if it exists).
        Between frames the oscillator interpolates f0 linearly and sums f0 / sample_rate inclusively, so the
        phase gained over frame i's hop is ``(f_i (hop + 1) / 2 + f_{i+1} (hop - 1) / 2) / sample_rate``.
        """
        hop, n = self.hop, b - a
        f = np.asarray(f0, dtype=np.float32).astype(np.float64)
        if f.shape[1] < n + 1:  # the frame after the last one holds the last value
            f = np.concatenate([f, f[:, -1:]], axis=1)
        inc = (f[:, :n] * (hop + 1) / 2 + f[:, 1:n + 1] * (hop - 1) / 2).sum(1) / self.sample_rate
        idx = np.asarray(voices, dtype=np.int64)
        start = self.phase[idx].copy()
        self.phase[idx] = np.mod(start + inc, 1.0)
        return start

    def render(self, voices: Sequence[int], params: SynthParams, lo: int, a: int, b: int) -> None:
        """Render frames ``[a, b)`` of ``voices`` from ``params`` covering frames ``[lo, lo + params.n_frames)``
        (which must include ``[a - SYNTH_MARGIN, b + SYNTH_MARGIN)`` clipped to the piece) and add them in.

        Also advances the phase of these voices; voices that are silent throughout (zero amplitude and noise)
        are not synthesized.
        """
        hop, sr = self.hop, self.sample_rate
        hi = lo + params.n_frames
        voices = list(voices)
        f0_all = params.f0_hz[:, a - lo:min(b + 1, hi) - lo, 0].float().numpy()
        phase0 = self.advance_phase(voices, f0_all, a, b)
        audible = ((params.amplitude.abs().amax(dim=(1, 2)) > 0)
                   | (params.noise_magnitudes.abs().amax(dim=(1, 2)) > 0)).tolist()
        keep = [i for i, on in enumerate(audible) if on]
        if not keep:
            return
        sel = torch.as_tensor(keep, dtype=torch.long)
        p = params.map(lambda t: t[sel]) if len(keep) < len(voices) else params
        voices = [voices[i] for i in keep]
        phase0 = phase0[keep]

        # Harmonic part: frames a .. min(b, F-1) plus a silent pre-roll frame whose f0 makes the oscillator's
        # accumulated phase at frame a equal the carried phase; the pre-roll hop is dropped.
        f0 = p.f0_hz[:, a - lo:min(b + 1, hi) - lo].float()
        fa = f0[:, 0, 0].double().numpy()
        c = fa * (hop - 1) / 2 / sr
        m = np.maximum(0.0, np.ceil(c - phase0))
        g = 2.0 * sr * (phase0 + m - c) / (hop + 1)
        f0_in = torch.cat([torch.as_tensor(g, dtype=torch.float32)[:, None, None], f0], 1)
        amp = p.amplitude[:, a - lo:min(b + 1, hi) - lo]
        amp_in = torch.cat([torch.zeros_like(amp[:, :1]), amp], 1)
        hd = p.harmonic_distribution[:, a - lo:min(b + 1, hi) - lo]
        hd_in = torch.cat([hd[:, :1], hd], 1)
        n_h = f0_in.shape[1] * hop
        t0 = time.perf_counter()
        harmonic = self.synth.harmonic(amp_in, hd_in, f0_in, n_samples=n_h, sample_rate=sr)
        dry = harmonic[:, hop:hop + (b - a) * hop]
        t1 = time.perf_counter()

        # Noise part: the global excitation over [lo, hi) frames, margins dropped.
        exc = torch.stack([noise_excitation(self.seed, v, lo * hop, hi * hop) for v in voices])
        noise = self.synth.noise(p.noise_magnitudes, n_samples=(hi - lo) * hop, noise=exc)
        dry = dry + noise[:, (a - lo) * hop:(b - lo) * hop]
        t2 = time.perf_counter()
        self.timings["harmonic"] += t1 - t0
        self.timings["noise"] += t2 - t1

        s0 = a * hop
        if self.irs is None:
            self.out[voices, s0:s0 + dry.shape[1]] += dry.numpy()
            return
        irs = self.irs[torch.as_tensor(voices, dtype=torch.long)]
        m_taps = irs.shape[1]
        wet = self.synth.reverb(F.pad(dry, (0, m_taps)), ir=irs)  # dry + tail; tails overlap-add across windows
        end = min(self.out.shape[1], s0 + wet.shape[1])
        self.out[voices, s0:end] += wet[:, :end - s0].numpy()
        self.timings["reverb"] += time.perf_counter() - t2


# -------------------------------------------------------------------------------------- the generator run
class _GeneratorRun:
    """Windowed synthesis generator over a batch of voices sharing one frame grid (see module docstring).

    Yields, per window ``[a, b)``, the active voices and their SynthParams over ``[lo, hi)`` =
    ``[a - SYNTH_MARGIN, b + SYNTH_MARGIN)`` clipped to the piece. Windows are yielded one behind the f0
    sampling (a window's timbre needs the f0 hand-over to the next window).
    """

    def __init__(self, model: "MidiDDSP", performances: Sequence[Performance], n_frames: int,
                 temperature: float, top_p: float, seed: int, f0_hz=None, window_s: float | None = None,
                 warmup_s: float = 2.0) -> None:
        gen = model.generator
        self.model, self.gen = model, gen
        self.fr, self.sr = model.frame_rate, model.sample_rate
        self.F = int(n_frames)
        self.V = len(performances)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.rng = torch.Generator().manual_seed(derive_seed(seed, 0xF0))
        block = gen.f0.block
        self.rf_c, self.rf_t = receptive_field(gen.context), receptive_field(gen.timbre)
        self.M = SYNTH_MARGIN
        up = lambda x: int(math.ceil(x / block) * block)  # noqa: E731
        self.W = up(max(warmup_s * self.fr, self.M + self.rf_t))
        self.X = up(max(0.4 * self.fr, self.M + self.rf_t + 1))
        L = window_s if window_s is not None else model.window_s
        self.L = max(up(L * self.fr), up(2 * self.X))
        self.windows = [(a, min(a + self.L, self.F)) for a in range(0, self.F, self.L)] if self.F else []
        self.ids = [by_name(p.instrument).id for p in performances]

        # Whole-piece frame inputs (a few bytes per frame per voice) and per-voice activity intervals.
        self.inputs = []
        self.activity = []
        pre = self.rf_c + self.rf_t + self.M + block
        post = int(round(RELEASE_S * self.fr)) + self.rf_c + self.rf_t + self.M
        for p in performances:
            if len(p) == 0:  # a voice without notes: all rest (and never active below)
                self.inputs.append({"features": np.zeros((self.F, N_FRAME_FEATURES), np.float32),
                                    "held_pitch": np.full((self.F, 1), 60.0, np.float32),
                                    "in_note": np.zeros((self.F, 1), np.float32)})
            else:
                self.inputs.append(frame_inputs(notes_to_frames(p.sequence, self.F, self.fr), p.controls))
            s, e = note_frame_bounds(p.sequence, self.fr)
            self.activity.append((s - pre, e + post))
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
        self.nh, self.nb = gen.head.n_harmonics, gen.head.n_noise_bands
        self.timings = {"conditioning": 0.0, "f0": 0.0, "timbre": 0.0}
        # Convolutions run on blocks of this many frames (plus margins): activations of a block stay in cache.
        self.block_frames = max(256, int(BLOCK_ELEMENTS // max(1, gen.head.proj.in_features)))

    def _conditioning(self, inputs: GeneratorInputs) -> Tensor:
        """``gen.conditioning`` computed in cache-sized blocks with receptive-field margins (exact)."""
        n, S, m = inputs.n_frames, self.block_frames, self.rf_c
        if n <= S + 2 * m:
            return self.gen.conditioning(inputs)
        return torch.cat([self.gen.conditioning(_frames_of(inputs, lo, hi))[:, a - lo:b - lo]
                          for a, b, lo, hi in _blocks(n, S, m)], 1)

    def _timbre(self, cond: Tensor, inputs: GeneratorInputs, f0: Tensor) -> SynthParams:
        """``gen.timbre_params`` in cache-sized blocks with receptive-field margins (exact)."""
        n, S, m = inputs.n_frames, self.block_frames, self.rf_t
        sr, fr = float(self.sr), float(self.fr)
        if n <= S + 2 * m:
            return self.gen.timbre_params(cond, inputs, f0, sr, fr)
        return SynthParams.cat([
            self.gen.timbre_params(cond[:, lo:hi], _frames_of(inputs, lo, hi), f0[:, lo:hi], sr, fr).frames(a - lo, b - lo)
            for a, b, lo, hi in _blocks(n, S, m)])

    def active(self, lo: int, hi: int) -> list[int]:
        return [v for v in range(self.V) if np.any((self.activity[v][0] < hi) & (self.activity[v][1] > lo))]

    def _inputs(self, voices: Sequence[int], lo: int, hi: int) -> GeneratorInputs:
        items = [{k: x[lo:hi] for k, x in self.inputs[v].items()} for v in voices]
        return batch_inputs(items, [self.ids[v] for v in voices])

    def window_params(self, voices: Sequence[int], params: SynthParams, lo: int, a: int, b: int
                      ) -> list[SynthParams]:
        """Every voice's parameters for frames [a, b) of a window (``params`` of the active ``voices``, computed
        from frame ``lo``; silent voices get silent parameters), one ``[1, b - a, ...]`` each."""
        out: dict[int, SynthParams] = {}
        if voices:
            core = params.frames(a - lo, b - lo)
            out.update({v: core.map(lambda t, i=i: t[i:i + 1]) for i, v in enumerate(voices)})
        silent = [v for v in range(self.V) if v not in out]
        if silent:
            sp = self.silent_params(silent, a, b)
            out.update({v: sp.map(lambda t, i=i: t[i:i + 1]) for i, v in enumerate(silent)})
        return [out[v] for v in range(self.V)]

    def silent_params(self, voices: Sequence[int], lo: int, hi: int) -> SynthParams:
        n, B = hi - lo, len(voices)
        f0 = torch.from_numpy(self.f0[list(voices), lo:hi])[..., None]
        return SynthParams(f0, torch.zeros(B, n, 1), torch.full((B, n, self.nh), 1.0 / self.nh),
                           torch.zeros(B, n, self.nb), self.fr)

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[tuple[int, int, int, list[int], SynthParams | None]]:
        pending = None
        tails: dict[int, np.ndarray] = {}  # voice -> deviation (semitones) over the previous window's overlap
        for a, b in self.windows:
            fa, fb = max(0, a - self.W), min(self.F, b + self.X)
            voices = self.active(a - self.M, b + self.M)  # activity intervals include the networks' context
            state = None
            if voices:
                ca, cb = max(0, fa - self.rf_c), min(self.F, fb + self.rf_c)
                t0 = time.perf_counter()
                inputs = self._inputs(voices, ca, cb)
                cond = self._conditioning(inputs)
                t1 = time.perf_counter()
                if self.user_f0 is None:
                    self._sample_f0(voices, inputs, cond, ca, fa, fb, a, b, tails)
                self.timings["conditioning"] += t1 - t0
                self.timings["f0"] += time.perf_counter() - t1
                state = (voices, inputs, cond, ca)
            for v in set(tails) - set(voices):  # a voice that fell silent keeps its own continuation
                n = tails[v].shape[0]
                self.f0[v, a:a + n] = midi_to_hz(torch.from_numpy(self.held[v, a:a + n] + tails.pop(v))).numpy()
            if pending is not None:
                yield self._finish(*pending)
            pending = (a, b, state)
        if pending is not None:
            yield self._finish(*pending)

    def _sample_f0(self, voices, inputs, cond, ca, fa, fb, a, b, tails) -> None:
        f0m = self.gen.f0
        blocks = f0m.pool(cond[:, fa - ca:fb - ca])
        bins = f0m.sample(blocks, self.temperature, self.top_p, self.rng)
        dev = f0m.unpool(f0m.to_semitones(bins)[..., None], fb - fa)[..., 0].numpy()  # [B, fb - fa]
        in_note = inputs.in_note[:, a - ca:min(a + self.X, fb) - ca, 0].numpy()
        for i, v in enumerate(voices):
            d = dev[i, a - fa:]  # deviation over [a, fb)
            prev = tails.pop(v, None)
            if prev is not None:
                n = prev.shape[0]
                rest = np.flatnonzero(in_note[i, :n] < 0.5)
                if rest.size:  # hand over at the first rest frame
                    d[:rest[0]] = prev[:rest[0]]
                else:  # raised-cosine crossfade of the deviation
                    w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
                    d[:n] = (1 - w) * prev + w * d[:n]
            if fb > b:
                tails[v] = d[b - a:].copy()
            self.f0[v, a:fb] = midi_to_hz(torch.from_numpy(self.held[v, a:fb] + d)).numpy()

    def _finish(self, a: int, b: int, state):
        lo, hi = max(0, a - self.M), min(self.F, b + self.M)
        if state is None:
            return a, b, lo, [], None
        voices, inputs, cond, ca = state
        ta, tb = max(0, lo - self.rf_t), min(self.F, hi + self.rf_t)
        sl = slice(ta - ca, tb - ca)
        crop = GeneratorInputs(inputs.features[:, sl], inputs.held_pitch[:, sl], inputs.in_note[:, sl],
                               inputs.instrument)
        f0 = torch.from_numpy(self.f0[voices, ta:tb])[..., None]
        t0 = time.perf_counter()
        params = self._timbre(cond[:, sl], crop, f0)
        self.timings["timbre"] += time.perf_counter() - t0
        return a, b, lo, voices, params.frames(lo - ta, hi - ta)


class _SynthWorker:
    """Runs submitted jobs in order on one background thread, at most one job ahead of the caller (so memory
    stays bounded to two windows), with torch limited to one intra-op thread meanwhile; or, with
    ``parallel=False``, runs each job at once on the calling thread. Errors surface in the caller."""

    def __init__(self, parallel: bool | None) -> None:
        self.parallel = torch.get_num_threads() >= 2 if parallel is None else bool(parallel)
        self.pool: ThreadPoolExecutor | None = None
        self.pending: Future | None = None

    def __enter__(self) -> "_SynthWorker":
        if self.parallel:
            self.limit = _torch_threads(1)
            self.limit.__enter__()
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="midi-ddsp-synth")
        return self

    def submit(self, fn, *args) -> None:
        if self.pool is None:
            fn(*args)
            return
        self.wait()
        # inference mode is thread-local: enter it on the worker too
        self.pending = self.pool.submit(_in_inference_mode, fn, *args)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.limit.__exit__(None, None, None)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Limit torch's intra-op threads to ``n`` inside the block (never raises the count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _in_inference_mode(fn, *args):
    with torch.inference_mode():
        return fn(*args)


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------------------------------- the API
class MidiDDSP:
    """MIDI -> expressive instrument audio, level by level. Build with :meth:`from_pretrained`.

    Attributes:
        generator: the synthesis generator; synth: its Synthesizer (harmonic + noise + reverb bank).
        normalizer: statistics mapping raw note controls to the normalised values the models use.
        performance_model: the expression prior (None when the folder has no performance.safetensors).
        transfer_model, transfer_synth: the f0 + loudness decoder for timbre transfer (or None).
        analysis_model, analysis_synth: the audio -> parameters model used to re-extract performances (or None).
        sample_rate (Hz), frame_rate (Hz), hop (samples), path (the folder), load_time_s (seconds).
        window_s: seconds per processing window on long pieces.
    """

    def __init__(self, generator: SynthesisGenerator, synth: Synthesizer,
                 normalizer: ControlNormalizer | None = None, performance_model=None,
                 transfer_model=None, transfer_synth: Synthesizer | None = None, transfer_stats: dict | None = None,
                 analysis_model=None, analysis_synth: Synthesizer | None = None, sample_rate: int = 16000,
                 frame_rate: float = 250.0, path: Path | None = None, window_s: float = 30.0) -> None:
        self.generator = generator.eval()
        self.synth = synth.eval()
        self.normalizer = normalizer or ControlNormalizer.identity()
        self.performance_model = performance_model
        self.transfer_model = transfer_model.eval() if transfer_model is not None else None
        self.transfer_synth = transfer_synth.eval() if transfer_synth is not None else None
        self.transfer_stats = transfer_stats or {}
        self.analysis_model = analysis_model.eval() if analysis_model is not None else None
        self.analysis_synth = analysis_synth.eval() if analysis_synth is not None else None
        self.sample_rate = int(sample_rate)
        self.frame_rate = float(frame_rate)
        hop = self.sample_rate / self.frame_rate
        if hop != int(hop):
            raise CheckpointError(f"sample rate {sample_rate} is not a whole number of frames at {frame_rate} Hz")
        self.hop = int(hop)
        self.path = path
        self.window_s = float(window_s)
        self.load_time_s = 0.0
        self._derived_stats: dict[str, dict] = {}

    # ------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, window_s: float = 30.0) -> "MidiDDSP":
        """Load a model folder (default: the shipped ``checkpoints/``).

        The folder holds ``generator.safetensors`` (required) and optionally ``performance.safetensors``
        (the expression prior, needed to render MIDI without a given performance), ``transfer.safetensors``
        (timbre transfer) and ``analysis.safetensors`` (re-extracting performances from audio).

        Raises:
            CheckpointError: the folder or the generator is missing, or a file is corrupt, of the wrong kind
                or does not match the code. The load time is in ``load_time_s``.
        """
        t0 = time.perf_counter()
        folder = Path(path) if path is not None else DEFAULT_CHECKPOINTS
        if not folder.is_dir():
            hint = " (the shipped weights are not installed; pass a model folder)" if path is None else ""
            raise CheckpointError(f"{folder}: model folder not found{hint}")
        gen_path = folder / GENERATOR_FILE
        if not gen_path.is_file():
            raise CheckpointError(f"{folder}: no {GENERATOR_FILE} in the model folder")
        generator, synth, config, _, others = load_generator(gen_path)
        normalizer = None
        if ControlNormalizer.PREFIX + "low" in others:
            try:
                normalizer = ControlNormalizer.from_dict(others)
            except (KeyError, ValueError) as e:
                raise CheckpointError(f"{gen_path}: bad control normalizer ({e})") from None
        sample_rate = int(config.get("sample_rate", 16000))
        frame_rate = float(config.get("frame_rate", 250.0))

        performance_model = None
        if (folder / PERFORMANCE_FILE).is_file():
            from .performance.sampling import load_model

            try:
                performance_model = load_model(folder / PERFORMANCE_FILE)
            except CheckpointError:
                raise
            except (TypeError, ValueError, RuntimeError, KeyError) as e:
                raise CheckpointError(
                    f"{folder / PERFORMANCE_FILE}: cannot build the performance model ({e})") from None

        transfer_model = transfer_synth = None
        stats: dict = {}
        if (folder / TRANSFER_FILE).is_file():
            transfer_model, transfer_synth, extra = _load_analysis(folder / TRANSFER_FILE, want_mels=False)
            stats = {"loudness_stats": dict(extra.get("loudness_stats", {})),
                     "pitch_stats": dict(extra.get("pitch_stats", {}))}
        analysis_model = analysis_synth = None
        if (folder / ANALYSIS_FILE).is_file():
            analysis_model, analysis_synth, _ = _load_analysis(folder / ANALYSIS_FILE, want_mels=True)
        m = cls(generator, synth, normalizer, performance_model, transfer_model, transfer_synth, stats,
                analysis_model, analysis_synth, sample_rate, frame_rate, folder, window_s)
        m.load_time_s = time.perf_counter() - t0
        return m

    def instruments(self) -> list[Instrument]:
        """The instruments the loaded models know (id order), with their usual ranges."""
        n = self.generator.instrument.num_embeddings
        return list(INSTRUMENTS[:n])

    def _instrument(self, name: str) -> Instrument:
        inst = by_name(name)
        if inst.id >= self.generator.instrument.num_embeddings:
            raise MidiDDSPError(f"the loaded model does not know the instrument {inst.name!r}")
        return inst

    # ------------------------------------------------------------------------------------ level 0: notes
    def read(self, midi_path, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
             program_map: dict[int, str] | None = None) -> ReadResult:
        """MIDI file -> monophonic voices (polyphonic tracks are split; GM program -> instrument, or
        ``instrument`` for all). Problems are returned as lines and emitted as :class:`MidiDDSPWarning`.

        Raises:
            MidiReadError: missing, not MIDI, corrupt/truncated, empty or drum-only file.
            UnknownInstrumentError: unknown ``instrument``.
        """
        if instrument is not None:
            self._instrument(instrument)
        _check_speed(speed)
        result = load_midi(midi_path, instrument, program_map, int(pitch_offset), float(speed))
        messages = list(result.warnings) + _short_note_warnings(result.sequences, self.frame_rate)
        _emit(messages)
        return ReadResult(list(result.sequences), messages)

    # ------------------------------------------------------------------------------ level 1: performance
    def perform(self, voices: Sequence[NoteSequence] | NoteSequence, temperature: float = 1.0,
                seed: int | None = 0) -> list[Performance]:
        """Notes -> Performances (six expression controls per note) from the expression prior.

        ``temperature`` 0 gives the most likely performance; voice ``i`` uses seed ``seed + i``.
        """
        if isinstance(voices, NoteSequence):
            voices = [voices]
        if temperature < 0:
            raise MidiDDSPError(f"temperature must be >= 0, got {temperature}")
        if self.performance_model is None:
            raise CheckpointError(f"{self.path}: no {PERFORMANCE_FILE} (the expression model) in the model folder; "
                                  f"give a performance file instead")
        for v in voices:
            self._instrument(v.instrument)
        from .performance.sampling import predict_performances

        with torch.inference_mode(), _torch_threads(1):  # note-by-note sampling: small ops, one thread is fastest
            return predict_performances(self.performance_model, list(voices), float(temperature), seed)

    # -------------------------------------------------------------------------- level 2: synthesis params
    def tail_s(self, instruments: Sequence[str] = (), impulse_response=None) -> float:
        """Seconds rendered after the last note: the release plus the reverb's 60 dB decay time."""
        if impulse_response is not None:
            ir = np.asarray(impulse_response, dtype=np.float32)
            decay = max(ir_decay_s(r, self.sample_rate) for r in ir.reshape(-1, ir.shape[-1]))
        else:
            ids = sorted({self._instrument(i).id for i in instruments})
            decay = max([ir_decay_s(self.synth.reverb.irs[i], self.sample_rate) for i in ids], default=0.0)
        return RELEASE_S + decay

    def n_frames_for(self, performances: Sequence[Performance], impulse_response=None) -> int:
        """Frames of a render of ``performances``: last offset + :meth:`tail_s`."""
        end = max((p.sequence.end_s for p in performances), default=0.0)
        tail = self.tail_s([p.instrument for p in performances], impulse_response)
        return int(math.ceil((end + tail) * self.frame_rate))

    def synth_params(self, performances: Sequence[Performance] | Performance, temperature: float = 1.0,
                     seed: int = 0, f0_hz=None, top_p: float = 0.95, n_frames: int | None = None,
                     progress: bool | None = None) -> list[SynthParams]:
        """Performances -> synthesis parameters, one ``SynthParams [1, n_frames, ...]`` per voice.

        Args:
            temperature, top_p: f0 sampling (0 = most likely pitch curve).
            seed: reproducible f0 sampling.
            f0_hz: optional per-voice f0 curves (``[n_frames]`` each, Hz) to use instead of sampling: the model
                then predicts only the timbre for *your* pitch curve.
            n_frames: length of the render (default :meth:`n_frames_for`, shared by all voices).
        """
        perfs = _as_performances(performances)
        if n_frames is None:
            n_frames = self.n_frames_for(perfs)
        run = self._run(perfs, n_frames, temperature, top_p, seed, f0_hz)
        pieces: list[list[Tensor]] = [[] for _ in perfs]
        with torch.inference_mode(), _tqdm(len(run), _show(progress, n_frames / self.frame_rate), "generate") as bar:
            for a, b, lo, voices, params in run:
                for v, chunk in enumerate(run.window_params(voices, params, lo, a, b)):
                    pieces[v].append(chunk)
                bar.update()
        return [SynthParams.cat(p) if p else _empty_params(self, 0) for p in pieces]

    def _run(self, perfs, n_frames, temperature, top_p, seed, f0_hz) -> _GeneratorRun:
        if temperature < 0:
            raise MidiDDSPError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise MidiDDSPError(f"top_p must be in (0, 1], got {top_p}")
        for p in perfs:
            if not isinstance(p, Performance):
                raise TypeError(f"expected Performance objects, got {type(p).__name__}")
            self._instrument(p.instrument)
        return _GeneratorRun(self, perfs, n_frames, temperature, top_p, int(seed), f0_hz)

    # ------------------------------------------------------------------------------------ level 3: audio
    def audio(self, params: Sequence[SynthParams] | SynthParams, instruments: Sequence[str] | str,
              reverb: bool = True, impulse_response=None, seed: int = 0, progress: bool | None = None,
              synth: Synthesizer | None = None) -> np.ndarray:
        """Synthesis parameters -> audio, ``float32 [voices, n_frames * hop]`` at :attr:`sample_rate`.

        Args:
            params: one SynthParams per voice (batch 1 each; equal frame counts), e.g. from
                :meth:`synth_params`, edited, or your own (any f0 curve).
            instruments: each voice's instrument (selects its reverb).
            reverb: False gives the dry synthesizer output.
            impulse_response: your own reverb IR, ``[taps]`` for all voices or ``[voices, taps]``
                (at :attr:`sample_rate`); replaces the learned room.
            seed: the noise source's seed.
        """
        plist = [params] if isinstance(params, SynthParams) else list(params)
        names = [instruments] * len(plist) if isinstance(instruments, str) else list(instruments)
        if len(names) != len(plist):
            raise ValueError(f"{len(plist)} voices but {len(names)} instruments")
        expanded = []
        for p in plist:
            if p.frame_rate != self.frame_rate:
                raise ValueError(f"params are at {p.frame_rate} frames/s, the synthesizer at {self.frame_rate}")
            expanded.extend(p.map(lambda t, i=i: t[i:i + 1]) for i in range(p.batch_size))
        if len({p.n_frames for p in expanded}) > 1:
            raise ValueError("all voices must have the same number of frames (pad them)")
        if len(names) != len(expanded):
            names = [n for p, n in zip(plist, names) for _ in range(p.batch_size)]
        if not expanded:
            return np.zeros((0, 0), dtype=np.float32)
        whole = SynthParams.cat(expanded, dim=0).map(lambda t: t.float())
        n = whole.n_frames
        stream = _SynthStream(synth or self.synth, [self._instrument(i).id for i in names], n, self.hop,
                              self.sample_rate, seed, reverb, impulse_response)
        L = max(int(self.window_s * self.frame_rate), 4 * SYNTH_MARGIN)
        windows = [(a, min(a + L, n)) for a in range(0, n, L)]
        with torch.inference_mode(), _tqdm(len(windows), _show(progress, n / self.frame_rate), "synthesize") as bar:
            for a, b in windows:
                lo, hi = max(0, a - SYNTH_MARGIN), min(n, b + SYNTH_MARGIN)
                stream.render(range(len(expanded)), whole.frames(lo, hi), lo, a, b)
                bar.update()
        return stream.out

    # ------------------------------------------------------------------------------------------ one call
    def render(self, source, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
               temperature: float = 1.0, seed: int = 0, reverb: bool = True, impulse_response=None,
               top_p: float = 0.95, keep_params: bool = True, progress: bool | None = None,
               parallel: bool | None = None) -> RenderResult:
        """MIDI file, performance file (.csv/.json), Performances or NoteSequences -> audio.

        Args:
            source: a ``.mid`` path, a ``.csv``/``.json`` performance path, Performance(s) (rendered as given:
                no expression model), or NoteSequence(s) (the expression model performs them).
            instrument: render every voice with this instrument.
            pitch_offset: semitones; speed: tempo factor (2 = twice as fast). Applied to every source.
            temperature: of the expression prior and the f0 sampler; seed: same seed, same audio.
            reverb: False = dry; impulse_response: your own IR (see :meth:`audio`).
            keep_params: keep every voice's SynthParams in the result (False saves memory on long pieces).
            progress: show a progress bar (None: only for pieces longer than a minute).
            parallel: synthesize each window on a second thread while the generator computes the next one
                (None: when torch may use two or more threads). Both sides then run single-threaded torch
                ops, which on a 2-core CPU is faster than splitting each op over two threads. The audio is
                the same either way.
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        messages: list[str] = []
        performances: list[Performance] | None = None
        if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".csv", ".json"):
            performances = load_performances(source)
            source = performances
        if isinstance(source, (str, Path)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MidiDDSPWarning)
                read = self.read(source, instrument, pitch_offset, speed)
            messages += read.warnings
            voices = read.voices
        else:
            items = [source] if isinstance(source, (Performance, NoteSequence)) else list(source)
            if not items:
                raise MidiDDSPError("nothing to render (no voices)")
            _check_speed(speed)
            if all(isinstance(x, Performance) for x in items):
                performances = [_adjust_performance(p, instrument, pitch_offset, speed) for p in items]
                voices = [p.sequence for p in performances]
            elif all(isinstance(x, NoteSequence) for x in items):
                voices = [_adjust_sequence(s, instrument, pitch_offset, speed) for s in items]
            else:
                raise TypeError("render takes a path, Performances or NoteSequences")
            for v in voices:
                self._instrument(v.instrument)
            messages += _range_warnings(voices) + _short_note_warnings(voices, self.frame_rate)
        timings["read"] = time.perf_counter() - t0
        if performances is None:
            t = time.perf_counter()
            performances = self.perform(voices, temperature, seed)
            timings["perform"] = time.perf_counter() - t
        _emit(messages)

        t = time.perf_counter()
        n_frames = self.n_frames_for(performances, impulse_response)
        run = self._run(performances, n_frames, temperature, top_p, seed, None)
        stream = _SynthStream(self.synth, run.ids, n_frames, self.hop, self.sample_rate, seed, reverb,
                              impulse_response)
        pieces: list[list[SynthParams]] = [[] for _ in performances]

        def synthesize(a, b, lo, voices, params, silent, silent_f0):
            if silent:
                stream.advance_phase(silent, silent_f0, a, b)
            if voices:
                stream.render(voices, params, lo, a, b)

        with torch.inference_mode(), _SynthWorker(parallel) as worker, \
                _tqdm(len(run), _show(progress, n_frames / self.frame_rate), "render") as bar:
            for a, b, lo, voices, params in run:
                silent = [v for v in range(run.V) if v not in voices]
                # the generator writes run.f0 ahead of this window: hand the worker its own copy
                silent_f0 = run.f0[silent, a:min(b + 1, n_frames)].copy() if silent else None
                worker.submit(synthesize, a, b, lo, voices, params, silent, silent_f0)
                if keep_params:
                    for v, chunk in enumerate(run.window_params(voices, params, lo, a, b)):
                        pieces[v].append(chunk)
                bar.update()
        timings["generate_and_synthesize"] = time.perf_counter() - t
        timings.update({f"generator.{k}": v for k, v in run.timings.items()})
        timings.update({f"synth.{k}": v for k, v in stream.timings.items()})
        stems = stream.out
        mix, stems, gain = mix_stems(stems)
        params_out = [SynthParams.cat(p) for p in pieces] if keep_params else None
        timings["total"] = time.perf_counter() - t0
        return RenderResult(mix, stems, performances, params_out, self.sample_rate, gain, messages, timings)

    # ------------------------------------------------------------------------------------ timbre transfer
    def transfer(self, audio: np.ndarray, sample_rate: int, instrument: str, octave_shift: int = 0,
                 auto_octave: bool = False, loudness_shift_db: float = 0.0, dry: bool = False,
                 adjust: bool = True, quiet_db: float = 20.0, seed: int = 0,
                 progress: bool | None = None) -> TransferResult:
        """Timbre transfer of a monophonic recording: its f0 and loudness drive ``instrument``.

        As DDSP's demo: f0 + periodicity confidence (:func:`estimate_f0`) and A-weighted loudness are
        measured at 250 Hz; note frames are detected (box-smoothed confidence² x (loudness + 80 dB) above its
        mean); ``adjust`` maps the note frames' loudness mean/std onto the instrument's statistics; frames
        outside notes are made ``quiet_db`` quieter; f0 is shifted by ``octave_shift`` octaves, plus whole
        octaves towards the instrument's mean pitch with ``auto_octave`` (f0 capped at MIDI 110);
        ``loudness_shift_db`` is added last.

        Args:
            audio: mono ``[samples]`` (any rate; resampled to :attr:`sample_rate`).
        Returns:
            TransferResult with the audio at :attr:`sample_rate`, as long as the (resampled) input.
        """
        if self.transfer_model is None:
            raise CheckpointError(f"{self.path}: no {TRANSFER_FILE} (the timbre-transfer model) in the model folder")
        inst = self._instrument(instrument)
        from .io.audio import resample
        from .synthesis.ddsp.features import a_weighted_loudness

        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size == 0:
            raise MidiDDSPError("the recording is empty")
        if not np.all(np.isfinite(x)):
            raise MidiDDSPError("the recording holds non-finite samples")
        if int(sample_rate) != self.sample_rate:
            x = resample(x, int(sample_rate), self.sample_rate).astype(np.float32)
        n_in = x.shape[0]
        hop = self.hop
        n_frames = -(-n_in // hop)
        x = np.pad(x, (0, n_frames * hop - n_in))
        f0, conf = _windowed_f0(x, self.sample_rate, self.frame_rate, n_frames)
        with torch.inference_mode():
            loud = _windowed_loudness(x, self.sample_rate, self.frame_rate, n_frames, a_weighted_loudness)

        # Note detection (DDSP's detect_notes idea): smoothed confidence² weighted by level, above its mean.
        from scipy.ndimage import uniform_filter1d

        score = uniform_filter1d(conf.astype(np.float64) ** 2, 40, mode="nearest") * (loud + 80.0)
        note_on = score > max(np.mean(loud + 80.0), 1e-6)
        stats = self.instrument_stats(inst.name)
        shift = int(octave_shift)
        if auto_octave and note_on.any():
            mean_midi = float(np.mean(hz_to_midi(torch.from_numpy(f0[note_on].astype(np.float32))).numpy()))
            target = float(stats["mean_midi"])
            best = min(range(-4, 5), key=lambda k: abs(mean_midi + 12 * (shift + k) - target))
            shift += best
        f0 = f0 * 2.0 ** shift
        f0 = np.minimum(f0, 440.0 * 2 ** ((110 - 69) / 12)).astype(np.float32)
        loud = loud.astype(np.float64)
        if adjust and note_on.sum() > 1:
            mu, sd = loud[note_on].mean(), loud[note_on].std()
            ratio = float(np.clip(stats["std_db"] / max(sd, 1e-3), 0.5, 2.0))
            loud = (loud - mu) * ratio + stats["mean_db"]
        on_smooth = uniform_filter1d(note_on.astype(np.float64), 10, mode="nearest")
        loud = loud - float(quiet_db) * (1.0 - on_smooth) + float(loudness_shift_db)
        loud = np.maximum(loud, -80.0).astype(np.float32)

        model = self.transfer_model
        ids = torch.tensor([inst.id])
        rf = receptive_field(model)
        L = max(int(self.window_s * self.frame_rate), 4 * SYNTH_MARGIN)
        windows = [(a, min(a + L, n_frames)) for a in range(0, n_frames, L)]
        stream = _SynthStream(self.transfer_synth, [inst.id], n_frames, hop, self.sample_rate, seed, not dry)
        f0_t = torch.from_numpy(f0)[None, :, None]
        loud_t = torch.from_numpy(loud)[None, :, None]
        pieces = []
        with torch.inference_mode(), _tqdm(len(windows), _show(progress, n_in / self.sample_rate), "transfer") as bar:
            for a, b in windows:
                lo, hi = max(0, a - SYNTH_MARGIN), min(n_frames, b + SYNTH_MARGIN)
                ta, tb = max(0, lo - rf), min(n_frames, hi + rf)
                p = model(f0_t[:, ta:tb], loud_t[:, ta:tb], ids, None, float(self.sample_rate), self.frame_rate)
                p = p.frames(lo - ta, hi - ta)
                stream.render([0], p, lo, a, b)
                pieces.append(p.frames(a - lo, b - lo))
                bar.update()
        out = stream.out[0, :n_in]
        return TransferResult(out, self.sample_rate, SynthParams.cat(pieces), f0, conf, loud, note_on, shift)

    def instrument_stats(self, instrument: str) -> dict[str, float]:
        """Typical loudness (``mean_db``, ``std_db``, A-weighted dB on note frames) and pitch (``mean_midi``)
        of an instrument, for timbre transfer.

        From the transfer checkpoint's statistics where present; otherwise measured once on a short scale
        rendered by the synthesis generator (mid controls, temperature 0) in the middle of the instrument's
        range; otherwise fixed defaults.
        """
        inst = self._instrument(instrument)
        loud = self.transfer_stats.get("loudness_stats", {}).get(inst.name)
        pitch = self.transfer_stats.get("pitch_stats", {}).get(inst.name)
        out = {"mean_midi": (inst.low + inst.high) / 2.0, "mean_db": DEFAULT_LOUDNESS_MEAN_DB,
               "std_db": DEFAULT_LOUDNESS_STD_DB}
        if loud is None:
            out.update(self._measured_stats(inst))
        else:
            out.update({"mean_db": float(loud["mean_db"]),
                        "std_db": float(loud.get("std_db", DEFAULT_LOUDNESS_STD_DB))})
        if pitch is not None:
            out["mean_midi"] = float(pitch["mean_midi"])
        return out

    def _measured_stats(self, inst: Instrument) -> dict[str, float]:
        if inst.name in self._derived_stats:
            return self._derived_stats[inst.name]
        from .note_level.notes import Note
        from .synthesis.ddsp.features import a_weighted_loudness

        centre = (inst.low + inst.high) // 2
        notes = [Note(centre + d, 0.5 * i, 0.5 * i + 0.45, 90) for i, d in enumerate((-5, -3, -1, 0, 2, 4, 5, 7))]
        perf = Performance(NoteSequence(tuple(notes), inst.name), np.full((len(notes), N_CONTROLS), 0.5))
        n = int(math.ceil((notes[-1].offset_s + 0.5) * self.frame_rate))
        params = self.synth_params([perf], temperature=0.0, seed=0, n_frames=n, progress=False)
        audio = self.audio(params, [inst.name], reverb=False, seed=0, progress=False)
        with torch.inference_mode():
            loud = a_weighted_loudness(torch.from_numpy(audio), self.sample_rate, self.frame_rate)[0, :, 0].numpy()
        on = notes_to_frames(perf.sequence, n, self.frame_rate).note_index >= 0
        vals = loud[:len(on)][on[:len(loud)]]
        stats = {"mean_db": float(np.mean(vals)), "std_db": float(max(np.std(vals), 1.0))} if vals.size else {}
        self._derived_stats[inst.name] = stats
        return stats

    # --------------------------------------------------------------------------------------- analysis
    def analyze(self, audio: np.ndarray, sample_rate: int, instrument: str, f0_hz: np.ndarray | None = None
                ) -> SynthParams:
        """Audio -> synthesis parameters with the analysis model (``analysis.safetensors``).

        ``f0_hz`` ``[frames]`` may be given (e.g. the f0 the audio was rendered with); otherwise it is estimated.
        """
        if self.analysis_model is None:
            raise CheckpointError(f"{self.path}: no {ANALYSIS_FILE} (the analysis model) in the model folder")
        from .io.audio import resample
        from .synthesis.ddsp.features import a_weighted_loudness, log_mel

        inst = self._instrument(instrument)
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if int(sample_rate) != self.sample_rate:
            x = resample(x, int(sample_rate), self.sample_rate).astype(np.float32)
        n_frames = -(-x.shape[0] // self.hop)
        x = np.pad(x, (0, n_frames * self.hop - x.shape[0]))
        if f0_hz is None:
            f0_hz, _ = _windowed_f0(x, self.sample_rate, self.frame_rate, n_frames)
        f0 = np.asarray(f0_hz, dtype=np.float32).reshape(-1)[:n_frames]
        f0 = np.pad(f0, (0, n_frames - f0.shape[0]), mode="edge")
        model = self.analysis_model
        rf = receptive_field(model)
        L = max(int(self.window_s * self.frame_rate), 4 * rf)
        pieces = []
        with torch.inference_mode():
            xt = torch.from_numpy(x)
            for a in range(0, n_frames, L):
                b = min(a + L, n_frames)
                ta, tb = max(0, a - rf), min(n_frames, b + rf)
                seg = xt[ta * self.hop:tb * self.hop][None]
                loud = a_weighted_loudness(seg, self.sample_rate, self.frame_rate)
                mel = log_mel(seg, self.sample_rate, self.frame_rate, n_mels=model.n_mels)
                f0_t = torch.from_numpy(f0[ta:tb])[None, :, None]
                p = model(f0_t, loud, torch.tensor([inst.id]), mel, float(self.sample_rate), self.frame_rate)
                pieces.append(p.frames(a - ta, b - ta))
        return SynthParams.cat(pieces)

    def extract_performance(self, audio: np.ndarray, sample_rate: int, sequence: NoteSequence,
                            f0_hz: np.ndarray | None = None, params: SynthParams | None = None,
                            measured: bool = False) -> Performance:
        """Re-extract a Performance (normalised controls) of ``sequence`` from audio via the analysis model
        (or from given ``params``).

        ``measured``: take the harmonic distribution (hence brightness) and the noise magnitudes (hence
        attack) from a direct spectral analysis of the audio at the analysed f0
        (:func:`~midi_ddsp.synthesis.ddsp.features.measured_harmonic_distribution`,
        :func:`~midi_ddsp.synthesis.ddsp.features.measured_noise_magnitudes`) instead of from the analysis
        model, which leans on what is typical of the instrument.
        """
        if params is None:
            params = self.analyze(audio, sample_rate, sequence.instrument, f0_hz)
        harmonics, noise = params.harmonic_distribution[0], params.noise_magnitudes[0]
        if measured:
            from .io.audio import resample
            from .synthesis.ddsp.features import measured_harmonic_distribution, measured_noise_magnitudes

            x = np.asarray(audio, dtype=np.float32).reshape(-1)
            if int(sample_rate) != self.sample_rate:
                x = resample(x, int(sample_rate), self.sample_rate).astype(np.float32)
            f0 = params.f0_hz[0, :, 0].numpy()
            # a window long enough to see between the harmonics of the lowest notes (see the docstring there)
            voiced = f0[f0 > 0]
            n_fft = 2048 if voiced.size and np.median(voiced) < 9 * self.sample_rate / 1024 else 1024
            measured_noise = measured_noise_magnitudes(x, f0, self.sample_rate, self.frame_rate, noise.shape[-1],
                                                       n_fft=n_fft)
            harmonics = torch.from_numpy(measured_harmonic_distribution(
                x, f0, self.sample_rate, self.frame_rate, harmonics.shape[-1], noise_magnitudes=measured_noise))
            noise = torch.from_numpy(measured_noise)
        frames = notes_to_frames(sequence, params.n_frames, self.frame_rate)
        raw = extract_controls(params.f0_hz[0], params.amplitude[0], harmonics, noise, frames)
        controls = self.normalizer.normalize(np.nan_to_num(raw, nan=0.0), sequence.instrument, clip=False)
        return Performance(sequence, controls)

    def __repr__(self) -> str:
        parts = ["generator"] + [n for n, m in (("performance", self.performance_model),
                                                 ("transfer", self.transfer_model),
                                                 ("analysis", self.analysis_model)) if m is not None]
        return f"MidiDDSP({self.path}, models: {', '.join(parts)})"


# ------------------------------------------------------------------------------------------ free functions
def mix_stems(stems: np.ndarray, peak: float = MIX_PEAK) -> tuple[np.ndarray, np.ndarray, float]:
    """Sum ``stems [voices, samples]``; if the mix peak exceeds ``peak``, scale mix and stems by the same gain.

    Returns:
        (mix [samples], stems, gain).
    """
    stems = np.asarray(stems, dtype=np.float32)
    mix = stems.sum(0) if stems.shape[0] else np.zeros(stems.shape[1], np.float32)
    top = float(np.max(np.abs(mix))) if mix.size else 0.0
    gain = 1.0
    if top > peak:
        gain = peak / top
        mix *= np.float32(gain)
        stems *= np.float32(gain)  # in place: stems can be large
    return mix.astype(np.float32, copy=False), stems, gain


def _show(progress: bool | None, duration_s: float) -> bool:
    return bool(progress) if progress is not None else duration_s > 60.0


def _check_speed(speed: float) -> None:
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise MidiDDSPError(f"speed must be a positive number, got {speed}")


def _adjust_sequence(seq: NoteSequence, instrument, pitch_offset, speed) -> NoteSequence:
    if instrument is not None:
        seq = NoteSequence(seq.notes, by_name(instrument).name, seq.name)
    if pitch_offset:
        seq = seq.transposed(int(pitch_offset))
    if speed != 1.0:
        seq = seq.time_scaled(float(speed))
    return seq


def _adjust_performance(perf: Performance, instrument, pitch_offset, speed) -> Performance:
    if instrument is None and not pitch_offset and speed == 1.0:
        return perf
    return Performance(_adjust_sequence(perf.sequence, instrument, pitch_offset, speed), perf.controls)


def _empty_params(model: MidiDDSP, n: int) -> SynthParams:
    g = model.generator.head
    return SynthParams(torch.zeros(1, n, 1), torch.zeros(1, n, 1), torch.zeros(1, n, g.n_harmonics),
                       torch.zeros(1, n, g.n_noise_bands), model.frame_rate)


def _load_analysis(path: Path, want_mels: bool):
    model, synth, _, extra, _ = load_analysis(path)
    if want_mels and model.n_mels <= 0:
        raise CheckpointError(f"{path}: an f0 + loudness model (n_mels=0); the analysis model needs log-mel input")
    if not want_mels and model.n_mels != 0:
        raise CheckpointError(f"{path}: timbre transfer needs the f0 + loudness model (n_mels=0), "
                              f"got n_mels={model.n_mels}")
    return model, synth, extra


def _windowed_f0(x: np.ndarray, sample_rate: int, frame_rate: float, n_frames: int,
                 window_s: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """estimate_f0 on windows with margins (bounded memory on long recordings); ``[n_frames]`` each."""
    from .synthesis.ddsp.features import estimate_f0

    hop = int(sample_rate / frame_rate)
    L = int(window_s * frame_rate)
    margin = 64  # frames: more than half the YIN frame (two periods of 30 Hz = 17 frames)
    f0 = np.zeros(n_frames, np.float32)
    conf = np.zeros(n_frames, np.float32)
    for a in range(0, n_frames, L):
        b = min(a + L, n_frames)
        ta, tb = max(0, a - margin), min(n_frames, b + margin)
        f, c = estimate_f0(x[ta * hop:tb * hop], sample_rate, frame_rate)
        f0[a:b], conf[a:b] = f[a - ta:b - ta], c[a - ta:b - ta]
    return f0, conf


def _windowed_loudness(x: np.ndarray, sample_rate: int, frame_rate: float, n_frames: int, fn,
                       window_s: float = 30.0) -> np.ndarray:
    hop = int(sample_rate / frame_rate)
    L = int(window_s * frame_rate)
    margin = 8  # frames: more than half the 512-sample FFT
    out = np.zeros(n_frames, np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    for a in range(0, n_frames, L):
        b = min(a + L, n_frames)
        ta, tb = max(0, a - margin), min(n_frames, b + margin)
        out[a:b] = fn(xt[ta * hop:tb * hop][None], sample_rate, frame_rate)[0, a - ta:b - ta, 0].numpy()
    return out


# ------------------------------------------------------------------------------ random-weight model folders
def write_random_checkpoints(folder: str | Path, width: int = 32, f0_hidden: int = 32, reverb_length: int = 16000,
                             seed: int = 0, performance: bool = True, transfer: bool = True,
                             analysis: bool = True, small_performance: bool = True) -> Path:
    """Write a model folder with randomly initialised (untrained) models in the shipped layout.

    For tests and benchmarks before trained weights exist: everything loads and runs, nothing sounds like
    an instrument, and the models do not obey the controls. ``small_performance=False`` gives the expression
    model its default sizes (for timing).
    """
    from .synthesis.analysis import AnalysisModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = dict(width=width, n_instruments=len(INSTRUMENTS), instrument_dim=16, n_harmonics=60, n_noise_bands=65,
               f0_hidden=f0_hidden, f0_bins=401, f0_max_semitones=4.0, f0_block=5, reverb_length=reverb_length,
               sample_rate=16000, frame_rate=250)
    gen = construct(SynthesisGenerator, cfg)
    synth = Synthesizer(60, 65, len(INSTRUMENTS), reverb_length)
    tensors = {f"model.{k}": v for k, v in gen.state_dict().items()}
    tensors |= {f"synth.{k}": v for k, v in synth.state_dict().items()}
    tensors |= ControlNormalizer.identity().to_dict()
    save_weights(folder / GENERATOR_FILE, tensors, "generator", cfg, extra={"random_init": True})
    if performance:
        from .performance.model import PerformanceModel
        from .performance.sampling import save_model

        sizes = dict(n_bins=16, pitch_dim=8, instrument_dim=8, feature_dim=16, encoder_hidden=16, decoder_hidden=16,
                     head_hidden=16) if small_performance else {}  # else the model's default sizes
        save_model(PerformanceModel(**sizes), folder / PERFORMANCE_FILE, extra={"random_init": True})
    for name, n_mels, wanted in ((TRANSFER_FILE, 0, transfer), (ANALYSIS_FILE, 64, analysis)):
        if not wanted:
            continue
        acfg = dict(n_mels=n_mels, width=width, n_instruments=len(INSTRUMENTS), instrument_dim=16, n_harmonics=60,
                    n_noise_bands=65, reverb_length=reverb_length, sample_rate=16000, frame_rate=250)
        model = AnalysisModel(n_mels, width, len(INSTRUMENTS), 16, 60, 65)
        synth = Synthesizer(60, 65, len(INSTRUMENTS), reverb_length)
        t = {f"model.{k}": v for k, v in model.state_dict().items()}
        t |= {f"synth.{k}": v for k, v in synth.state_dict().items()}
        save_weights(folder / name, t, "analysis", acfg, extra={"random_init": True})
    return folder


__all__ = ["MidiDDSP", "ReadResult", "RenderResult", "TransferResult", "mix_stems", "noise_excitation",
           "derive_seed", "receptive_field", "ir_decay_s", "write_random_checkpoints", "DEFAULT_CHECKPOINTS"]
