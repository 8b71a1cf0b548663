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

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..note_level.notes import CONTROL_NAMES
from .control_consistency import (DIFFERENTIABLE_CONTROLS, counterfactual_controls, note_controls, note_lengths,
                                  segment_mean, to_frames)
from .ddsp.functional import hz_to_midi, midi_to_hz
from .ddsp.losses import MultiScaleSpectralLoss
from .f0_sampling import sample_gru_categorical
from .heads import SynthParamsHead
from .layers import MLP, DilatedConvStack, broadcast_time
from ..checkpoint import load_into, load_weights, save_weights
from .params import SynthParams, params_l1
from .synthesizer import Synthesizer

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
               generator: torch.Generator | None = None) -> Tensor:
        """Sample bins [B, steps]; the same generator state gives the same result."""
        c = self.cond_width
        w_ih, b_ih = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
        input_gates = cond_blocks @ w_ih[:, :c].t() + b_ih
        prev_gates = self.embed.weight @ w_ih[:, c:].t()
        out_bias = cond_blocks @ self.out.weight[:, -c:].t() + self.out.bias
        uniforms = torch.rand(cond_blocks.shape[:2], generator=generator, dtype=torch.float64)
        np_ = lambda t: t.detach().cpu().float().numpy()  # noqa: E731
        bins = sample_gru_categorical(np_(input_gates), np_(prev_gates), np_(self.rnn.weight_hh_l0),
                                      np_(self.rnn.bias_hh_l0), np_(self.out.weight[:, :-c]), np_(out_bias),
                                      uniforms.numpy(), self.center_bin, float(temperature), float(top_p))
        return torch.from_numpy(bins).to(cond_blocks.device)


class SynthesisGenerator(nn.Module):
    """GeneratorInputs -> SynthParams.

    Args:
        width: channels of the conditioning and timbre networks.
        n_instruments, instrument_dim: instrument embedding table.
        n_harmonics, n_noise_bands: synthesizer sizes.
        f0_hidden, f0_bins, f0_max_semitones, f0_block: f0 model sizes (see F0Model).
    """

    def __init__(self, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32,
                 n_harmonics: int = 60, n_noise_bands: int = 65, f0_hidden: int = 128, f0_bins: int = 401,
                 f0_max_semitones: float = 4.0, f0_block: int = 5) -> None:
        super().__init__()
        self.instrument = nn.Embedding(n_instruments, instrument_dim)
        self.pre = MLP(N_FRAME_FEATURES + instrument_dim, width, 2)
        self.context = DilatedConvStack(width, kernel_size=3, layers_per_stack=5, n_stacks=2)
        self.f0 = F0Model(width, f0_hidden, f0_bins, f0_max_semitones, f0_block)
        self.f0_in = nn.Linear(2, width)
        self.timbre = DilatedConvStack(width, kernel_size=3, layers_per_stack=5, n_stacks=2)
        self.post = MLP(width, width, 1)
        self.head = SynthParamsHead(width, n_harmonics, n_noise_bands)

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


