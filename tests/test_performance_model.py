"""The performance prior's model and sampling: shapes, rests, temperature, seeds, the sampler's
distribution, and the safetensors round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midi_ddsp.checkpoint import CheckpointError
from midi_ddsp.note_level.notes import Note, NoteSequence, Performance
from midi_ddsp.performance.dataset import N_FEATURES, collate_pieces, featurize, pad_item
from midi_ddsp.performance.model import PerformanceModel
from midi_ddsp.performance.sampling import (
    load_model, predict_performance, predict_performances, predict_token_controls, save_model, sequence_tokens)

TINY = dict(pitch_dim=8, instrument_dim=4, feature_dim=8, encoder_hidden=16, decoder_hidden=16, head_hidden=16)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = PerformanceModel(**TINY).eval()
    with torch.no_grad():  # sharper, less uniform output distributions than at initialisation
        m.out_w.mul_(4.0)
    return m


def _voice(n=12, instrument="violin", rest_after=(4,), start=0.0):
    notes, t = [], start
    for i in range(n):
        notes.append(Note(60 + (i * 5) % 12, t, t + 0.45, 40 + (7 * i) % 80))
        t += 0.5 + (0.4 if i in rest_after else 0.0)
    return NoteSequence(notes, instrument)


def _batch(seqs):
    toks = [sequence_tokens(s) for s in seqs]
    T = max(len(t) for t in toks)
    items = []
    for t in toks:
        p, f = featurize(t)
        items.append(pad_item(p, f, np.random.default_rng(0).random((len(t), 6)), t.is_rest, t.instrument_id, T))
    return collate_pieces(items), toks


def test_shapes(model):
    batch, _ = _batch([_voice(), _voice(7, "flute")])
    B, T = batch["pitch"].shape
    assert batch["features"].shape == (B, T, N_FEATURES)
    logits = model(batch["pitch"], batch["features"], batch["instrument"], batch["controls"], batch["mask"])
    assert logits.shape == (B, T, 6, 32)
    reg = PerformanceModel(head="regression", **TINY)
    assert reg(batch["pitch"], batch["features"], batch["instrument"], batch["controls"]).shape == (B, T, 6)
    out = model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"], batch["mask"],
                         temperature=1.0, noise=torch.rand(B, T, 6))
    assert out.shape == (B, T, 6)
    losses = model.loss(batch)
    assert set(losses) == {"loss", "nll", "mae"} and losses["nll"].ndim == 0


def test_rests_and_padding_give_zeros_and_performance_shape(model):
    seqs = [_voice(12, rest_after=(2, 6)), _voice(5, rest_after=())]
    toks = [sequence_tokens(s) for s in seqs]
    assert toks[0].is_rest.sum() == 2
    for temperature in (0.0, 1.0):
        out = predict_token_controls(model, toks, temperature, seed=0)
        assert np.all(out[0][toks[0].is_rest] == 0)
        assert np.all(np.abs(out[0][~toks[0].is_rest]).sum(1) > 0)
        assert out[1].shape == (len(toks[1]), 6)
    batch, _ = _batch(seqs)
    out = model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"], batch["mask"],
                         temperature=1.0, noise=torch.rand(*batch["pitch"].shape, 6))
    assert torch.all(out[1, len(toks[1]):] == 0)                    # padding
    perf = predict_performance(model, seqs[0], seed=1)
    assert isinstance(perf, Performance) and perf.controls.shape == (12, 6)
    assert np.all((perf.controls >= 0) & (perf.controls <= 1))
    empty = predict_performances(model, [NoteSequence([], "violin"), seqs[1]], seed=2)
    assert len(empty[0]) == 0 and empty[1].controls.shape == (5, 6)


def test_temperature_and_seeds(model):
    seq = _voice(20)
    t0 = [predict_performance(model, seq, temperature=0.0, seed=s).controls for s in (None, 1, 2)]
    assert np.array_equal(t0[0], t0[1]) and np.array_equal(t0[0], t0[2])
    a = predict_performance(model, seq, temperature=1.0, seed=5).controls
    b = predict_performance(model, seq, temperature=1.0, seed=5).controls
    c = predict_performance(model, seq, temperature=1.0, seed=6).controls
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.02
    # Unseeded calls differ too.
    assert not np.array_equal(predict_performance(model, seq).controls, predict_performance(model, seq).controls)
    # A voice's sample does not depend on the other voices of the batch: voice i uses seed + i.
    other = _voice(31, "cello")
    both = predict_performances(model, [other, seq], temperature=1.0, seed=4)
    np.testing.assert_allclose(both[1].controls, predict_performance(model, seq, 1.0, 5).controls,
                               atol=1e-4)
    np.testing.assert_allclose(both[0].controls, predict_performance(model, other, 1.0, 4).controls, atol=1e-4)
    # Lower temperature pulls a take towards the temperature-0 one (same seed).
    half = predict_performance(model, seq, temperature=0.5, seed=5).controls
    assert np.abs(half - t0[0]).mean() < np.abs(a - t0[0]).mean()
    with pytest.raises(ValueError, match="temperature"):
        predict_performance(model, seq, temperature=-1.0)


def test_quantile_matches_piecewise_uniform_reference(model):
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(50, 32)) * 2).float()
    q = torch.from_numpy(rng.random((50, 1))).float()
    got = model.quantile(logits, q)[:, 0].numpy()
    p = torch.softmax(logits, -1).double().numpy()
    w = 1 / 31
    edges = np.concatenate([[-w / 2], np.arange(32) * w + w / 2])    # bin i spans centre i*w +- w/2
    for i in range(50):
        cdf = np.concatenate([[0], np.cumsum(p[i])])
        ref = np.clip(np.interp(q[i, 0].item(), cdf, edges), 0, 1)
        assert abs(got[i] - ref) < 1e-4
    # A point mass at bin 0 returns exactly 0 for quantiles inside its mass.
    spike = torch.full((1, 32), -30.0)
    spike[0, 0] = 10.0
    assert model.quantile(spike, torch.tensor([[0.3]])).item() == 0.0


def test_first_control_samples_follow_the_predicted_distribution(model):
    # One note repeated over a batch: the volume samples' histogram must match softmax(logits) of that note.
    seq = NoteSequence([Note(67, 0.0, 1.0, 90)], "violin")
    tok = sequence_tokens(seq)
    n = 2500
    out = predict_token_controls(model, [tok] * n, temperature=1.0, seed=list(range(n)))
    volume = np.array([o[0, 0] for o in out])
    pitch, feats = featurize(tok)
    b = collate_pieces([pad_item(pitch, feats, np.zeros((1, 6)), tok.is_rest, tok.instrument_id, 1)])
    with torch.no_grad():
        logits = model(b["pitch"], b["features"], b["instrument"], b["controls"])[0, 0, 0]
    p = torch.softmax(logits, -1).numpy()
    counts = np.bincount(model.to_bins(torch.from_numpy(volume)).numpy(), minlength=32)
    expected = p * n
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert chi2 < 2.5 * keep.sum(), (chi2, keep.sum())                # dof ~ keep.sum() - 1


def test_checkpoint_round_trip(model, tmp_path):
    seq = _voice(15)
    path = save_model(model, tmp_path / "perf.safetensors", rest_threshold_s=0.1)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.rest_threshold_s == 0.1
    for temperature, seed in ((0.0, None), (1.0, 3)):
        np.testing.assert_array_equal(predict_performance(model, seq, temperature, seed).controls,
                                      predict_performance(loaded, seq, temperature, seed).controls)
    with pytest.raises(CheckpointError, match="expected 'generator'"):
        from midi_ddsp.checkpoint import load_weights

        load_weights(path, kind="generator")
    half = load_model(save_model(model, tmp_path / "half.safetensors", half=True))
    np.testing.assert_allclose(predict_performance(half, seq, 0.0).controls,
                               predict_performance(model, seq, 0.0).controls, atol=0.05)
    reg = PerformanceModel(head="regression", **TINY).eval()
    reg2 = load_model(save_model(reg, tmp_path / "reg.safetensors"))
    r1 = predict_performance(reg2, seq, 1.0, seed=1).controls
    np.testing.assert_array_equal(r1, predict_performance(reg2, seq, 1.0, seed=2).controls)  # deterministic
    np.testing.assert_array_equal(r1, predict_performance(reg, seq, 0.0).controls)


def test_fast_generation_loop_matches_the_teacher_forced_graph(model):
    # Feeding the generated controls back through the (training) forward pass must give the same
    # conditional distributions the generation loop sampled from: at temperature 0 every value is the
    # median of its teacher-forced distribution.
    batch, toks = _batch([_voice(14, rest_after=(3, 8)), _voice(9, "oboe")])
    out = model.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"], batch["mask"],
                         temperature=0.0)
    with torch.no_grad():
        logits = model(batch["pitch"], batch["features"], batch["instrument"], out, batch["mask"])
    notes = batch["mask"] & ~batch["is_rest"]
    medians = torch.stack([model.quantile(logits[notes][:, k], torch.full((int(notes.sum()), 1), 0.5))[:, 0]
                           for k in range(6)], -1)
    torch.testing.assert_close(medians, out[notes], atol=1e-5, rtol=0)
    reg = PerformanceModel(head="regression", **TINY).eval()
    out = reg.generate(batch["pitch"], batch["features"], batch["instrument"], batch["is_rest"], batch["mask"])
    with torch.no_grad():
        pred = reg(batch["pitch"], batch["features"], batch["instrument"], out, batch["mask"]).clamp(0, 1)
    torch.testing.assert_close(pred[notes], out[notes], atol=1e-5, rtol=0)
