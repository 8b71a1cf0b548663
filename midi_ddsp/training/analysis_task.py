"""Training of the analysis model: the LightningModule around :class:`AnalysisModel`."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..checkpoint import save_weights
from ..synthesis.analysis import AnalysisModel
from ..synthesis.ddsp.features import a_weighted_loudness, log_mel
from ..synthesis.ddsp.losses import MultiScaleSpectralLoss
from ..synthesis.params import SynthParams, harmonic_db_l1, params_l1
from ..synthesis.sizes import DEFAULT_SAMPLE_RATE
from ..synthesis.synthesizer import Synthesizer
from .rates import fill_rate_sizes, load_reverb_bank


class AnalysisTask(pl.LightningModule):
    """Trains an AnalysisModel (and the reverb bank) by resynthesis with the multi-scale spectral loss.

    The reverb bank is the one place where a free gain can hide: with 48000 taps each moved by Adam at the
    full learning rate, the impulse responses grow faster than the network's amplitude and end up carrying
    the sound (a long, loud "room" that colours the timbre and smears notes into each other, even on dry
    recordings). So the bank learns at ``reverb_lr_scale`` times the learning rate and pays
    ``reverb_l1`` times the mean L1 norm of its impulse responses: a real room still shows up, a dry corpus
    gets a near-dry reverb.

    Batches are dicts: ``audio`` [B, samples], ``true_f0_hz`` [B, frames, 1] (the f0 to synthesize with:
    ground truth where known, else the tracker's), ``instrument_id`` [B] (long), and for the synthetic loss
    ``note_index`` [B, frames] (-1 on rests). Loudness and log-mel are computed from the audio inside the step.

    A corpus of sampled instruments barely varies brightness or attack noise at a given pitch, so a model
    trained by resynthesis alone learns to read them from pitch and instrument and misses them in audio that
    does vary. ``synthetic_weight`` > 0 adds an inversion loss on audio whose answer is known: the model's
    own (detached) parameters for the batch, with each note's harmonic distribution tilted by ``k ** g``
    (``g`` uniform in +-``synthetic_tilt``, k the harmonic number) and its noise scaled by up to
    +-``synthetic_noise_db``, are synthesized, analysed again, and the L1 distance to them is added
    (harmonic distribution summed over harmonics, amplitude and noise in dB / 80, as the generator's
    parameter loss).

    Sizes default from ``sample_rate`` (:mod:`midi_ddsp.synthesis.sizes`). When batches carry measured
    targets (``amplitude``, ``harmonic_distribution``, ``noise_magnitudes``: the generator's data module),
    ``param_weight`` and ``harmonic_db_weight`` add a supervised parameter loss; ``spectral_weight`` 0 then
    skips the synthesizer (fast supervised training).
    """

    export_kind = "analysis"

    def __init__(self, n_mels: int = 64, width: int = 128, n_instruments: int = 13, instrument_dim: int = 32,
                 n_harmonics: int | None = None, n_noise_bands: int | None = None,
                 reverb_length: int | None = None, sample_rate: int = DEFAULT_SAMPLE_RATE, frame_rate: int = 250,
                 learning_rate: float = 1e-3, lr_decay_per_1k_steps: float = 0.98, reverb_lr_scale: float = 0.1,
                 reverb_l1: float = 0.1, synthetic_weight: float = 0.0, synthetic_tilt: float = 1.0,
                 synthetic_noise_db: float = 12.0, spectral_weight: float = 1.0, param_weight: float = 0.0,
                 harmonic_db_weight: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        n_harmonics, n_noise_bands, reverb_length, fft_sizes = fill_rate_sizes(self.hparams)
        self.model = AnalysisModel(n_mels, width, n_instruments, instrument_dim, n_harmonics, n_noise_bands)
        self.synth = Synthesizer(n_harmonics, n_noise_bands, n_instruments, reverb_length)
        self.loss = MultiScaleSpectralLoss(fft_sizes)

    def features(self, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        hp = self.hparams
        with torch.no_grad():
            loudness = a_weighted_loudness(audio, hp.sample_rate, frame_rate=hp.frame_rate)
            mel = log_mel(audio, hp.sample_rate, frame_rate=hp.frame_rate, n_mels=hp.n_mels) if hp.n_mels else None
        return loudness, mel

    def forward(self, audio: Tensor, f0_hz: Tensor, instrument: Tensor) -> SynthParams:
        loudness, mel = self.features(audio)
        n = min(f0_hz.shape[1], loudness.shape[1])
        return self.model(f0_hz[:, :n], loudness[:, :n], instrument, None if mel is None else mel[:, :n],
                          float(self.hparams.sample_rate), float(self.hparams.frame_rate))

    def resynthesize(self, batch: dict, reverb: bool = True) -> Tensor:
        params = self(batch["audio"], batch["true_f0_hz"], batch["instrument_id"])
        return self.synth(params, batch["instrument_id"], batch["audio"].shape[-1], self.hparams.sample_rate,
                          reverb=reverb)

    def _step(self, batch: dict, stage: str) -> Tensor:
        hp = self.hparams
        params = self(batch["audio"], batch["true_f0_hz"], batch["instrument_id"])
        n = batch["audio"].shape[0]
        sync = stage != "train"
        total = params.amplitude.new_zeros(())
        if hp.spectral_weight > 0:
            audio = self.synth(params, batch["instrument_id"], batch["audio"].shape[-1], hp.sample_rate)
            loss = self.loss(audio, batch["audio"])
            self.log(f"{stage}/spectral_loss", loss, prog_bar=True, batch_size=n, sync_dist=sync)
            reverb_norm = self.synth.reverb.irs.abs().sum(-1).mean()
            self.log(f"{stage}/reverb_l1_norm", reverb_norm, batch_size=n, sync_dist=sync)
            total = total + hp.spectral_weight * loss + hp.reverb_l1 * reverb_norm
        if "amplitude" in batch and (hp.param_weight > 0 or hp.harmonic_db_weight > 0):
            target = SynthParams(batch["true_f0_hz"], batch["amplitude"], batch["harmonic_distribution"],
                                 batch["noise_magnitudes"], params.frame_rate)
            supervised = {"params_l1": (hp.param_weight, params_l1), "harmonic_db": (hp.harmonic_db_weight,
                                                                                    harmonic_db_l1)}
            for name, (weight, fn) in supervised.items():
                if weight > 0:
                    value = fn(params, target)
                    self.log(f"{stage}/{name}", value, prog_bar=True, batch_size=n, sync_dist=sync)
                    total = total + weight * value
        if hp.synthetic_weight > 0 and "note_index" in batch:
            synthetic = self.synthetic_loss(params, batch)
            self.log(f"{stage}/synthetic_l1", synthetic, prog_bar=True, batch_size=n, sync_dist=sync)
            total = total + hp.synthetic_weight * synthetic
        self.log(f"{stage}/total", total, batch_size=n, sync_dist=sync)
        return total

    def synthetic_loss(self, params: SynthParams, batch: dict) -> Tensor:
        """L1 between per-note perturbed parameters and the analysis of their synthesized audio."""
        hp = self.hparams
        target = perturb_timbre(params.map(torch.Tensor.detach), batch["note_index"], hp.synthetic_tilt, hp.synthetic_noise_db)
        with torch.no_grad():
            audio = self.synth(target, batch["instrument_id"], batch["audio"].shape[-1], hp.sample_rate)
        got = self(audio, target.f0_hz, batch["instrument_id"])
        return params_l1(got, target)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "valid")

    def sample_audio(self, batch: dict) -> Tensor:
        return self.resynthesize(batch)

    def initialize_from(self, analysis_path: str) -> None:
        """Take the reverb bank from a trained analysis model file, resampled to this rate (with
        ``warm_start``: resume a whole model)."""
        load_reverb_bank(self.synth, analysis_path, int(self.hparams.sample_rate))

    def export(self, path) -> None:
        """Inference weights (model + reverb bank) as safetensors, kind ``analysis``."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"synth.{k}": v for k, v in self.synth.state_dict().items()}
        save_weights(path, tensors, self.export_kind, dict(self.hparams), extra={"global_step": self.global_step})

    def configure_optimizers(self):
        hp = self.hparams
        reverb = list(self.synth.reverb.parameters())
        others = [p for p in self.parameters() if all(p is not r for r in reverb)]
        opt = torch.optim.Adam([{"params": others}, {"params": reverb, "lr": hp.learning_rate * hp.reverb_lr_scale}],
                               lr=hp.learning_rate)
        gamma = self.hparams.lr_decay_per_1k_steps ** (1 / 1000)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def perturb_timbre(params: SynthParams, note_index: Tensor, tilt: float, noise_db: float,
                   generator: torch.Generator | None = None) -> SynthParams:
    """Per note (``note_index`` [B, frames], -1 on rests), tilt the harmonic distribution by ``k ** g`` with
    ``g ~ U(-tilt, tilt)`` (renormalised; harmonics at 0 stay 0) and scale the noise by ``U(-noise_db,
    noise_db)`` dB. Rests are left as they are."""
    b, f = note_index.shape
    n_notes = int(note_index.max()) + 1 if note_index.numel() else 0
    draws = torch.rand(b, max(n_notes, 1), 2, generator=generator, device=note_index.device) * 2 - 1
    idx = note_index.clamp_min(0)[..., None].expand(-1, -1, 2)
    per_frame = torch.where(note_index[..., None] >= 0, draws.gather(1, idx), torch.zeros(()))
    k = torch.arange(1, params.harmonic_distribution.shape[-1] + 1, dtype=params.harmonic_distribution.dtype)
    harm = params.harmonic_distribution * k ** (tilt * per_frame[..., :1])
    harm = harm / harm.sum(-1, keepdim=True).clamp_min(1e-12)
    noise = params.noise_magnitudes * 10.0 ** (noise_db * per_frame[..., 1:] / 20.0)
    return SynthParams(params.f0_hz, params.amplitude, harm, noise, params.frame_rate)
