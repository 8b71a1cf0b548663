"""Effects: a learned convolution reverb with one impulse response per instrument."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import functional as DF
from .streaming import ConvolutionStream


class ReverbControls(NamedTuple):
    """Controls of :class:`Reverb` in a chain: ``ir [B or 1, taps]`` the impulse responses to apply (see
    :meth:`Reverb.select`), or None to bypass the reverb (the dry signal)."""

    ir: Tensor | None


class Reverb(nn.Module):
    """Learned convolution reverb: a bank of ``n_irs`` impulse responses (one per instrument), dry + wet.

    Output = ``audio`` (dry) + ``audio * ir`` (wet, causal convolution, same length). The dry path carries the
    direct sound, so tap 0 of the IR is ignored (as in ddsp); without the dry path the IR is used as is.

    Args:
        n_irs: IRs in the bank (default 13, the instrument ids).
        ir_length: taps per IR (default 48000 = 3 s at 16 kHz).
        init_gain, init_decay: initial IRs are Gaussian noise with standard deviation ``init_gain``
            decaying exponentially, by 60 dB at ``init_decay * ir_length`` taps: a quiet, neutral room to
            learn from.
        generator: optional RNG for a reproducible initialisation.
    """

    def __init__(self, n_irs: int = 13, ir_length: int = 48000, init_gain: float = 1e-3,
                 init_decay: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        t = torch.arange(ir_length, dtype=torch.float32) / ir_length
        envelope = init_gain * 10.0 ** (-3.0 * t / init_decay)  # -60 dB at t = init_decay
        self.irs = nn.Parameter(torch.randn(n_irs, ir_length, generator=generator) * envelope)

    def forward(self, audio: Tensor, ir_index: Tensor | int | None = None, *, ir: Tensor | None = None,
                add_dry: bool = True, wet: bool = True) -> Tensor:
        """Apply the reverb. ``[B, n] -> [B, n]``.

        Args:
            audio: ``[B, n]`` dry signal.
            ir_index: ``LongTensor [B]`` (or an int) choosing each item's IR from the bank; default 0.
            ir: user impulse response ``[m]`` or ``[B or 1, m]`` replacing the bank.
            add_dry: add the dry signal (and ignore IR tap 0); ``False`` returns the wet signal only.
            wet: ``False`` bypasses the reverb and returns ``audio`` (the dry signal) unchanged.
        """
        if not wet:
            return audio
        ir = self.select(ir_index, ir).to(audio.dtype)
        if not add_dry:
            return DF.fft_convolve(audio, ir)
        ir = torch.cat([ir.new_zeros(ir.shape[0], 1), ir[:, 1:]], -1)  # direct sound comes from the dry path
        return audio + DF.fft_convolve(audio, ir)

    def select(self, ir_index: Tensor | int | None = None, ir: Tensor | None = None) -> Tensor:
        """The impulse responses :meth:`forward` would use: bank entries ``ir_index`` or the user's ``ir``,
        ``[B or 1, taps]``."""
        if ir is None:
            index = torch.as_tensor(0 if ir_index is None else ir_index, device=self.irs.device)
            ir = self.irs[index.reshape(-1)]
        return ir.reshape(-1, ir.shape[-1])

    def render(self, audio: Tensor, controls: ReverbControls) -> Tensor:
        """Dry + wet with ``controls.ir`` (tap 0 ignored), or ``audio`` itself when it is None."""
        return audio if controls.ir is None else self(audio, ir=controls.ir)

    def stream(self) -> "ReverbBlocks":
        """A block renderer: ``process(audio block, ReverbControls)``; the tails are carried across blocks."""
        return ReverbBlocks()


class ReverbBlocks:
    """:class:`Reverb` block by block. The impulse response is taken from the first block's controls."""

    def __init__(self) -> None:
        self.inner: ConvolutionStream | None = None
        self.bypass = False

    def process(self, audio: Tensor, controls: ReverbControls) -> Tensor:
        if self.inner is None and not self.bypass:
            if controls.ir is None:
                self.bypass = True
            else:
                ir = controls.ir.to(audio.dtype)
                self.inner = ConvolutionStream(torch.cat([ir.new_zeros(ir.shape[0], 1), ir[:, 1:]], -1), dry=True)
        return audio if self.bypass else self.inner.process(audio)

    def flush(self) -> Tensor:
        return torch.zeros(0, 0)
