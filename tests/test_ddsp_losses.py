"""Multi-scale spectral loss: magenta ddsp parity (stored TF values), tf.signal.stft framing rebuilt in
numpy, gradients against torch.stft autograd, and basic loss behaviour."""
from pathlib import Path

import numpy as np
import pytest
import torch

from midi_ddsp.synthesis.ddsp.losses import MultiScaleSpectralLoss, stft_magnitude

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "ddsp_tf_reference_io.npz"  # magenta ddsp's outputs


@pytest.mark.parametrize("mag_weight, logmag_weight, key", [
    (1.0, 1.0, "spectral_loss_mag1_logmag1"),
    (1.0, 0.0, "spectral_loss_mag1"),
    (0.0, 1.0, "spectral_loss_logmag1"),
])
def test_parity_with_magenta_spectral_loss(mag_weight, logmag_weight, key):
    ref = np.load(REFERENCE)
    pred = torch.from_numpy(ref["spectral_loss_pred"])
    target = torch.from_numpy(ref["spectral_loss_target"])
    value = MultiScaleSpectralLoss(mag_weight=mag_weight, logmag_weight=logmag_weight)(pred, target).item()
    assert value == pytest.approx(float(ref[key]), rel=1e-3)


@pytest.mark.parametrize("size, n", [(64, 1000), (256, 1000), (2048, 1500)])
def test_framing_matches_tf_signal_stft_pad_end(size, n):
    # tf.signal.stft(pad_end=True): ceil(n / hop) frames, zero end padding, periodic Hann, rfft of fft_size.
    x = np.random.default_rng(0).standard_normal(n)
    hop = size // 4
    n_frames = -(-n // hop)
    padded = np.concatenate([x, np.zeros((n_frames - 1) * hop + size - n)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
    frames = np.stack([padded[i * hop : i * hop + size] for i in range(n_frames)])
    ref = np.abs(np.fft.rfft(frames * window, axis=-1))
    out = stft_magnitude(torch.from_numpy(x)[None], size)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("size, overlap", [(128, 0.75), (96, 0.5), (100, 0.6)])
def test_gradient_matches_torch_stft_autograd(size, overlap):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 777, dtype=torch.float64, generator=gen, requires_grad=True)
    mag = stft_magnitude(x, size, overlap)
    upstream = torch.randn(mag.shape, dtype=torch.float64, generator=gen)
    (grad_ours,) = torch.autograd.grad((mag * upstream).sum(), x)

    hop = int(size * (1 - overlap))
    padded = torch.nn.functional.pad(x, (0, (mag.shape[1] - 1) * hop + size - x.shape[-1]))
    ref = torch.stft(padded, size, hop, size, torch.hann_window(size, dtype=torch.float64), center=False,
                     return_complex=True).abs().transpose(1, 2)
    torch.testing.assert_close(mag, ref)
    (grad_ref,) = torch.autograd.grad((ref * upstream).sum(), x)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_identical_signals_give_zero_and_gradient_flows():
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(2, 4000, generator=gen) * 0.1
    loss_fn = MultiScaleSpectralLoss()
    assert loss_fn(target.clone(), target).item() == 0.0

    pred = (target + 0.05 * torch.randn(2, 4000, generator=gen)).requires_grad_(True)
    loss = loss_fn(pred, target)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with torch.no_grad():                                             # a small step downhill lowers the loss
        stepped = pred - 1e-4 * pred.grad / pred.grad.abs().max()
    assert loss_fn(stepped, target).item() < loss.item()


def test_silent_target_is_finite():
    pred = torch.zeros(1, 2000, requires_grad=True)
    loss = MultiScaleSpectralLoss()(pred, torch.randn(1, 2000))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


def test_full_output_terms_add_up():
    gen = torch.Generator().manual_seed(2)
    pred, target = torch.randn(2, 3000, generator=gen), torch.randn(2, 3000, generator=gen)
    full = MultiScaleSpectralLoss(mag_weight=2.0, logmag_weight=0.5, output="full")(pred, target)
    sizes = (2048, 1024, 512, 256, 128, 64)
    assert set(full) == {"loss", "mag", "logmag"} | {f"{t}_{s}" for t in ("mag", "logmag") for s in sizes}
    torch.testing.assert_close(full["mag"], sum(full[f"mag_{s}"] for s in sizes))
    torch.testing.assert_close(full["loss"], 2.0 * full["mag"] + 0.5 * full["logmag"])
    torch.testing.assert_close(full["loss"], MultiScaleSpectralLoss(mag_weight=2.0, logmag_weight=0.5)(pred, target))


def reference_loss(pred, target, sizes, mag_weight, logmag_weight, eps=1e-5):
    """The same loss written with torch.stft and plain autograd (slow, obviously correct)."""
    total = 0.0
    for size in sizes:
        hop = size // 4
        pad = (0, (-(-pred.shape[-1] // hop) - 1) * hop + size - pred.shape[-1])
        mags = [torch.stft(torch.nn.functional.pad(x, pad), size, hop, size,
                           torch.hann_window(size, dtype=x.dtype), center=False, return_complex=True).abs()
                for x in (pred, target)]
        total = total + mag_weight * (mags[0] - mags[1]).abs().mean()
        total = total + logmag_weight * (mags[0].clamp_min(eps).log() - mags[1].clamp_min(eps).log()).abs().mean()
    return total


def test_loss_gradients_match_autograd_reference():
    gen = torch.Generator().manual_seed(3)
    sizes = (256, 64)
    pred = (torch.randn(2, 1000, dtype=torch.float64, generator=gen) * 0.3).requires_grad_(True)
    target = (pred.detach() + 0.1 * torch.randn(2, 1000, dtype=torch.float64, generator=gen)).requires_grad_(True)
    target.data[:, 700:] = 0.0                                        # silent stretch: log floor + |Y| == 0
    ours = MultiScaleSpectralLoss(fft_sizes=sizes, mag_weight=1.0, logmag_weight=0.7)(pred, target)
    grads = torch.autograd.grad(ours, (pred, target))
    ref = reference_loss(pred, target, sizes, 1.0, 0.7)
    ref_grads = torch.autograd.grad(ref, (pred, target))
    torch.testing.assert_close(ours, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
