"""band_powers / band_db_l1: the synthesizer's expected band powers against the power measured in its audio."""
import math

import numpy as np
import pytest
import torch

from midi_ddsp.synthesis.params import SynthParams, band_db_l1, band_powers, ltas_db_l1
from midi_ddsp.synthesis.synthesizer import Synthesizer

SR, FR, FRAMES = 48000, 250.0, 250


def _params(f0: float, amplitude: float, dist: list[float], noise_db: np.ndarray) -> SynthParams:
    h = len(dist)
    d = torch.tensor(dist, dtype=torch.float32).expand(1, FRAMES, h)
    noise = torch.from_numpy((10 ** (noise_db / 20)).astype(np.float32)).expand(1, FRAMES, noise_db.size)
    return SynthParams(torch.full((1, FRAMES, 1), f0), torch.full((1, FRAMES, 1), amplitude), d.clone(),
                       noise.clone(), FR)


def _measured_bands(audio: np.ndarray, lowest: float = 44.0, per_octave: int = 2) -> np.ndarray:
    spec = np.abs(np.fft.rfft(audio)) ** 2 / audio.size ** 2 * 2          # one-sided power per bin
    spec[0] /= 2
    freqs = np.fft.rfftfreq(audio.size, 1 / SR)
    n = int(math.ceil(math.log2(SR / 2 / lowest) * per_octave))
    idx = np.clip(np.floor(np.log2(np.maximum(freqs, 1e-3) / lowest) * per_octave), 0, n - 1).astype(int)
    return np.bincount(idx, weights=spec, minlength=n)


def test_band_powers_match_the_rendered_audio():
    """Three harmonics and a noise floor shaped like a low-pass: each half-octave band's expected power within
    1 dB of the power measured in the synthesizer's dry output from 88 Hz up; the two bands below, narrower
    than the noise filter's resolution (256 taps: ~190 Hz), within 5 dB."""
    k = 129
    noise_db = np.linspace(-10, -50, k)
    p = _params(440.0, 0.5, [0.6, 0.3, 0.1], noise_db)
    synth = Synthesizer(n_harmonics=3, n_noise_bands=k, n_instruments=1, reverb_length=16)
    audio = synth(p, torch.zeros(1, dtype=torch.long), FRAMES * SR // int(FR), SR, reverb=False,
                  generator=torch.Generator().manual_seed(0))[0].numpy().astype(np.float64)
    audio = audio[SR // 10:]                                                  # past the onset
    got = band_powers(p, SR)[0, 0].numpy()
    want = _measured_bands(audio)
    err = np.abs(10 * np.log10(got / want))
    assert got.size == 19 and err[2:].max() < 1.0 and err[:2].max() < 5.0


def test_band_db_l1_sees_weak_upper_partials_and_passes_gradients():
    """Partials 40 dB below the strongest, where the harmonic-profile floor no longer looks: the band loss
    grows when they rise 20 dB, is 0 for identical parameters, and has a gradient on the distribution."""
    dist = np.r_[1.0, 0.5, np.full(30, 1e-3)]
    base = _params(220.0, 0.3, list(dist / dist.sum()), np.full(129, -120.0))
    louder = dist.copy()
    louder[2:] *= 10
    raised = _params(220.0, 0.3, list(louder / louder.sum()), np.full(129, -120.0))
    assert band_db_l1(base, base, SR).item() == pytest.approx(0.0, abs=1e-6)
    assert band_db_l1(raised, base, SR).item() > 0.02
    raised.harmonic_distribution.requires_grad_(True)
    band_db_l1(raised, base, SR).backward()
    assert raised.harmonic_distribution.grad.abs().sum() > 0


def test_ltas_db_l1_weighs_bands_by_power_over_the_clip():
    """A 1 kHz partial with a 8 kHz partial at -40 dB throughout (target) vs the 8 kHz partial at -20 dB in a
    tenth of the frames only: the long-term 8 kHz band is 10 dB too loud (0.1 x 100 = 10x the target's
    power), the 1 kHz band within 0.01 dB, all other bands empty in both; the loss is 10 dB over the
    half-octave bands (44 Hz to Nyquist). Frame by frame the error is 20 dB in a tenth of the frames and the
    floor elsewhere, which band_db_l1 weighs alike. The gradient reaches the harmonic distribution."""
    n_bands = int(math.ceil(math.log2(SR / 2 / 44.0) * 2))
    f0 = torch.full((1, FRAMES, 1), 1000.0)
    amp = torch.full((1, FRAMES, 1), 0.5)
    want_d = torch.zeros(1, FRAMES, 8)
    want_d[..., 0], want_d[..., 7] = 1.0, 10 ** (-40 / 20)
    got_d = torch.zeros(1, FRAMES, 8)
    got_d[..., 0] = 1.0
    got_d[:, ::10, 7] = 10 ** (-20 / 20)
    got_d.requires_grad_(True)
    noise = torch.zeros(1, FRAMES, 129)
    want = SynthParams(f0, amp, want_d, noise, FR)
    got = SynthParams(f0, amp, got_d, noise, FR)
    loss = ltas_db_l1(got, want, SR)
    assert 100 * loss.item() * n_bands == pytest.approx(10.0, abs=0.02)
    assert ltas_db_l1(want, want, SR).item() == 0.0
    loss.backward()
    assert got_d.grad is not None and got_d.grad[..., 7].abs().sum() > 0
