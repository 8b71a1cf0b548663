"""Training of the synthesis generator: the LightningModule around :class:`SynthesisGenerator`."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checkpoint import save_weights
from ..note_level.notes import CONTROL_NAMES
from ..synthesis.ddsp.functional import hz_to_midi
from ..synthesis.ddsp.losses import MultiScaleSpectralLoss
from ..synthesis.generator import GeneratorInputs, SynthesisGenerator
from ..synthesis.params import SynthParams, band_db_l1, harmonic_db_l1, ltas_db_l1, params_l1
from ..synthesis.sizes import DEFAULT_SAMPLE_RATE
from ..synthesis.synthesizer import Synthesizer
from .rates import fill_rate_sizes, load_reverb_bank
from .control_consistency import (DIFFERENTIABLE_CONTROLS, counterfactual_controls, note_controls, note_lengths,
                                  segment_mean, to_frames)


class GeneratorTask(pl.LightningModule):
    """Trains the SynthesisGenerator: f0 cross-entropy + spectral loss of its render against the real audio
    (+ an optional L1 on the analysis model's parameters, which speeds up early training on small budgets).

    Batch dict: ``audio`` [B, samples], ``true_f0_hz`` [B, frames, 1] (ground-truth or tracked f0),
    ``features``, ``held_pitch``, ``in_note`` (see GeneratorInputs), ``instrument_id`` [B]; optional targets
    ``amplitude`` [B, frames, 1], ``harmonic_distribution`` [B, frames, H], ``noise_magnitudes`` [B, frames, K].
    The reverb is taken from a trained analysis task (``initialize_from``; resampled when its rate differs)
    or starts as a near-dry room (-45 dB), and is kept frozen.

    Sizes default from ``sample_rate`` (:mod:`midi_ddsp.synthesis.sizes`): ``n_harmonics``,
    ``n_noise_bands``, ``reverb_length`` (taps) and the spectral loss's FFT sizes. ``harmonic_db_weight``
    adds :func:`~midi_ddsp.synthesis.params.harmonic_db_l1`, the harmonic profile's error in dB (weak
    partials, such as a bassoon's fundamental, count as much as strong ones) down to ``harmonic_db_floor`` dB;
    ``band_db_weight`` adds :func:`~midi_ddsp.synthesis.params.band_db_l1`, the half-octave spectral
    envelope of harmonics and noise together (the bands where many weak partials or a noise floor add up);
    ``ltas_db_weight`` adds :func:`~midi_ddsp.synthesis.params.ltas_db_l1`, the same bands power-summed over
    each clip (its long-term spectrum, where a few loud frames weigh as they are heard).
    ``envelope_points`` > 0 gives the partials a learned gain over frequency
    (:class:`~midi_ddsp.synthesis.heads.FrequencyEnvelope`: resonances and top-end cuts fixed in Hz).
    ``spectral_weight`` 0 skips
    the synthesizer entirely (parameter-only training, several times faster at 48 kHz).

    ``consistency_weight`` > 0 adds the counterfactual control-consistency loss
    (:mod:`~midi_ddsp.synthesis.control_consistency`): each whole note of the clip (batch ``note_id``
    [B, frames]) gets random values of the ``consistency_controls`` (any of volume, vol_fluc, brightness,
    attack) with probability ``counterfactual_p`` each, and the L1 distance between those and the controls
    measured back from the generated parameters (normalised with the attached control normaliser) is added.
    """

    export_kind = "generator"

    def __init__(self, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32, n_harmonics: int | None = None,
                 n_noise_bands: int | None = None, f0_hidden: int = 128, f0_bins: int = 401,
                 f0_max_semitones: float = 4.0, f0_block: int = 5, reverb_length: int | None = None,
                 sample_rate: int = DEFAULT_SAMPLE_RATE, frame_rate: int = 250,
                 learning_rate: float = 1e-3, lr_decay_per_1k_steps: float = 0.98, f0_weight: float = 1.0,
                 spectral_weight: float = 1.0, param_weight: float = 1.0, prev_dropout: float = 0.3,
                 consistency_weight: float = 0.0, counterfactual_p: float = 0.5,
                 consistency_controls: tuple[str, ...] = DIFFERENTIABLE_CONTROLS,
                 harmonic_db_weight: float = 0.0, harmonic_db_floor: float = -60.0,
                 band_db_weight: float = 0.0, ltas_db_weight: float = 0.0, envelope_points: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        n_harmonics, n_noise_bands, reverb_length, fft_sizes = fill_rate_sizes(self.hparams)
        unknown = set(consistency_controls) - set(DIFFERENTIABLE_CONTROLS)
        if unknown:
            raise ValueError(f"consistency_controls: {sorted(unknown)} cannot be measured differentiably; "
                             f"choose from {list(DIFFERENTIABLE_CONTROLS)}")
        self.model = SynthesisGenerator(width, n_instruments, instrument_dim, n_harmonics, n_noise_bands,
                                        f0_hidden, f0_bins, f0_max_semitones, f0_block, envelope_points)
        self.synth = Synthesizer(n_harmonics, n_noise_bands, n_instruments, reverb_length)
        with torch.no_grad():                           # a near-dry room (-45 dB) unless initialize_from loads one
            self.synth.reverb.irs.mul_(0.1)
        self.synth.requires_grad_(False)
        self.loss = MultiScaleSpectralLoss(fft_sizes)

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
        if hp.spectral_weight > 0:
            audio = self.synth(params, inputs.instrument, batch["audio"].shape[-1], hp.sample_rate)
            out["spectral"] = self.loss(audio, batch["audio"])
        if "amplitude" in batch:
            target = SynthParams(batch["true_f0_hz"], batch["amplitude"], batch["harmonic_distribution"],
                                 batch["noise_magnitudes"], params.frame_rate)
            out["params_l1"] = params_l1(params, target)
            if hp.harmonic_db_weight > 0:
                out["harmonic_db"] = harmonic_db_l1(params, target, floor_db=hp.harmonic_db_floor)
            if hp.band_db_weight > 0:
                out["band_db"] = band_db_l1(params, target, float(hp.sample_rate))
            if hp.ltas_db_weight > 0:
                out["ltas_db"] = ltas_db_l1(params, target, float(hp.sample_rate))
        total = (hp.f0_weight * out["f0_ce"] + hp.spectral_weight * out.get("spectral", 0.0)
                 + hp.param_weight * out.get("params_l1", 0.0) + hp.harmonic_db_weight * out.get("harmonic_db", 0.0)
                 + hp.band_db_weight * out.get("band_db", 0.0) + hp.ltas_db_weight * out.get("ltas_db", 0.0))
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
            self.log(f"{stage}/{k}", v, prog_bar=k in ("total", "spectral", "f0_ce", "harmonic_db", "band_db"),
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
        """Take the (frozen) reverb bank from a trained analysis model file (resampled to this rate)."""
        load_reverb_bank(self.synth, analysis_path, int(self.hparams.sample_rate))

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
