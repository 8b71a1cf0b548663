"""A small typed composition of sources and effects: one signal chain for whole signals and for blocks.

A *source* (e.g. :class:`~.synths.HarmonicSynth`, :class:`~.synths.FilteredNoise`) turns frame-rate controls
into audio: ``render(controls, n_samples, sample_rate)`` for a whole signal and ``stream(hop, sample_rate)``
for a block renderer with ``process(controls) -> audio`` and ``flush() -> audio``. An *effect* (e.g.
:class:`~.effects.Reverb`) turns audio into audio: ``render(audio, controls)`` and ``stream()`` with
``process(audio, controls)``. Each has its own typed controls (a NamedTuple), and a composition's controls
are tuples of its parts' controls in the parts' order (no string keys)::

    chain = Chain(Sum(harmonic, noise), reverb)
    controls = ChainControls((HarmonicControls(...), NoiseControls(...)), (ReverbControls(ir),))
    audio = chain.render(controls, n_samples, sample_rate)           # whole signal (training)
    blocks = chain.stream(hop, sample_rate)                           # the same chain, block by block
    out = [blocks.process(c) for c in controls_of_each_block] + [blocks.flush()]

Concatenated blocks equal the whole-signal render to float rounding (see :mod:`.streaming`).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence

import torch
from torch import Tensor

from .streaming import Aligner


class BlockSource(Protocol):
    def process(self, controls: Any) -> Tensor: ...

    def flush(self) -> Tensor: ...


class Source(Protocol):
    def render(self, controls: Any, n_samples: int, sample_rate: float) -> Tensor: ...

    def stream(self, hop: int, sample_rate: float) -> BlockSource: ...


class BlockEffect(Protocol):
    def process(self, audio: Tensor, controls: Any) -> Tensor: ...

    def flush(self) -> Tensor: ...


class Effect(Protocol):
    def render(self, audio: Tensor, controls: Any) -> Tensor: ...

    def stream(self) -> BlockEffect: ...


class Sum:
    """Sources played together: the sum of their outputs. Controls: one entry per source, in order."""

    def __init__(self, *sources: Source) -> None:
        self.sources = tuple(sources)

    def render(self, controls: Sequence[Any], n_samples: int, sample_rate: float) -> Tensor:
        self._check(controls)
        out = None
        for source, c in zip(self.sources, controls):
            y = source.render(c, n_samples, sample_rate)
            out = y if out is None else out + y
        return out

    def stream(self, hop: int, sample_rate: float) -> "SumBlocks":
        return SumBlocks(self, [s.stream(hop, sample_rate) for s in self.sources])

    def _check(self, controls: Sequence[Any]) -> None:
        if len(controls) != len(self.sources):
            raise ValueError(f"{len(self.sources)} sources but {len(controls)} controls")


class SumBlocks:
    """:class:`Sum` block by block: each source's blocks are aligned before they are added."""

    def __init__(self, owner: Sum, streams: list[BlockSource]) -> None:
        self.owner, self.streams = owner, streams
        self.aligner = Aligner(len(streams))

    def process(self, controls: Sequence[Any]) -> Tensor:
        self.owner._check(controls)
        for i, (s, c) in enumerate(zip(self.streams, controls)):
            self.aligner.push(i, s.process(c))
        return self.aligner.pop()

    def flush(self) -> Tensor:
        for i, s in enumerate(self.streams):
            y = s.flush()
            if y.numel() or self.aligner.buffers[i] is None:
                self.aligner.push(i, y)
        return self.aligner.pop()


class ChainControls(NamedTuple):
    """Controls of a :class:`Chain`: the source's, then one entry per effect (in order)."""

    source: Any
    effects: tuple = ()


class Chain:
    """A source followed by effects in series."""

    def __init__(self, source: Source, *effects: Effect) -> None:
        self.source, self.effects = source, tuple(effects)

    def render(self, controls: ChainControls, n_samples: int, sample_rate: float) -> Tensor:
        self._check(controls)
        audio = self.source.render(controls.source, n_samples, sample_rate)
        for effect, c in zip(self.effects, controls.effects):
            audio = effect.render(audio, c)
        return audio

    def stream(self, hop: int, sample_rate: float) -> "ChainBlocks":
        return ChainBlocks(self, self.source.stream(hop, sample_rate), [e.stream() for e in self.effects])

    def _check(self, controls: ChainControls) -> None:
        if len(controls.effects) != len(self.effects):
            raise ValueError(f"{len(self.effects)} effects but {len(controls.effects)} effect controls")


class ChainBlocks:
    """:class:`Chain` block by block. The effects' controls of the latest block are kept for :meth:`flush`."""

    def __init__(self, owner: Chain, source: BlockSource, effects: list[BlockEffect]) -> None:
        self.owner, self.source, self.effects = owner, source, effects
        self.effect_controls: tuple = ()

    def _through(self, audio: Tensor) -> Tensor:
        for effect, c in zip(self.effects, self.effect_controls):
            if audio.numel():
                audio = effect.process(audio, c)
        return audio

    def process(self, controls: ChainControls) -> Tensor:
        self.owner._check(controls)
        self.effect_controls = tuple(controls.effects)
        return self._through(self.source.process(controls.source))

    def flush(self) -> Tensor:
        audio = self._through(self.source.flush())
        for effect in self.effects:
            tail = effect.flush()
            if tail.numel():
                audio = torch.cat([audio, tail], -1)
        return audio


__all__ = ["Source", "Effect", "BlockSource", "BlockEffect", "Sum", "SumBlocks", "Chain", "ChainControls",
           "ChainBlocks"]
