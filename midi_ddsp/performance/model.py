"""The performance prior: note tokens -> six expression controls per note.

:class:`PerformanceModel` is a bidirectional GRU encoder over the score context followed by an
autoregressive GRU decoder over tokens. Two output heads share that body:

- ``head="bins"`` (the prior): each control is quantised into ``n_bins`` bins over ``control_range``
  (values outside are clamped), bin ``i`` centred on ``lo + i / (n_bins - 1) * (hi - lo)``, so both ends are
  exact. The six controls of a note are predicted one after another (volume first), each head seeing the
  decoder state and the controls already chosen for that note, so the joint distribution of a note's
  controls is modelled, not only the marginals. Inside a bin the density is taken as uniform; a value is
  drawn by inverting that piecewise-linear CDF at a quantile ``q`` (values falling in the half bins beyond
  the range are clamped to it, so a point mass at 0, e.g. "no vibrato", stays exactly 0).

  Temperature ``t``: for ``t <= 1`` the quantile is pulled towards the median, ``q = 0.5 + t (u - 0.5)``
  with ``u`` uniform, so ``t = 1`` samples the model's distribution exactly, ``t = 0`` gives the
  conditional *median* of every control in turn (deterministic), and one seed at different temperatures
  gives the same take with more or less deviation from it. For ``t > 1`` the logits are divided by ``t``
  (flatter distributions). Why the median and not the arg-max bin at ``t = 0``: with a point mass (most notes
  have exactly zero vibrato) the arg-max bin picks "no vibrato" even where 70% of the probability says
  "vibrato", and the arg-max depends on the number of bins; the median has neither problem, equals the most
  likely value of a symmetric unimodal distribution and minimises the expected absolute error (its weak
  spot: between two equally likely modes it falls in between).
- ``head="regression"``: a deterministic regressor of the same size trained with MSE (the baseline (b),
  MIDI-DDSP's formulation).

Rest tokens always output zeros. Tensors are ``[batch, tokens, channels]``; see
:mod:`midi_ddsp.performance.dataset` for the inputs.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from midi_ddsp.instruments import INSTRUMENTS
from midi_ddsp.note_level.notes import N_CONTROLS

from .dataset import N_FEATURES, N_PITCHES

HEADS = ("bins", "regression")


class PerformanceModel(nn.Module):
    """Score encoder + autoregressive decoder + stochastic (or regression) head.

    Args:
        head: ``"bins"`` (categorical per control, sequential within a note) or ``"regression"`` (MSE).
        n_bins: bins per control (``"bins"`` only).
        control_range: (low, high) of the normalised controls; values outside are clamped.
        n_instruments: rows of the instrument embedding.
        pitch_dim, instrument_dim, feature_dim: input embedding widths.
        encoder_hidden, encoder_layers: bidirectional GRU size (per direction) and depth.
        decoder_hidden, decoder_layers: autoregressive GRU size and depth.
        head_hidden: width of the output MLPs.
        dropout: dropout on encoder outputs, on the head's shared features and between GRU layers.
    """

    def __init__(self, head: str = "bins", n_bins: int = 32, control_range: Sequence[float] = (0.0, 1.0),
                 n_instruments: int = len(INSTRUMENTS), pitch_dim: int = 32, instrument_dim: int = 16,
                 feature_dim: int = 64, encoder_hidden: int = 128, encoder_layers: int = 1,
                 decoder_hidden: int = 128, decoder_layers: int = 1, head_hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
        self.config: dict[str, Any] = dict(
            head=head, n_bins=int(n_bins), control_range=[float(control_range[0]), float(control_range[1])],
            n_instruments=int(n_instruments), pitch_dim=int(pitch_dim), instrument_dim=int(instrument_dim),
            feature_dim=int(feature_dim), encoder_hidden=int(encoder_hidden), encoder_layers=int(encoder_layers),
            decoder_hidden=int(decoder_hidden), decoder_layers=int(decoder_layers), head_hidden=int(head_hidden),
            dropout=float(dropout))
        self.head_type, self.n_bins = head, int(n_bins)
        self.lo, self.hi = float(control_range[0]), float(control_range[1])
        self.pitch_embed = nn.Embedding(N_PITCHES, pitch_dim)
        self.instrument_embed = nn.Embedding(n_instruments, instrument_dim)
        self.feature_proj = nn.Linear(N_FEATURES, feature_dim)
        in_width = pitch_dim + instrument_dim + feature_dim
        self.input_mlp = nn.Sequential(nn.Linear(in_width, 2 * encoder_hidden), nn.GELU())
        self.encoder = nn.GRU(2 * encoder_hidden, encoder_hidden, num_layers=encoder_layers, batch_first=True,
                              bidirectional=True, dropout=dropout if encoder_layers > 1 else 0.0)
        self.enc_dropout = nn.Dropout(dropout)
        enc_width = 2 * encoder_hidden
        self.decoder = nn.GRU(enc_width + N_CONTROLS + 1, decoder_hidden, num_layers=decoder_layers,
                              batch_first=True, dropout=dropout if decoder_layers > 1 else 0.0)
        self.shared = nn.Sequential(nn.Linear(decoder_hidden + enc_width, head_hidden), nn.GELU())
        self.head_dropout = nn.Dropout(dropout)
        if head == "bins":
            k, h = N_CONTROLS, head_hidden
            # Per-control MLPs, stacked: control k sees the shared features and controls 0..k-1 of its note.
            self.ctx_w = nn.Parameter(torch.randn(k, h, h) / h ** 0.5)
            self.prev_w = nn.Parameter(torch.randn(k, k, h) / k ** 0.5)
            self.hid_b = nn.Parameter(torch.zeros(k, h))
            self.out_w = nn.Parameter(torch.randn(k, h, self.n_bins) / h ** 0.5)
            self.out_b = nn.Parameter(torch.zeros(k, self.n_bins))
            self.register_buffer("causal", torch.tril(torch.ones(k, k), diagonal=-1), persistent=False)
        else:
            self.out = nn.Linear(head_hidden, N_CONTROLS)

    # -- body ------------------------------------------------------------------------------------------------
    def encode(self, pitch: Tensor, features: Tensor, instrument: Tensor, mask: Tensor | None = None) -> Tensor:
        """[B, T] pitch, [B, T, N_FEATURES] features, [B] instrument ids, [B, T] bool mask -> [B, T, 2*H]."""
        B, T = pitch.shape
        x = torch.cat([self.pitch_embed(pitch), self.instrument_embed(instrument)[:, None].expand(B, T, -1),
                       self.feature_proj(features)], dim=-1)
        x = self.input_mlp(x)
        if mask is not None and not bool(mask.all()):
            lengths = mask.sum(1).clamp_min(1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            y, _ = self.encoder(packed)
            y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)
        else:
            y, _ = self.encoder(x)
        return self.enc_dropout(y)

    def _decode_teacher_forced(self, enc: Tensor, controls: Tensor, prev_dropout: float = 0.0) -> Tensor:
        """Decoder + shared head features with the true previous controls: [B, T, head_hidden]."""
        B, T, _ = enc.shape
        prev = torch.cat([controls.new_zeros(B, 1, N_CONTROLS), controls[:, :-1]], dim=1)
        unknown = torch.zeros(B, T, 1, device=enc.device, dtype=enc.dtype)
        unknown[:, 0] = 1.0
        if self.training and prev_dropout > 0:
            drop = (torch.rand(B, T, 1, device=enc.device) < prev_dropout).to(enc.dtype)
            prev = prev * (1 - drop)
            unknown = torch.maximum(unknown, drop)
        y, _ = self.decoder(torch.cat([enc, prev, unknown], dim=-1))
        return self.head_dropout(self.shared(torch.cat([y, enc], dim=-1)))

    # -- bins head -------------------------------------------------------------------------------------------
    def to_bins(self, values: Tensor) -> Tensor:
        """Control values -> bin indices (clamped to the range)."""
        x = (values.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo)
        return torch.round(x * (self.n_bins - 1)).long()

    def bin_values(self, bins: Tensor) -> Tensor:
        return self.lo + bins.to(torch.float32) / (self.n_bins - 1) * (self.hi - self.lo)

    @property
    def bin_width(self) -> float:
        return (self.hi - self.lo) / (self.n_bins - 1)

    def quantile(self, logits: Tensor, q: Tensor) -> Tensor:
        """Values at quantiles ``q`` [B, 1] of the bin distributions ``logits`` [B, n_bins], with uniform
        density inside each bin (clamped to the control range). Returns [B, 1].

        The inverse CDF is the number of bins below ``q`` plus the filled fraction of the bin it falls in:
        ``sum_i clamp((q - cdf_before_i) / p_i, 0, 1)`` bin widths from the lower edge of bin 0.
        """
        p = torch.softmax(logits, dim=-1)
        before = p.cumsum(-1) - p
        filled = ((q - before) / p.clamp_min(1e-12)).clamp_(0.0, 1.0).sum(-1, keepdim=True)
        return (self.lo + (filled - 0.5) * self.bin_width).clamp_(self.lo, self.hi)

    def _bin_logits(self, shared: Tensor, controls: Tensor) -> Tensor:
        """Teacher-forced logits [B, T, 6, n_bins]; control k sees controls[..., :k] of the same token."""
        B, T, H = shared.shape
        K, J = self.ctx_w.shape[0], self.ctx_w.shape[2]
        ctx = shared.reshape(B * T, H) @ self.ctx_w.permute(1, 0, 2).reshape(H, K * J)
        prev_w = (self.causal[:, :, None] * self.prev_w).permute(1, 0, 2).reshape(K, K * J)
        z = F.gelu((ctx + controls.reshape(B * T, K) @ prev_w).view(B * T, K, J) + self.hid_b)
        logits = torch.bmm(z.transpose(0, 1), self.out_w).transpose(0, 1) + self.out_b   # [B*T, K, n_bins]
        return logits.reshape(B, T, K, self.n_bins)

    # -- training --------------------------------------------------------------------------------------------
    def forward(self, pitch: Tensor, features: Tensor, instrument: Tensor, controls: Tensor,
                mask: Tensor | None = None, prev_dropout: float = 0.0) -> Tensor:
        """Teacher-forced outputs: logits [B, T, 6, n_bins] (bins) or values [B, T, 6] (regression)."""
        controls = controls.clamp(self.lo, self.hi)
        enc = self.encode(pitch, features, instrument, mask)
        shared = self._decode_teacher_forced(enc, controls, prev_dropout)
        if self.head_type == "bins":
            return self._bin_logits(shared, controls)
        return self.out(shared)

    def loss(self, batch: dict[str, Tensor], prev_dropout: float = 0.0) -> dict[str, Tensor]:
        """Per-note-control losses over note tokens (rests and padding excluded).

        Returns ``{"loss": ..., "nll" (bins, nats per control) or "mse" (regression), "mae"}``; ``mae`` is
        the teacher-forced error of the expected value (bins) or of the prediction (regression).
        """
        target = batch["controls"].clamp(self.lo, self.hi)
        out = self(batch["pitch"], batch["features"], batch["instrument"], target, batch["mask"], prev_dropout)
        notes = (batch["mask"] & ~batch["is_rest"]).to(target.dtype)         # [B, T]
        denom = notes.sum().clamp_min(1) * N_CONTROLS
        if self.head_type == "bins":
            logp = out.log_softmax(-1)
            nll = -logp.gather(-1, self.to_bins(target)[..., None])[..., 0]  # [B, T, 6]
            nll = (nll * notes[..., None]).sum() / denom
            expected = (logp.exp() * self.bin_values(torch.arange(self.n_bins, device=out.device))).sum(-1)
            mae = ((expected - target).abs() * notes[..., None]).sum() / denom
            return {"loss": nll, "nll": nll, "mae": mae.detach()}
        err = out - target
        mse = (err.square() * notes[..., None]).sum() / denom
        mae = (err.abs() * notes[..., None]).sum() / denom
        return {"loss": mse, "mse": mse, "mae": mae.detach()}

    @torch.no_grad()
    def log_prob_bins(self, batch: dict[str, Tensor]) -> Tensor:
        """Exact teacher-forced log-probabilities of the true bins, [B, T, 6] (bins head; eval mode)."""
        target = batch["controls"].clamp(self.lo, self.hi)
        logits = self(batch["pitch"], batch["features"], batch["instrument"], target, batch["mask"])
        return logits.log_softmax(-1).gather(-1, self.to_bins(target)[..., None])[..., 0]

    # -- generation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pitch: Tensor, features: Tensor, instrument: Tensor, is_rest: Tensor,
                 mask: Tensor | None = None, temperature: float = 1.0, noise: Tensor | None = None,
                 n_steps: int | None = None) -> Tensor:
        """Autoregressive controls [B, T, 6] (zeros on rests and padding).

        Args:
            temperature: >= 0 (see the module docstring); 0 gives the conditional median of every control
                (deterministic). Ignored by the regression head.
            noise: [B, T, 6] uniforms in [0, 1), one per control of every token, pre-drawn by the caller so
                that every voice's sample depends only on its own seed. Required when temperature > 0 with
                the bins head.
            n_steps: decode only the first ``n_steps`` tokens (the rest stay zero; the encoder still reads
                all ``T``).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        B, T = pitch.shape
        sample = self.head_type == "bins" and temperature > 0
        if sample and noise is None:
            raise ValueError("noise is required when sampling (temperature > 0)")
        enc = self.encode(pitch, features, instrument, mask)
        keep = (~is_rest if mask is None else (mask & ~is_rest)).to(enc.dtype)[..., None]   # [B, T, 1]
        # Everything that depends only on the encoder is computed for all tokens at once; the loop over
        # tokens does a few small matmuls per step (GRU cells called directly, no module overhead).
        D = self.decoder.hidden_size
        w_shared, b_shared = self.shared[0].weight, self.shared[0].bias
        shared_enc = F.linear(enc, w_shared[:, D:], b_shared)                    # [B, T, Hh]
        w_shared_h = w_shared[:, :D].t()
        cells = [(getattr(self.decoder, f"weight_ih_l{i}"), getattr(self.decoder, f"weight_hh_l{i}"),
                  getattr(self.decoder, f"bias_ih_l{i}"), getattr(self.decoder, f"bias_hh_l{i}"))
                 for i in range(self.decoder.num_layers)]
        hs = [enc.new_zeros(B, D) for _ in cells]
        out = enc.new_zeros(B, T, N_CONTROLS)
        prev = enc.new_zeros(B, N_CONTROLS)
        unknown = enc.new_ones(B, 1)
        if self.head_type == "bins":
            K, J = self.ctx_w.shape[0], self.ctx_w.shape[2]
            ctx_w = self.ctx_w.permute(1, 0, 2).reshape(-1, K * J)
            hid_b = self.hid_b.reshape(-1)
            prev_w = self.causal[:, :, None] * self.prev_w                      # [K, K, J]
            logit_scale = 1.0 / max(temperature, 1.0)
            if sample:
                quantiles = 0.5 + min(temperature, 1.0) * (noise.to(enc.dtype) - 0.5)   # [B, T, 6]
            else:
                quantiles = enc.new_full((B, T, N_CONTROLS), 0.5)
        for t in range(T if n_steps is None else min(int(n_steps), T)):
            x = torch.cat([enc[:, t], prev, unknown], dim=-1)
            for i, (w_ih, w_hh, b_ih, b_hh) in enumerate(cells):
                x = hs[i] = torch.gru_cell(x, hs[i], w_ih, w_hh, b_ih, b_hh)
            shared = F.gelu(torch.addmm(shared_enc[:, t], x, w_shared_h))
            if self.head_type == "bins":
                ctx = torch.addmm(hid_b, shared, ctx_w).view(B, K, J)
                c = enc.new_zeros(B, N_CONTROLS)
                q = quantiles[:, t]
                for k in range(N_CONTROLS):
                    z = F.gelu(torch.addmm(ctx[:, k], c, prev_w[k]))
                    logits = torch.addmm(self.out_b[k], z, self.out_w[k])
                    if logit_scale != 1.0:
                        logits = logits * logit_scale
                    c[:, k] = self.quantile(logits, q[:, k:k + 1])[:, 0]
            else:
                c = self.out(shared).clamp(self.lo, self.hi)
            prev = c * keep[:, t]
            out[:, t] = prev
            if t == 0:
                unknown = torch.zeros_like(unknown)
        return out


class InstrumentMeans:
    """Baseline (a): every note of an instrument gets that instrument's mean controls (from the train split);
    its likelihood is the instrument's per-control histogram (add-0.5 smoothing) over the prior's bins.

    Args:
        mean: [n_instruments, 6]; hist: [n_instruments, 6, n_bins] counts
        (see :func:`midi_ddsp.performance.dataset.instrument_statistics`).
    """

    def __init__(self, mean: np.ndarray, hist: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        h = np.asarray(hist, dtype=np.float64) + 0.5
        self.log_p = np.log(h / h.sum(-1, keepdims=True))

    def predict(self, instrument_id: int, is_rest: np.ndarray) -> np.ndarray:
        """[T, 6] controls for one voice's tokens (zeros on rests)."""
        return np.where(np.asarray(is_rest)[:, None], 0.0, self.mean[int(instrument_id)][None])

    def log_prob_bins(self, instrument_id: int, bins: np.ndarray) -> np.ndarray:
        """[N, 6] log-probabilities of bin indices ``bins`` [N, 6]."""
        lp = self.log_p[int(instrument_id)]
        return lp[np.arange(N_CONTROLS)[None], np.asarray(bins)]


__all__ = ["HEADS", "PerformanceModel", "InstrumentMeans"]
