"""Synthesis generator: notes + per-note expression -> frame-level synthesis parameters.

Two parts share one conditioning network:
- an autoregressive f0 model over the quantised deviation of f0 from the note's pitch (+-4 semitones in
  2-cent bins, so portamento and scoops fit, not only +-1 semitone). It steps at ``frame_rate / block``
  (50 Hz by default: vibrato up to ~9 Hz is well inside that) and the deviation is interpolated linearly
  back to the frame rate, which keeps sampled f0 smooth and makes inference cheap.
- a non-autoregressive dilated-conv timbre network for amplitude, harmonics and noise, given the f0.
All normalisation is per frame, so training on clips and rendering whole pieces behave the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ddsp.functional import hz_to_midi, midi_to_hz
from .f0_sampling import sample_gru_categorical
from .heads import SynthParamsHead
from .layers import MLP, DilatedConvStack, broadcast_time
from .params import SynthParams

N_FRAME_FEATURES = 11  # six controls, pitch/127, onset, offset, position in note, in-note flag


@dataclass
class GeneratorInputs:
    """Frame-level conditioning built from notes and their expression controls.

    Attributes:
        features: [batch, frames, 11]: the note's six controls (0 on rests), MIDI pitch / 127, onset flag,
            offset flag, position in note (0..1), in-note flag.
        held_pitch: [batch, frames, 1] MIDI pitch of the current note; rests hold the nearest note's pitch.
        in_note: [batch, frames, 1] 1 inside notes, 0 on rests.
        instrument: [batch] instrument ids.
    """

    features: Tensor
    held_pitch: Tensor
    in_note: Tensor
    instrument: Tensor

    @property
    def n_frames(self) -> int:
        return self.features.shape[1]


class F0Model(nn.Module):
    """Autoregressive categorical model of f0 deviation from the note pitch, one step per ``block`` frames."""

    def __init__(self, cond_width: int, hidden: int = 128, n_bins: int = 401, max_semitones: float = 4.0,
                 block: int = 5, embed_dim: int = 32) -> None:
        super().__init__()
        self.n_bins, self.max_semitones, self.block = n_bins, max_semitones, block
        self.embed = nn.Embedding(n_bins, embed_dim)
        self.rnn = nn.GRU(cond_width + embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden + cond_width, n_bins)
        self.cond_width = cond_width

    @property
    def center_bin(self) -> int:
        return self.n_bins // 2

    def to_bins(self, semitones: Tensor) -> Tensor:
        step = 2 * self.max_semitones / (self.n_bins - 1)
        return torch.round(semitones.clamp(-self.max_semitones, self.max_semitones) / step).long() + self.center_bin

    def to_semitones(self, bins: Tensor) -> Tensor:
        step = 2 * self.max_semitones / (self.n_bins - 1)
        return (bins - self.center_bin).float() * step

    def pool(self, x: Tensor) -> Tensor:
        """[B, frames, C] -> [B, ceil(frames / block), C] by block means (end padded by repetition)."""
        pad = (-x.shape[1]) % self.block
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], 1)
        return x.unflatten(1, (-1, self.block)).mean(2)

    def unpool(self, blocks: Tensor, n_frames: int) -> Tensor:
        """Block values [B, steps, C] -> frames [B, n_frames, C], linear between block centres."""
        x = F.interpolate(blocks.transpose(1, 2), scale_factor=self.block, mode="linear", align_corners=False)
        return x.transpose(1, 2)[:, :n_frames]

    def logits(self, cond_blocks: Tensor, target_bins: Tensor, prev_dropout: float = 0.0) -> Tensor:
        """Teacher-forced logits [B, steps, n_bins] given the target bins [B, steps]."""
        prev = torch.cat([torch.full_like(target_bins[:, :1], self.center_bin), target_bins[:, :-1]], 1)
        emb = self.embed(prev)
        if self.training and prev_dropout > 0:
            emb = emb * (torch.rand(emb.shape[:2] + (1,), device=emb.device) >= prev_dropout)
        h, _ = self.rnn(torch.cat([cond_blocks, emb], -1))
        return self.out(torch.cat([h, cond_blocks], -1))

    @torch.no_grad()
    def sample(self, cond_blocks: Tensor, temperature: float = 1.0, top_p: float = 0.95,
               generator: torch.Generator | None = None, uniforms: Tensor | None = None,
               lengths: list[int] | None = None) -> Tensor:
        """Sample bins [B, steps]; the same generator state gives the same result. ``uniforms`` (float64
        ``[B, steps]`` in [0, 1), one draw per step) replaces the draws from ``generator``. ``lengths``: the
        steps each row needs (default all); past its length a row repeats its last bin."""
        c = self.cond_width
        w_ih, b_ih = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
        input_gates = cond_blocks @ w_ih[:, :c].t() + b_ih
        prev_gates = self.embed.weight @ w_ih[:, c:].t()
        out_bias = cond_blocks @ self.out.weight[:, -c:].t() + self.out.bias
        if uniforms is None:
            uniforms = torch.rand(cond_blocks.shape[:2], generator=generator, dtype=torch.float64)
        np_ = lambda t: t.detach().cpu().float().numpy()  # noqa: E731
        bins = sample_gru_categorical(np_(input_gates), np_(prev_gates), np_(self.rnn.weight_hh_l0),
                                      np_(self.rnn.bias_hh_l0), np_(self.out.weight[:, :-c]), np_(out_bias),
                                      uniforms.numpy(), self.center_bin, float(temperature), float(top_p),
                                      lengths=lengths)
        return torch.from_numpy(bins).to(cond_blocks.device)


class SynthesisGenerator(nn.Module):
    """GeneratorInputs -> SynthParams.

    Args:
        width: channels of the conditioning and timbre networks.
        n_instruments, instrument_dim: instrument embedding table.
        n_harmonics, n_noise_bands: synthesizer sizes.
        f0_hidden, f0_bins, f0_max_semitones, f0_block: f0 model sizes (see F0Model).
        envelope_points: points of the partials' gain over frequency (heads.FrequencyEnvelope; 0: none).
    """

    def __init__(self, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32,
                 n_harmonics: int = 60, n_noise_bands: int = 65, f0_hidden: int = 128, f0_bins: int = 401,
                 f0_max_semitones: float = 4.0, f0_block: int = 5, envelope_points: int = 0) -> None:
        super().__init__()
        self.instrument = nn.Embedding(n_instruments, instrument_dim)
        self.pre = MLP(N_FRAME_FEATURES + instrument_dim, width, 2)
        self.context = DilatedConvStack(width, kernel_size=3, layers_per_stack=5, n_stacks=2)
        self.f0 = F0Model(width, f0_hidden, f0_bins, f0_max_semitones, f0_block)
        self.f0_in = nn.Linear(2, width)
        self.timbre = DilatedConvStack(width, kernel_size=3, layers_per_stack=5, n_stacks=2)
        self.post = MLP(width, width, 1)
        self.head = SynthParamsHead(width, n_harmonics, n_noise_bands, envelope_points)

    def conditioning(self, inputs: GeneratorInputs) -> Tensor:
        inst = broadcast_time(self.instrument(inputs.instrument), inputs.n_frames)
        return self.context(self.pre(torch.cat([inputs.features, inst], -1)))

    def f0_from_deviation(self, inputs: GeneratorInputs, deviation: Tensor) -> Tensor:
        """Note pitch + deviation (semitones) -> f0 in Hz, [B, frames, 1]."""
        return midi_to_hz(inputs.held_pitch + deviation)

    def timbre_params(self, cond: Tensor, inputs: GeneratorInputs, f0_hz: Tensor, sample_rate: float,
                      frame_rate: float) -> SynthParams:
        deviation = hz_to_midi(f0_hz) - inputs.held_pitch
        f0_features = torch.cat([deviation.clamp(-12, 12) / 4.0, hz_to_midi(f0_hz) / 127.0], -1)
        h = self.timbre(cond + self.f0_in(f0_features))
        return self.head(self.post(h), f0_hz, sample_rate, frame_rate)

    @torch.no_grad()
    def generate(self, inputs: GeneratorInputs, sample_rate: float = 16000.0, frame_rate: float = 250.0,
                 temperature: float = 1.0, top_p: float = 0.95, generator: torch.Generator | None = None,
                 f0_hz: Tensor | None = None) -> SynthParams:
        """Sample f0 (unless ``f0_hz`` [B, frames, 1] is given) and predict the timbre parameters."""
        cond = self.conditioning(inputs)
        if f0_hz is None:
            bins = self.f0.sample(self.f0.pool(cond), temperature, top_p, generator)
            deviation = self.f0.unpool(self.f0.to_semitones(bins)[..., None], inputs.n_frames)
            f0_hz = self.f0_from_deviation(inputs, deviation)
        return self.timbre_params(cond, inputs, f0_hz, sample_rate, frame_rate)
