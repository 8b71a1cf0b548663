"""Sample-rate bookkeeping for training tasks: derived sizes, and reverb banks moved between rates."""
from __future__ import annotations

from ..checkpoint import CheckpointError, load_weights
from ..synthesis.sizes import n_harmonics_for, n_noise_bands_for, reverb_taps, spectral_fft_sizes


def fill_rate_sizes(hparams) -> tuple[int, int, int, tuple[int, ...]]:
    """Fill ``n_harmonics``, ``n_noise_bands`` and ``reverb_length`` left None in a task's hparams from its
    ``sample_rate`` (so the exported config holds the real sizes). Returns them and the loss FFT sizes."""
    rate = int(hparams["sample_rate"])
    if hparams.get("n_harmonics") is None:
        hparams["n_harmonics"] = n_harmonics_for(rate)
    if hparams.get("n_noise_bands") is None:
        hparams["n_noise_bands"] = n_noise_bands_for(rate)
    if hparams.get("reverb_length") is None:
        hparams["reverb_length"] = reverb_taps(rate)
    return (int(hparams["n_harmonics"]), int(hparams["n_noise_bands"]), int(hparams["reverb_length"]),
            spectral_fft_sizes(rate))


def load_reverb_bank(synth, path: str, sample_rate: int) -> None:
    """Copy the reverb bank of an exported analysis model into ``synth``, resampled from the file's rate to
    ``sample_rate`` (Hz) and cut or zero-padded to the bank's length."""
    import numpy as np
    import torch

    from ..io.audio import resample

    tensors, config, _ = load_weights(path, "analysis")
    irs = tensors.get("synth.reverb.irs")
    if irs is None:
        raise CheckpointError(f"{path}: no reverb bank (synth.reverb.irs) in the file")
    own = synth.reverb.irs
    if irs.shape[0] != own.shape[0]:
        raise CheckpointError(f"{path}: reverb bank has {irs.shape[0]} impulse responses, expected {own.shape[0]}")
    rate = int(config["sample_rate"])
    x = irs.numpy()
    if rate != sample_rate:
        x = resample(x, rate, sample_rate)
    out = np.zeros(tuple(own.shape), np.float32)
    n = min(out.shape[1], x.shape[1])
    out[:, :n] = x[:, :n]
    with torch.no_grad():
        own.copy_(torch.from_numpy(out))


def resize_head(weight, n_harmonics: tuple[int, int], n_bands: tuple[int, int], rates: tuple[int, int]):
    """Map a SynthParamsHead's output rows (or bias) trained at one rate to another rate's sizes.

    Rows are ``[amplitude, harmonics 1..H, noise bands 0..K-1]``. The amplitude row is kept; harmonic ``k``
    takes the old row ``k`` (the highest old one beyond the old count): a harmonic number means the same at
    every rate; noise band ``j`` takes the old band nearest its centre frequency (the top old band above the
    old Nyquist). ``n_harmonics``, ``n_bands`` and ``rates`` are (old, new) pairs.
    """
    import torch

    (h_old, h_new), (k_old, k_new), (sr_old, sr_new) = n_harmonics, n_bands, rates
    harm = torch.clamp(torch.arange(1, h_new + 1), max=h_old)
    centre_hz = torch.arange(k_new, dtype=torch.float64) / (k_new - 1) * (sr_new / 2)
    band = torch.clamp(torch.round(centre_hz / (sr_old / 2) * (k_old - 1)).long(), max=k_old - 1)
    rows = torch.cat([torch.zeros(1, dtype=torch.long), harm, 1 + h_old + band])
    return weight[rows].clone()