class GeneratorTask(pl.LightningModule):
    """Trains the SynthesisGenerator: f0 cross-entropy + spectral loss of its render against the real audio
    (+ an optional L1 on the analysis model's parameters, which speeds up early training on small budgets).

    Batch dict: ``audio`` [B, samples], ``true_f0_hz`` [B, frames, 1] (ground-truth or tracked f0),
    ``features``, ``held_pitch``, ``in_note`` (see GeneratorInputs), ``instrument_id`` [B]; optional targets
    ``amplitude`` [B, frames, 1], ``harmonic_distribution`` [B, frames, H], ``noise_magnitudes`` [B, frames, K].
    The reverb is taken from a trained analysis task and kept frozen.

    ``consistency_weight`` > 0 adds the counterfactual control-consistency loss
    (:mod:`~midi_ddsp.synthesis.control_consistency`): each whole note of the clip (batch ``note_id``
    [B, frames]) gets random values of the ``consistency_controls`` (any of volume, vol_fluc, brightness,
    attack) with probability ``counterfactual_p`` each, and the L1 distance between those and the controls
    measured back from the generated parameters (normalised with the attached control normaliser) is added.
    """

    export_kind = "generator"

    def __init__(self, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32, n_harmonics: int = 60,
                 n_noise_bands: int = 65, f0_hidden: int = 128, f0_bins: int = 401, f0_max_semitones: float = 4.0,
                 f0_block: int = 5, reverb_length: int = 48000, sample_rate: int = 16000, frame_rate: int = 250,
                 learning_rate: float = 1e-3, lr_decay_per_1k_steps: float = 0.98, f0_weight: float = 1.0,
                 spectral_weight: float = 1.0, param_weight: float = 1.0, prev_dropout: float = 0.3,
                 consistency_weight: float = 0.0, counterfactual_p: float = 0.5,
                 consistency_controls: tuple[str, ...] = DIFFERENTIABLE_CONTROLS) -> None:
        super().__init__()
        self.save_hyperparameters()
        unknown = set(consistency_controls) - set(DIFFERENTIABLE_CONTROLS)
        if unknown:
            raise ValueError(f"consistency_controls: {sorted(unknown)} cannot be measured differentiably; "
                             f"choose from {list(DIFFERENTIABLE_CONTROLS)}")
        self.model = SynthesisGenerator(width, n_instruments, instrument_dim, n_harmonics, n_noise_bands,
                                        f0_hidden, f0_bins, f0_max_semitones, f0_block)
        self.synth = Synthesizer(n_harmonics, n_noise_bands, n_instruments, reverb_length)
        self.synth.requires_grad_(False)
        self.loss = MultiScaleSpectralLoss()

    @staticmethod
    def inputs_from_batch(batch: dict) -> GeneratorInputs:
        return GeneratorInputs(batch["features"], batch["held_pitch"], batch["in_note"], batch["instrument_id"])

    def losses(self, batch: dict) -> dict[str, Tensor]:
        hp, gen = self.hparams, self.model
        inputs = self.inputs_from_batch(batch)
        cond = gen.conditioning(inputs)
        # f0: block means of the deviation inside notes; blocks that are mostly rest are not scored.
        deviation = (hz_to_midi(batch["true_f0_hz"]) - inputs.held_pitch) * inputs.in_note
        dev_blocks = gen.f0.pool(deviation)[..., 0] / gen.f0.pool(inputs.in_note)[..., 0].clamp_min(1e-3)
        note_blocks = gen.f0.pool(inputs.in_note)[..., 0] > 0.5
        bins = gen.f0.to_bins(dev_blocks)
        logits = gen.f0.logits(gen.f0.pool(cond), bins, hp.prev_dropout)
        ce = F.cross_entropy(logits.transpose(1, 2), bins, reduction="none")
        out = {"f0_ce": (ce * note_blocks).sum() / note_blocks.sum().clamp_min(1)}
        # Timbre, teacher-forced with the true f0.
        params = gen.timbre_params(cond, inputs, batch["true_f0_hz"], float(hp.sample_rate), float(hp.frame_rate))
        audio = self.synth(params, inputs.instrument, batch["audio"].shape[-1], hp.sample_rate)
        out["spectral"] = self.loss(audio, batch["audio"])
        if "amplitude" in batch:
            out["params_l1"] = params_l1(params, SynthParams(batch["true_f0_hz"], batch["amplitude"],
                                                             batch["harmonic_distribution"], batch["noise_magnitudes"],
                                                             params.frame_rate))
        total = hp.f0_weight * out["f0_ce"] + hp.spectral_weight * out["spectral"] + hp.param_weight * out.get(
            "params_l1", 0.0)
        if hp.consistency_weight > 0 and "note_id" in batch:
            out["consistency"] = self.consistency_loss(inputs, batch["note_id"], batch["true_f0_hz"])
            total = total + hp.consistency_weight * out["consistency"]
        out["total"] = total
        return out

    def consistency_loss(self, inputs: GeneratorInputs, note_id: Tensor, f0_hz: Tensor) -> Tensor:
        """Mean |set - measured| of the counterfactual controls, in normalised units, over whole notes."""
        n_notes = int(note_id.max()) + 1
        if n_notes <= 0:
            return inputs.features.new_zeros(())
        n_controls = len(CONTROL_NAMES)
        present = note_lengths(note_id, n_notes) > 0
        real = segment_mean(inputs.features[..., :n_controls], note_id, n_notes)
        names = tuple(self.hparams.consistency_controls)
        wanted = counterfactual_controls(real, present, self.hparams.counterfactual_p, names=names)
        features = torch.where(note_id[..., None] >= 0,
                               torch.cat([to_frames(wanted, note_id), inputs.features[..., n_controls:]], -1),
                               inputs.features)
        edited = GeneratorInputs(features, inputs.held_pitch, inputs.in_note, inputs.instrument)
        params = self.model.timbre_params(self.model.conditioning(edited), edited, f0_hz,
                                          float(self.hparams.sample_rate), float(self.hparams.frame_rate))
        cols = [CONTROL_NAMES.index(n) for n in names]
        low, high = self._normalizer_rows(inputs.instrument, cols)
        raw = note_controls(params, note_id, n_notes)[..., [DIFFERENTIABLE_CONTROLS.index(n) for n in names]]
        measured = (raw - low[:, None]) / (high - low)[:, None]
        error = (measured - wanted[..., cols]).abs() * present[..., None]
        return error.sum() / (present.sum() * len(cols)).clamp_min(1)

    def _normalizer_rows(self, instrument: Tensor, cols: list[int]) -> tuple[Tensor, Tensor]:
        tensors = getattr(self, "_extra_tensors", {})
        if "control_normalizer.low" not in tensors:
            raise RuntimeError("consistency_weight > 0 needs the control normaliser (stage.normalizer_from)")
        low, high = (tensors[f"control_normalizer.{k}"].to(instrument.device)[instrument][:, cols]
                     for k in ("low", "high"))
        return low, high

    def _step(self, batch: dict, stage: str) -> Tensor:
        losses = self.losses(batch)
        for k, v in losses.items():
            self.log(f"{stage}/{k}", v, prog_bar=k in ("total", "spectral", "f0_ce"),
                     batch_size=batch["audio"].shape[0], sync_dist=stage != "train")
        return losses["total"]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "valid")

    def attach_normalizer(self, tensors: dict[str, Tensor]) -> None:
        """Ship the control normaliser the training controls were made with (exported with the weights)."""
        self._extra_tensors = dict(tensors)

    def initialize_from(self, analysis_path: str) -> None:
        """Take the (frozen) reverb bank from a trained analysis model file."""
        tensors, _, _ = load_weights(analysis_path, "analysis")
        load_into(self.synth, {k[len("synth."):]: v for k, v in tensors.items() if k.startswith("synth.")},
                  analysis_path)

    @torch.no_grad()
    def sample_audio(self, batch: dict) -> Tensor:
        params = self.model.generate(self.inputs_from_batch(batch), float(self.hparams.sample_rate),
                                     float(self.hparams.frame_rate))
        return self.synth(params, batch["instrument_id"], batch["audio"].shape[-1], self.hparams.sample_rate)

    def export(self, path) -> None:
        """Inference weights (generator + reverb bank) as safetensors, kind ``generator``."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"synth.{k}": v for k, v in self.synth.state_dict().items()}
        tensors |= getattr(self, "_extra_tensors", {})
        save_weights(path, tensors, self.export_kind, dict(self.hparams), extra={"global_step": self.global_step})

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.hparams.learning_rate)
        gamma = self.hparams.lr_decay_per_1k_steps ** (1 / 1000)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
