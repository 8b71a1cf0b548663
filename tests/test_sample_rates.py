"""The sample rate as a parameter of the whole stack: synthesis and loss at 48 kHz, sizes, mismatch errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from midi_ddsp.checkpoint import CheckpointError
from midi_ddsp.synthesis.ddsp.losses import MultiScaleSpectralLoss
from midi_ddsp.synthesis.ddsp.synths import HarmonicSynth
from midi_ddsp.synthesis.sizes import n_harmonics_for, n_noise_bands_for, reverb_taps, spectral_fft_sizes


def _spectrum_db(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    w = np.blackman(y.size)
    spec = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    return np.fft.rfftfreq(y.size, 1.0 / sr), 20 * np.log10(spec + 1e-12)


def test_48k_synth_puts_a_high_partial_where_asked():
    """Harmonic 31 of 500 Hz (15.5 kHz, above the old 8 kHz band) at its frequency and level."""
    sr, n = 48000, 48000
    dist = torch.zeros(1, 250, 40)
    dist[..., 0], dist[..., 30] = 0.5, 0.5
    y = HarmonicSynth(40, fade_start=None)(torch.full((1, 250, 1), 0.4), dist, torch.full((1, 250, 1), 500.0),
                                           n, sr)[0].double().numpy()
    freqs, db = _spectrum_db(y, sr)
    band = (freqs > 12000) & (freqs < 20000)
    peak = freqs[band][np.argmax(db[band])]
    assert peak == pytest.approx(15500.0, abs=1.5)
    assert db[band].max() == pytest.approx(20 * np.log10(0.2), abs=0.5)          # amplitude 0.4 * 0.5


def test_48k_glide_to_the_top_folds_nothing_back():
    """A glide whose upper harmonics cross Nyquist: no energy below 23 kHz that is not a real partial."""
    sr, frames = 48000, 500
    f0 = torch.linspace(2000.0, 7000.0, frames)[None, :, None]                     # harmonic 4 crosses 24 kHz
    dist = torch.full((1, frames, 8), 1 / 8)
    y = HarmonicSynth(8)(torch.full((1, frames, 1), 0.5), dist, f0, frames * sr // 250, sr)[0].double().numpy()
    # the last 0.2 s: f0 6.5-7 kHz, so real partials lie at 6.5-7, 13-14, 19.5-21 kHz; a fold of the 4th
    # (26-28 kHz) would land at 20-22 kHz, of the 5th at 13.5-16.5 kHz
    freqs, db = _spectrum_db(y[-9600:], sr)
    real = np.zeros_like(freqs, bool)
    for k in (1, 2, 3):
        real |= (freqs > k * 6400) & (freqs < k * 7100)
    assert db[~real & (freqs > 100)].max() < -90


def test_sizes_follow_the_rate():
    assert (n_harmonics_for(16000), n_noise_bands_for(16000)) == (60, 65)
    assert (n_harmonics_for(48000), n_noise_bands_for(48000)) == (96, 129)
    assert reverb_taps(48000, 1.0) == 48000 and reverb_taps(16000, 3.0) == 48000
    assert spectral_fft_sizes(16000) == (2048, 1024, 512, 256, 128, 64)
    assert spectral_fft_sizes(48000) == (6144, 3072, 1536, 768, 384, 192)


@pytest.mark.parametrize("sr", [16000, 48000])
def test_loss_at_each_rate_sees_its_whole_band(sr):
    """The rate-scaled loss barely moves for a change above 8 kHz at 16 kHz (there is no such band), but
    does at 48 kHz, about as much as for the same change below 8 kHz."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(sr) / sr
    base = 0.3 * torch.sin(2 * torch.pi * 440 * t)

    def partial(hz):
        return 0.05 * torch.sin(2 * torch.pi * hz * t + torch.rand(1, generator=g))

    loss = MultiScaleSpectralLoss(spectral_fft_sizes(sr))
    low = float(loss((base + partial(3000.0))[None], base[None]))
    assert low > 0.1
    if sr == 48000:
        high = float(loss((base + partial(15000.0))[None], base[None]))
        assert high > 0.5 * low


def test_config_rate_must_match_the_feature_cache(tmp_path):
    from midi_ddsp.training.config import ConfigError, load_config

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text(json.dumps({"config": {"sample_rate": 48000}, "pieces": []}))
    with pytest.raises(ConfigError, match="48000 Hz"):
        load_config(["stage=analysis", f"stage.data.cache_dir={cache}", "sample_rate=16000"])
    cfg = load_config(["stage=analysis", f"stage.data.cache_dir={cache}"])
    assert cfg.stage.task.sample_rate == 48000


def test_warm_start_across_rates_maps_the_head(tmp_path):
    from midi_ddsp.training.analysis_task import AnalysisTask
    from midi_ddsp.training.runner import warm_start

    old = AnalysisTask(n_mels=0, width=16, instrument_dim=4, sample_rate=16000, reverb_length=100)
    old.export(tmp_path / "a16.safetensors")
    new = AnalysisTask(n_mels=0, width=16, instrument_dim=4, sample_rate=48000, reverb_length=100)
    assert new.model.head.proj.weight.shape[0] == 1 + 96 + 129
    warm_start(new, str(tmp_path / "a16.safetensors"))
    w_old, w_new = old.model.head.proj.weight, new.model.head.proj.weight
    assert torch.equal(w_new[:61], w_old[:61])                       # amplitude + harmonics 1..60 kept
    assert torch.equal(w_new[61:97], w_old[60:61].expand(36, -1))    # 61..96 start as the old 60th
    # noise band 20 at 48 kHz is centred on 3750 Hz = old band 30 (125 Hz apart)
    assert torch.equal(w_new[1 + 96 + 20], w_old[1 + 60 + 30])
    body_old, body_new = old.model.state_dict(), new.model.state_dict()
    assert all(torch.equal(body_old[k], body_new[k]) for k in body_old if not k.startswith("head."))


