"""The product: MIDI (or an edited performance) -> audio; :class:`MidiDDSP` stacks the levels.

Every level is a method that takes the level above and returns the level below, so a user can enter
anywhere::

    m = MidiDDSP.from_pretrained()                       # checkpoints/ (or a folder path)
    voices = m.read("song.mid").voices                   # MIDI -> monophonic NoteSequences (+ warnings)
    perfs = m.perform(voices, temperature=1.0, seed=0)   # notes -> Performance (6 controls per note)
    perfs[0] = perfs[0].set_control("vibrato", 0.9, notes=3)
    params = m.synth_params(perfs, seed=0)               # Performance -> SynthParams (f0, amps, noise)
    stems = m.audio(params, [p.instrument for p in perfs], seed=0)   # SynthParams -> audio
    result = m.render("song.mid", seed=0)                # all of the above; result.mix, result.stems
    for block in m.stream("song.mid", block_size=4096):  # the same audio, block by block
        ...

The work is done elsewhere, one job per module: reading sources (:mod:`.sources`), the windowed generator
run (:mod:`.generation`), the streaming synthesizer per voice (:mod:`.rendering`), timbre transfer
(:mod:`.transfer`), audio -> parameters -> performance (:mod:`.extraction`), model folders
(:mod:`.model_folder`). Long pieces are processed in windows of ``window_s`` seconds (15 s; the first one
shorter), so working memory does not grow with the piece (only :meth:`render`'s output rows do, one float32
row per voice; :meth:`stream` keeps none). Windowed output equals whole-signal processing to float rounding.

Mixing (:meth:`render`): stems are summed; if the mix peak exceeds ``MIX_PEAK`` (0.99) the mix *and every
stem* are scaled by the same gain (:attr:`RenderResult.gain`), so the stems still sum to the mix. Renders are
generated for ``tail_s`` after the last note offset (a 1 s release plus the reverb's 60 dB decay time), then
end where the audio after the last offset falls 60 dB below the mix's peak (20 ms fade; whole frames). The
API gives the models' raw level; the CLI normalises the loudness (:mod:`midi_ddsp.loudness`).

Seeds: the same inputs and seed give the same audio; any integer is a seed. The expression prior uses
``seed + voice``, the f0 sampler one stream per (seed, voice, segment start) (:mod:`.generation`: an edit of
one note changes the audio only near it), and the noise source a stream derived from ``(seed, voice)``.
Voices do not depend on each other.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from . import extraction, limits
from . import transfer as _transfer
from .checkpoint import CheckpointError
from .errors import MidiDDSPError, MidiDDSPWarning
from .generation import RELEASE_S, GeneratorRun, derive_seed, receptive_field
from .instruments import INSTRUMENTS, Instrument, by_name
from .model_folder import (ANALYSIS_FILE, DEFAULT_CHECKPOINTS, GENERATOR_FILE, PERFORMANCE_FILE, TRANSFER_FILE,
                           ModelFolder, load_folder)
from .note_level.expression import ControlNormalizer
from .note_level.editing import keep_controls, kept_report
from .note_level.notes import CONTROL_NAMES, NoteSequence, Performance
from .rendering import (MIX_PEAK, TAIL_FADE_S, SynthWorker, VoiceBank, fade_out, ir_decay_s, mix_stems, peak_abs,
                        noise_excitation, tail_end, torch_threads)
from .results import RenderResult, TransferResult
from .sources import ReadResult, Source, read_midi_voices, read_source, short_note_warnings
from .synthesis.generator import SynthesisGenerator
from .synthesis.params import SynthParams
from .synthesis.synthesizer import Synthesizer

EXPRESSION_TEMPERATURE = 0.5  # the expression prior samples at this times --temperature (expression_temperature)
VIBRATO = CONTROL_NAMES.index("vibrato")
WINDOW_S = 15.0  # seconds per processing window (30 s: same speed, ~100 MB more peak memory on a 10-min trio)
MIN_SYNTH_WINDOW = 32  # frames per synthesis window in :meth:`MidiDDSP.audio`, at least


def _tqdm(total: int, show: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=desc, unit="window", file=sys.stderr, leave=False)


def _show(progress: bool | None, duration_s: float) -> bool:
    return bool(progress) if progress is not None else duration_s > 60.0


def _emit(messages: Sequence[str]) -> None:
    for m in messages:
        warnings.warn(m, MidiDDSPWarning, stacklevel=3)


def _empty_params(gen: SynthesisGenerator, frame_rate: float) -> SynthParams:
    h = gen.head
    return SynthParams(torch.zeros(1, 0, 1), torch.zeros(1, 0, 1), torch.zeros(1, 0, h.n_harmonics),
                       torch.zeros(1, 0, h.n_noise_bands), frame_rate)


class MidiDDSP:
    """MIDI -> expressive instrument audio, level by level. Build with :meth:`from_pretrained`.

    Attributes:
        generator: the synthesis generator; synth: its Synthesizer (harmonic + noise + reverb bank).
        normalizer: statistics mapping raw note controls to the normalised values the models use.
        performance_model: the expression prior (None when the folder has no performance.safetensors).
        transfer_model, transfer_synth: the f0 + loudness decoder for timbre transfer (or None).
        analysis_model, analysis_synth: the audio -> parameters model used to re-extract performances (or None).
        sample_rate (Hz, the model folder's), frame_rate (Hz), hop (samples), path (the folder),
        load_time_s (seconds), window_s: seconds per processing window on long pieces.
    """

    def __init__(self, folder: ModelFolder, window_s: float = WINDOW_S) -> None:
        self.folder = folder
        self.generator = folder.generator.eval()
        self.synth = folder.synth.eval()
        self.normalizer = folder.normalizer or ControlNormalizer.identity()
        self.performance_model = folder.performance_model
        self.transfer_model, self.transfer_synth = folder.transfer_model, folder.transfer_synth
        self.transfer_stats = folder.transfer_stats
        self.analysis_model, self.analysis_synth = folder.analysis_model, folder.analysis_synth
        self.sample_rate, self.frame_rate = int(folder.sample_rate), float(folder.frame_rate)
        hop = self.sample_rate / self.frame_rate
        if hop != int(hop):
            raise CheckpointError(f"sample rate {self.sample_rate} is not a whole number of frames at "
                                  f"{self.frame_rate} Hz")
        self.hop = int(hop)
        self.path = folder.path
        self.window_s = float(window_s)
        self.load_time_s = 0.0
        self._derived_stats: dict[str, dict] = {}

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, window_s: float = WINDOW_S) -> "MidiDDSP":
        """Load a model folder (default: the shipped ``checkpoints/``; see :mod:`midi_ddsp.model_folder`).

        Raises:
            CheckpointError: the folder or the generator is missing, or a file is corrupt, of the wrong kind
                or does not match the code. The load time is in ``load_time_s``.
        """
        t0 = time.perf_counter()
        m = cls(load_folder(path), window_s)
        m.load_time_s = time.perf_counter() - t0
        return m

    def instruments(self) -> list[Instrument]:
        """The instruments the loaded models know (id order), with their usual ranges."""
        return list(INSTRUMENTS[:self.generator.instrument.num_embeddings])

    def _instrument(self, name: str) -> Instrument:
        inst = by_name(name)
        if inst.id >= self.generator.instrument.num_embeddings:
            raise MidiDDSPError(f"the loaded model does not know the instrument {inst.name!r}")
        return inst

    # ------------------------------------------------------------------------------------ level 0: notes
    def read(self, midi_path, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
             program_map: dict[int, str] | None = None, pedal=None) -> ReadResult:
        """MIDI file -> monophonic voices (polyphonic tracks are split; GM program -> instrument, or
        ``instrument`` for all). Problems are returned as lines and emitted as :class:`MidiDDSPWarning`.
        ``pedal``: sustain-pedal intervals per track that hold chordal tracks' notes before the split
        (see :func:`midi_ddsp.io.midi.load_midi`).

        Raises:
            MidiReadError: missing, not MIDI, corrupt/truncated, empty or drum-only file.
            UnknownInstrumentError: unknown ``instrument``.
        """
        if instrument is not None:
            self._instrument(instrument)
        result = read_midi_voices(midi_path, instrument, pitch_offset, speed, program_map, pedal)
        result.warnings += short_note_warnings(result.voices, self.frame_rate, self.sample_rate)
        _emit(result.warnings)
        return result

    # ------------------------------------------------------------------------------ level 1: performance
    @staticmethod
    def expression_temperature(temperature: float, expression_temperature: float | None = None) -> float:
        """The expression prior's temperature in a render: ``expression_temperature`` when given, else
        :data:`EXPRESSION_TEMPERATURE` times the pitch sampler's ``temperature`` (why: README "Render a MIDI
        file")."""
        if expression_temperature is None:
            return EXPRESSION_TEMPERATURE * limits.check_temperature(temperature)
        return limits.check_temperature(expression_temperature, "the expression temperature")

    def perform(self, voices: Sequence[NoteSequence] | NoteSequence, temperature: float = 1.0,
                seed: int | None = 0, keep: Sequence[Performance] | None = None) -> list[Performance]:
        """Notes -> Performances (six expression controls per note) from the expression prior.

        ``temperature`` 0 gives the most likely performance; voice ``i`` uses seed ``seed + i``. ``keep``: an
        earlier performance of (nearly) the same notes: every note found in it keeps its controls there
        (:func:`~midi_ddsp.note_level.editing.keep_controls`), so only new or edited notes are performed anew.
        """
        if isinstance(voices, NoteSequence):
            voices = [voices]
        limits.check_temperature(temperature)
        if self.performance_model is None:
            raise CheckpointError(f"{self.path}: no {PERFORMANCE_FILE} (the expression model) in the model folder; "
                                  f"give a performance file instead")
        for v in voices:
            self._instrument(v.instrument)
        from .performance.sampling import predict_performances

        with torch.inference_mode(), torch_threads(1):  # note-by-note sampling: small ops, one thread is fastest
            performed = predict_performances(self.performance_model, list(voices), float(temperature), seed)
        if keep is None:
            return performed
        performed, kept = keep_controls(performed, list(keep))
        _emit(kept_report(kept, sum(len(v) for v in voices)))
        return performed

    # -------------------------------------------------------------------------- level 2: synthesis params
    def tail_s(self, instruments: Sequence[str] = (), impulse_response=None) -> float:
        """Seconds generated after the last note: the release plus the reverb's 60 dB decay time (renders are
        then trimmed to their audible tail)."""
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
        perfs = [performances] if isinstance(performances, Performance) else list(performances)
        if n_frames is None:
            n_frames = self.n_frames_for(perfs)
        run = self._run(perfs, n_frames, temperature, top_p, seed, f0_hz)
        pieces: list[list[SynthParams]] = [[] for _ in perfs]
        with torch.inference_mode(), _tqdm(len(run), _show(progress, n_frames / self.frame_rate), "generate") as bar:
            for a, b, voices, params in run:
                for v, chunk in enumerate(run.window_params(voices, params, a, b)):
                    pieces[v].append(chunk)
                bar.update()
        return [SynthParams.cat(p) if p else _empty_params(self.generator, self.frame_rate) for p in pieces]

    def _run(self, perfs, n_frames, temperature, top_p, seed, f0_hz, voice_keys=None) -> GeneratorRun:
        limits.check_temperature(temperature)
        if not 0 < top_p <= 1:
            raise MidiDDSPError(f"top_p must be in (0, 1], got {top_p}")
        for p in perfs:
            if not isinstance(p, Performance):
                raise TypeError(f"expected Performance objects, got {type(p).__name__}")
            self._instrument(p.instrument)
        limits.check_voices([p.sequence for p in perfs])
        if n_frames / self.frame_rate > limits.MAX_DURATION_S + 60.0:
            raise MidiDDSPError(f"n_frames={n_frames} is {n_frames / self.frame_rate:.0f} s; at most "
                                f"{limits.MAX_DURATION_S:.0f} s can be rendered at once")
        vibrato = [self.normalizer.denormalize(p.controls, p.instrument)[:, VIBRATO] if len(p) else np.zeros(0)
                   for p in perfs]  # asked depths, semitones
        return GeneratorRun(self.generator, self.sample_rate, self.frame_rate, perfs, n_frames, temperature, top_p,
                            int(seed), f0_hz, self.window_s, voice_keys, vibrato)

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
            expanded.extend(p.map(lambda t, i=i: t[i:i + 1].float()) for i in range(p.batch_size))
        if len({p.n_frames for p in expanded}) > 1:
            raise ValueError("all voices must have the same number of frames (pad them)")
        if len(names) != len(expanded):
            names = [n for p, n in zip(plist, names) for _ in range(p.batch_size)]
        if not expanded:
            return np.zeros((0, 0), dtype=np.float32)
        n = expanded[0].n_frames
        bank = VoiceBank(synth or self.synth, [self._instrument(i).id for i in names], self.hop, self.sample_rate,
                         seed, reverb, impulse_response)
        L = max(int(self.window_s * self.frame_rate), MIN_SYNTH_WINDOW)
        out = _Rows(len(expanded), n * self.hop)
        with torch.inference_mode(), _tqdm(-(-n // L), _show(progress, n / self.frame_rate), "synthesize") as bar:
            for a in range(0, n, L):
                out.add(bank.process([p.frames(a, min(a + L, n)) for p in expanded]))
                bar.update()
            out.add(bank.flush())
        return out.rows

    # ------------------------------------------------------------------------------------------ one call
    def render(self, source, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
               temperature: float = 1.0, seed: int = 0, reverb: bool = True, impulse_response=None,
               top_p: float = 0.95, keep_params: bool | str = True, progress: bool | None = None,
               parallel: bool | None = None, sample_rate: int | None = None, stems: bool = True,
               voice_keys: Sequence[int] | None = None, keep: Sequence[Performance] | None = None,
               expression_temperature: float | None = None) -> RenderResult:
        """MIDI file, performance file (.csv/.json), Performances, NoteSequences or a read
        :class:`~midi_ddsp.sources.Source` -> audio.

        Args:
            source: a ``.mid`` path, a ``.csv``/``.json`` performance path, Performance(s) (rendered as given:
                no expression model), NoteSequence(s) (the expression model performs them), or a Source.
            instrument: render every voice with this instrument.
            pitch_offset: semitones; speed: tempo factor (2 = twice as fast). Applied to every source.
            temperature: of the f0 sampler (0: the most likely pitch curve); seed: same seed, same audio.
            expression_temperature: of the expression prior (notes that come without controls); None:
                half of ``temperature`` (:meth:`expression_temperature`).
            reverb: False = dry; impulse_response: your own IR (see :meth:`audio`).
            keep_params: keep every voice's SynthParams in the result (False saves memory on long pieces;
                ``"curves"`` keeps only f0 and amplitude, with empty harmonic and noise channels).
            progress: show a progress bar (None: only for pieces longer than a minute).
            parallel: synthesize each window on a second thread while the generator computes the next one
                (None: when torch may use two or more threads). The audio is the same either way.
            sample_rate: return the audio resampled to this rate (Hz; None: the model's rate).
            stems: keep each voice's audio (False: voices are summed as they come and ``stems`` is empty,
                ``[0, samples]``; saves 4 bytes per sample per voice on long pieces).
            voice_keys: the integer each voice's f0 and noise draws are keyed to (default: its position), so
                that some voices of a piece rendered alone sound as they do in the whole render.
            keep: an earlier performance of these notes (e.g. the one exported before editing the MIDI file):
                notes found in it keep its controls, only the others are performed (see :meth:`perform`).
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        performances, messages = self._prepare(source, instrument, pitch_offset, speed,
                                               self.expression_temperature(temperature, expression_temperature), seed,
                                               timings, keep)
        n_frames = self.n_frames_for(performances, impulse_response)
        rows_out = _Rows(len(performances), n_frames * self.hop, mixed=not stems)
        pieces: list[list[SynthParams]] | None = [[] for _ in performances] if keep_params else None
        curves_only = keep_params == "curves"
        t = time.perf_counter()
        with _tqdm(0, _show(progress, n_frames / self.frame_rate), "render") as bar:
            for outs in self._synthesized(performances, n_frames, temperature, top_p, seed, reverb,
                                          impulse_response, parallel, pieces, timings, bar, curves_only,
                                          voice_keys):
                rows_out.add(outs)
                bar.update()
        timings["generate_and_synthesize"] = time.perf_counter() - t
        if stems:
            mix, rows, gain = mix_stems(rows_out.rows)
        else:
            mix, rows, gain = mix_stems(np.zeros((0, n_frames * self.hop), np.float32), mix=rows_out.rows[0])
        end = tail_end(mix, self._tail_start(performances), peak_abs(mix), self.hop,
                       fade=self._fade)
        mix, rows = mix[:end], rows[:, :end]
        fade_out(mix, end, self._fade)
        fade_out(rows, end, self._fade)
        params_out = [SynthParams.cat(p).frames(0, end // self.hop) for p in pieces] if pieces is not None else None
        timings["total"] = time.perf_counter() - t0
        result = RenderResult(mix, rows, performances, params_out, self.sample_rate, gain, messages, timings)
        return result.resampled(sample_rate)

    def stream(self, source, block_size: int = 4096, instrument: str | None = None, pitch_offset: int = 0,
               speed: float = 1.0, temperature: float = 1.0, seed: int = 0, reverb: bool = True,
               impulse_response=None, top_p: float = 0.95, stems: bool = False,
               parallel: bool | None = False, expression_temperature: float | None = None,
               keep: Sequence[Performance] | None = None) -> Iterator[np.ndarray]:
        """Render ``source`` (as :meth:`render` takes it) block by block, in order, with bounded memory.

        Yields float32 blocks of ``block_size`` samples at :attr:`sample_rate` (the last one shorter): the mix
        ``[block_size]``, or with ``stems`` one row per voice ``[voices, block_size]``. Their concatenation
        equals :meth:`render`'s ``mix / gain`` (``stems / gain``): a stream cannot know the piece's peak in
        advance, so it applies no anti-clipping gain. The tail after the last note is held back until the end
        and trimmed as :meth:`render` trims it. Working memory is about one processing window (the
        first one is short, so the first block comes soon). ``parallel`` as in :meth:`render` (off by
        default: it limits torch to one thread while the stream is open); ``expression_temperature`` and
        ``keep`` as there.
        """
        if not (isinstance(block_size, int) and block_size > 0):
            raise MidiDDSPError(f"block_size must be a positive number of samples, got {block_size}")
        performances, _ = self._prepare(source, instrument, pitch_offset, speed,
                                        self.expression_temperature(temperature, expression_temperature), seed, {},
                                        keep)
        n_frames = self.n_frames_for(performances, impulse_response)
        start = self._tail_start(performances)
        fifo = _Fifo(len(performances))
        emitted, peak = 0, 0.0
        for outs in self._synthesized(performances, n_frames, temperature, top_p, seed, reverb, impulse_response,
                                      parallel, None, {}):
            fifo.add(outs)
            while fifo.ready >= block_size and emitted + block_size <= start:  # the tail waits: it is trimmed
                block = fifo.pop(block_size, True)
                peak = max(peak, float(np.max(np.abs(block.sum(0)), initial=0.0)))
                emitted += block_size
                yield block if stems else block.sum(0)
        rest = fifo.pop(fifo.ready, True)
        tail = rest.sum(0)
        end = tail_end(tail, start - emitted, max(peak, float(np.max(np.abs(tail), initial=0.0))), 1,
                       fade=self._fade)
        end = min(rest.shape[1], -(-(emitted + end) // self.hop) * self.hop - emitted)  # whole frames, as render
        rest = rest[:, :end]
        fade_out(rest, end, self._fade)
        for a in range(0, end, block_size):
            block = rest[:, a:a + block_size]
            yield block if stems else block.sum(0)

    @property
    def _fade(self) -> int:
        return int(round(TAIL_FADE_S * self.sample_rate))

    def _tail_start(self, performances) -> int:
        """Sample of the last note offset: renders are trimmed after it (see :func:`.rendering.tail_end`)."""
        return int(math.ceil(max((p.sequence.end_s for p in performances), default=0.0) * self.sample_rate))

    def _prepare(self, source, instrument, pitch_offset, speed, expression_temperature, seed, timings, keep=None
                 ) -> tuple[list[Performance], list[str]]:
        """Source -> performances (the expression model performs notes that come without, at
        ``expression_temperature``) and warnings, emitted as :class:`MidiDDSPWarning`."""
        t0 = time.perf_counter()
        if instrument is not None:
            self._instrument(instrument)
        src = read_source(source, instrument, pitch_offset, speed)
        for v in src.voices:
            self._instrument(v.instrument)
        messages = list(src.warnings) + short_note_warnings(src.voices, self.frame_rate, self.sample_rate)
        timings["read"] = time.perf_counter() - t0
        performances = src.performances
        if performances is None:
            t = time.perf_counter()
            performances = self.perform(src.voices, expression_temperature, seed, keep)
            timings["perform"] = time.perf_counter() - t
        _emit(messages)
        return performances, messages

    def _synthesized(self, performances, n_frames, temperature, top_p, seed, reverb, impulse_response, parallel,
                     pieces, timings, bar=None, curves_only: bool = False, voice_keys=None
                     ) -> Iterator[list[np.ndarray]]:
        """The generator run and the voices' streaming synthesizers, window by window: yields each voice's
        newly completed samples (``[n_v]`` float32 each), the last time after the synthesizers are flushed.
        ``pieces`` (if given) collects each voice's SynthParams (f0 and amplitude only with ``curves_only``).
        Inference mode is on only while computing."""
        run = self._run(performances, n_frames, temperature, top_p, seed, None, voice_keys)
        bank = VoiceBank(self.synth, run.ids, self.hop, self.sample_rate, seed, reverb, impulse_response, run.keys)
        if bar is not None:
            bar.reset(total=len(run) + 1)  # windows, then the synthesizers' flush
        synth_s = [0.0]

        def synthesize(per_voice):
            t = time.perf_counter()
            out = bank.process(per_voice)
            synth_s[0] += time.perf_counter() - t
            return out

        windows = iter(run)
        with SynthWorker(parallel) as worker:
            while True:
                with torch.inference_mode():
                    item = next(windows, None)
                    if item is None:
                        done = worker.drain()
                    else:
                        a, b, voices, params = item
                        per_voice = run.window_params(voices, params, a, b)
                        if pieces is not None:
                            for v, chunk in enumerate(per_voice):
                                pieces[v].append(chunk.curves() if curves_only else chunk)
                        done = worker.submit(synthesize, per_voice)
                yield from done
                if item is None:
                    break
        with torch.inference_mode():
            last = bank.flush()
        timings.update({f"generator.{k}": v for k, v in run.timings.items()})
        timings["synthesizer"] = synth_s[0]
        yield last

    # ------------------------------------------------------------------------------------ timbre transfer
    def transfer(self, audio: np.ndarray, sample_rate: int, instrument: str, octave_shift: int = 0,
                 auto_octave: bool = False, loudness_shift_db: float = 0.0, dry: bool = False,
                 adjust: bool = True, quiet_db: float = 20.0, seed: int = 0, progress: bool | None = None,
                 peak: float | None = None, output_rate: int | None = None) -> TransferResult:
        """Timbre transfer of a monophonic recording: its f0 and loudness drive ``instrument``
        (:mod:`midi_ddsp.transfer`).

        ``adjust`` maps the note frames' loudness mean/std onto the instrument's statistics; frames outside
        notes are made ``quiet_db`` quieter; f0 is shifted by ``octave_shift`` octaves, plus whole octaves
        towards the instrument's mean pitch with ``auto_octave``; ``loudness_shift_db`` is added last.

        Args:
            audio: mono ``[samples]`` (any rate; resampled to :attr:`sample_rate`).
            peak: scale the output down to this peak if it is louder (None: as rendered).
            output_rate: return the audio at this rate (Hz; None: :attr:`sample_rate`).
        Returns:
            TransferResult, as long as the (resampled) input.
        """
        result = _transfer.transfer(self, audio, sample_rate, instrument, octave_shift, auto_octave,
                                    loudness_shift_db, dry, adjust, quiet_db, seed, peak)
        return result.resampled(output_rate)

    def instrument_stats(self, instrument: str) -> dict[str, float]:
        """Typical loudness (``mean_db``, ``std_db``, A-weighted dB on note frames) and pitch (``mean_midi``)
        of an instrument, for timbre transfer: the transfer checkpoint's statistics where present, else
        measured once on a short scale rendered by the synthesis generator, else fixed defaults."""
        return _transfer.instrument_stats(self, instrument)

    # --------------------------------------------------------------------------------------- analysis
    def analyze(self, audio: np.ndarray, sample_rate: int, instrument: str, f0_hz: np.ndarray | None = None
                ) -> SynthParams:
        """Audio -> synthesis parameters with the analysis model (``analysis.safetensors``).

        ``f0_hz`` ``[frames]`` may be given (e.g. the f0 the audio was rendered with); otherwise it is estimated.
        """
        return extraction.analyze(self, audio, sample_rate, instrument, f0_hz)

    def extract_performance(self, audio: np.ndarray, sample_rate: int, sequence: NoteSequence,
                            f0_hz: np.ndarray | None = None, params: SynthParams | None = None,
                            measured: bool = False) -> Performance:
        """Re-extract a Performance (normalised controls) of ``sequence`` from audio via the analysis model
        (or from given ``params``). ``measured``: take the harmonic distribution (brightness) and the noise
        (attack) straight from the audio's spectrum at that f0, exactly as the generator's training targets
        were measured (:func:`midi_ddsp.extraction.measure`), instead of from the model, which leans on what
        is typical of the instrument (the amplitude stays the model's: it follows the notes' volume better
        on transcribed notes)."""
        return extraction.extract_performance(self, audio, sample_rate, sequence, f0_hz, params, measured)

    def analyze_recording(self, audio: np.ndarray, sample_rate: int, instrument: str, config=None,
                          measured: bool = True) -> Performance:
        """A monophonic recording -> an editable :class:`Performance` of ``instrument``: notes found in the
        audio and their six controls measured from it (:func:`midi_ddsp.recording.analyze_recording`).

        ``audio``: ``[samples]`` or ``[channels, samples]``, any ``sample_rate`` (Hz). Raises
        :class:`~midi_ddsp.recording.RecordingError` for what is not a usable recording; warns on very noisy
        or polyphonic-looking input."""
        from .recording import analyze_recording

        return analyze_recording(self, audio, sample_rate, instrument, config, measured)

    def __repr__(self) -> str:
        parts = ["generator"] + [n for n, m in (("performance", self.performance_model),
                                                 ("transfer", self.transfer_model),
                                                 ("analysis", self.analysis_model)) if m is not None]
        return f"MidiDDSP({self.path}, {self.sample_rate} Hz, models: {', '.join(parts)})"


class _Rows:
    """Output rows ``[voices, n]`` filled in order from per-voice chunks of any length; with ``mixed``
    one row ``[1, n]``, the voices' sum."""

    def __init__(self, n_voices: int, n_samples: int, mixed: bool = False) -> None:
        self.rows = np.zeros((1 if mixed else n_voices, n_samples), dtype=np.float32)
        self.mixed = mixed
        self.at = [0] * n_voices

    def add(self, chunks: Sequence[np.ndarray]) -> None:
        for v, c in enumerate(chunks):
            row = 0 if self.mixed else v
            k = min(len(c), self.rows.shape[1] - self.at[v])
            self.rows[row, self.at[v]:self.at[v] + k] += c[:k]
            self.at[v] += k


class _Fifo:
    """Per-voice queues of completed samples; blocks come out once every voice has them."""

    def __init__(self, n_voices: int) -> None:
        self.parts: list[list[np.ndarray]] = [[] for _ in range(n_voices)]
        self.lengths = [0] * n_voices

    @property
    def ready(self) -> int:
        return min(self.lengths, default=0)

    def add(self, chunks: Sequence[np.ndarray]) -> None:
        for v, c in enumerate(chunks):
            if len(c):
                self.parts[v].append(c)
                self.lengths[v] += len(c)

    def pop(self, n: int, stems: bool) -> np.ndarray:
        n = min(n, self.ready)
        rows = []
        for v, parts in enumerate(self.parts):
            joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
            rows.append(joined[:n])
            self.parts[v] = [joined[n:]] if joined.shape[0] > n else []
            self.lengths[v] -= n
        block = np.stack(rows) if rows else np.zeros((0, n), np.float32)
        return block if stems else block.sum(0)


__all__ = ["MidiDDSP", "ReadResult", "RenderResult", "TransferResult", "Source", "mix_stems", "noise_excitation",
           "derive_seed", "receptive_field", "ir_decay_s", "MIX_PEAK", "DEFAULT_CHECKPOINTS", "GENERATOR_FILE",
           "PERFORMANCE_FILE", "TRANSFER_FILE", "ANALYSIS_FILE"]
