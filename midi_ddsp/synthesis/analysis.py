"""Audio -> synthesis parameters (MIDI-DDSP's "DDSP Inference") (the network; its training task is
midi_ddsp.training.analysis_task).

Two variants share one class:
- ``n_mels > 0``: log-mel + f0 + loudness + instrument. The best resynthesis; used to make the training
  targets (synthesis parameters and note expression) for the levels above.
- ``n_mels = 0``: f0 + loudness + instrument only (the classic DDSP decoder). The source's timbre cannot
  leak through, so this is the variant used for timbre transfer.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import SynthParamsHead
from .layers import MLP, DilatedConvStack, broadcast_time, scaled_loudness, scaled_pitch
from .params import SynthParams


class AnalysisModel(nn.Module):
    """Per-frame features -> SynthParams with f0 passed through unchanged.

    A non-causal dilated convolution stack (receptive field 125 frames = 0.5 s) gives each frame its
    context; it trains several times faster on a CPU than a recurrent layer of the same width.

    Args:
        n_mels: log-mel bands seen by the model; 0 for the f0 + loudness variant.
        width: hidden width.
        n_instruments: size of the instrument embedding table.
        instrument_dim: instrument embedding size.
        n_harmonics, n_noise_bands: synthesizer sizes.
    """

    def __init__(self, n_mels: int = 64, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32,
                 n_harmonics: int = 60, n_noise_bands: int = 65) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.f0_loudness = MLP(2, width, 2)
        self.mel = MLP(n_mels, width, 2) if n_mels else None
        self.instrument = nn.Embedding(n_instruments, instrument_dim)
        in_features = width * (2 if n_mels else 1) + instrument_dim
        self.proj = nn.Linear(in_features, width)
        self.context = DilatedConvStack(width, kernel_size=3, layers_per_stack=5, n_stacks=2)
        self.out = MLP(width, width, 2)
        self.head = SynthParamsHead(width, n_harmonics, n_noise_bands)

    def forward(self, f0_hz: Tensor, loudness_db: Tensor, instrument: Tensor, log_mel: Tensor | None = None,
                sample_rate: float = 16000.0, frame_rate: float = 250.0) -> SynthParams:
        """
        Args:
            f0_hz: [batch, frames, 1] Hz. loudness_db: [batch, frames, 1] A-weighted dB in [-80, 0].
            instrument: [batch] ids. log_mel: [batch, frames, n_mels] (required when n_mels > 0).
        """
        parts = [self.f0_loudness(torch.cat([scaled_pitch(f0_hz), scaled_loudness(loudness_db)], -1))]
        if self.mel is not None:
            if log_mel is None:
                raise ValueError("this analysis model needs log_mel")
            parts.append(self.mel(log_mel))
        parts.append(broadcast_time(self.instrument(instrument), f0_hz.shape[1]))
        h = self.context(self.proj(torch.cat(parts, -1)))
        return self.head(self.out(h), f0_hz, sample_rate, frame_rate)