def test_targets_from_a_model_of_another_rate_are_refused(tmp_path):
    from midi_ddsp.training.analysis_task import AnalysisTask
    from midi_ddsp.training.targets import check_rate

    AnalysisTask(n_mels=0, width=8, instrument_dim=4, sample_rate=16000, reverb_length=100).export(
        tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match="16000 Hz .* 48000 Hz"):
        check_rate(16000, 48000, tmp_path / "a.safetensors", "cache/x")


@pytest.mark.parametrize("rate,n_harmonics,n_noise_bands", [(16000, 60, 65), (48000, 96, 129)])
def test_a_model_folder_renders_at_its_own_rate_and_resamples_on_request(tmp_path, rate, n_harmonics, n_noise_bands):
    from midi_ddsp.note_level.notes import Note, NoteSequence, Performance
    from midi_ddsp.pipeline import MidiDDSP
    from midi_ddsp.random_models import write_random_checkpoints

    folder = write_random_checkpoints(tmp_path / f"m{rate}", width=8, f0_hidden=8, reverb_length=rate // 10,
                                      performance=False, sample_rate=rate, n_harmonics=n_harmonics,
                                      n_noise_bands=n_noise_bands)
    model = MidiDDSP.from_pretrained(folder)
    assert model.sample_rate == rate
    perf = Performance(NoteSequence((Note(69, 0.0, 0.5),), "flute"), np.full((1, 6), 0.5))
    own = model.render(perf, seed=0)
    assert own.sample_rate == rate
    other = model.render(perf, seed=0, sample_rate=44100)
    assert other.sample_rate == 44100
    assert abs(other.mix.shape[-1] / 44100 - own.mix.shape[-1] / rate) < 2e-3  # same duration, resampled


def test_the_shipped_model_folds_nothing_back_on_each_instruments_highest_note():
    """Every instrument's highest usual note (violin C8 4.2 kHz, ... tuba) through the shipped 48 kHz
    generator, harmonic part alone (the filtered noise is broadband by design), f0 held on the note, loud
    and bright: the generated distribution holds partials up to and past Nyquist; where each partial above
    Nyquist would fold back (``|48 kHz m - k f0|``), the spectrum stays 100 dB below the strongest partial.
    (Fold-backs within 60 Hz of a partial or of its frame-rate sidebands, +-250 Hz, about -70 dB, cannot be
    told from them and are left out; a tone at -80 dB put on a fold-back frequency is found.)"""
    from dataclasses import replace

    from midi_ddsp.instruments import INSTRUMENTS
    from midi_ddsp.model_files import DEFAULT_CHECKPOINTS, GENERATOR_FILE
    from midi_ddsp.note_level.notes import Note, NoteSequence, Performance
    from midi_ddsp.pipeline import MidiDDSP

    if not (DEFAULT_CHECKPOINTS / GENERATOR_FILE).is_file():
        pytest.skip("no shipped weights")
    model = MidiDDSP.from_pretrained()
    sr = model.sample_rate
    n_harm = model.synth.harmonic.n_harmonics

    def fold_back_db(x, f0_hz):
        seg = x[int(0.4 * sr):int(0.9 * sr)]
        spec = np.abs(np.fft.rfft(seg * np.blackman(seg.size)))
        freqs = np.fft.rfftfreq(seg.size, 1 / sr)
        db = 20 * np.log10(np.maximum(spec, 1e-30) / spec.max())
        k = np.arange(1, n_harm + 1)
        above = k[k * f0_hz > sr / 2] * f0_hz
        folds = np.abs(sr * np.round(above / sr) - above)
        near_partial = np.arange(1, 200)[:, None] * f0_hz + 250.0 * np.arange(-4, 5)[None]
        folds = [f for f in folds if np.abs(near_partial - f).min() > 60.0 and f > 30.0]
        return max((db[np.abs(freqs - f) < 10.0].max() for f in folds), default=None), folds

    checked = 0
    for inst in INSTRUMENTS:
        seq = NoteSequence((Note(inst.high, 0.1, 1.1, 100, inst.name),), inst.name)
        perf = Performance(seq, np.full((1, 6), 0.9))
        f0_hz = 440.0 * 2 ** ((inst.high - 69) / 12)
        n = model.n_frames_for([perf])
        p = model.synth_params([perf], seed=0, f0_hz=[np.full(n, f0_hz, np.float32)])[0]
        p = replace(p, noise_magnitudes=torch.zeros_like(p.noise_magnitudes))
        x = model.audio([p], inst.name, reverb=False)[0].astype(np.float64)
        worst, folds = fold_back_db(x, f0_hz)
        if worst is None:
            continue
        checked += 1
        assert worst < -100, (inst.name, worst)
        t = np.arange(x.size) / sr
        planted, _ = fold_back_db(x + 1e-4 * np.abs(x).max() * np.sin(2 * np.pi * folds[0] * t), f0_hz)
        assert planted > -90, inst.name
    assert checked >= 8   # the others' fold-back frequencies all lie on or next to their own partials
