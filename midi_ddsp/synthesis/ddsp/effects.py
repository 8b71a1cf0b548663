"""Effects: a learned convolution reverb with one impulse response per instrument."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import functional as DF


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
        if ir is None:
            index = torch.as_tensor(0 if ir_index is None else ir_index, device=self.irs.device)
            ir = self.irs[index.reshape(-1)]
        ir = ir.reshape(-1, ir.shape[-1]).to(audio.dtype)
        if not add_dry:
            return DF.fft_convolve(audio, ir)
        ir = torch.cat([ir.new_zeros(ir.shape[0], 1), ir[:, 1:]], -1)  # direct sound comes from the dry path
        return audio + DF.fft_convolve(audio, ir)
