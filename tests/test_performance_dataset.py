"""Note tokens, features, windows and the data-contract loader of the performance prior."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from midi_ddsp.instruments import by_id
from midi_ddsp.performance.dataset import (
    FEATURE_NAMES, N_FEATURES, REST_PITCH, featurize, load_notes_split,
    instrument_statistics, load_piece, load_split, read_split, tokenize, tokenize_windows,
    write_synthetic_corpus)
from midi_ddsp.performance.datamodule import PerformanceDataModule
from midi_ddsp.performance.neighbourhood import Neighbourhood, NeighbourhoodWindows

F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _melody():
    # Gaps: 0 (legato), 0.05 s (staccato: stays a note feature), 0.3 s (a rest token), 0.
    pitch = np.array([60, 62, 64, 65, 67])
    onset = np.array([0.0, 0.5, 1.05, 1.8, 2.3])
    offset = np.array([0.5, 1.0, 1.5, 2.3, 3.0])
    velocity = np.array([80, 90, 100, 70, 60])
    controls = np.arange(30, dtype=np.float32).reshape(5, 6) / 30 + 0.01
    return pitch, onset, offset, velocity, controls


def test_tokenize_inserts_rests_only_for_long_gaps():
    pitch, onset, offset, velocity, controls = _melody()
    tok = tokenize(pitch, onset, offset, velocity, 0, controls, rest_threshold_s=0.1)
    assert len(tok) == 6
    np.testing.assert_array_equal(tok.is_rest, [False, False, False, True, False, False])
    np.testing.assert_array_equal(tok.pitch, [60, 62, 64, REST_PITCH, 65, 67])
    np.testing.assert_array_equal(tok.note_index, [0, 1, 2, -1, 3, 4])
    np.testing.assert_allclose(tok.duration_s, [0.5, 0.5, 0.45, 0.3, 0.5, 0.7])
    np.testing.assert_array_equal(tok.controls[3], 0)
    np.testing.assert_array_equal(tok.controls[tok.note_index >= 0], controls)
    np.testing.assert_allclose(tok.gap_before_s[[1, 2, 4]], [0.0, 0.05, 0.3])
    np.testing.assert_allclose(tok.gap_after_s[[0, 1, 2]], [0.0, 0.05, 0.3])
    # Phrases split at the rest: notes 0-2 and 3-4.
    pos, start, end = (tok.invariant[:, F[k] - 6] for k in ("phrase_pos", "phrase_start", "phrase_end"))
    np.testing.assert_allclose(pos[[0, 1, 2, 4, 5]], [0, 0.5, 1, 0, 1])
    np.testing.assert_array_equal(start[[0, 1, 2, 4, 5]], [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(end[[0, 1, 2, 4, 5]], [0, 0, 1, 0, 1])
    # Intervals do not cross the rest.
    interval_prev = tok.invariant[:, F["interval_prev"] - 6]
    np.testing.assert_allclose(interval_prev[[0, 1, 2, 4, 5]], np.array([0, 2, 2, 0, 2]) / 12)
    ioi = np.array([0.5, 0.55, 0.75, 0.5, 0.7])                   # last note: its duration
    np.testing.assert_allclose(tok.invariant[tok.note_index >= 0, F["ioi_ratio"] - 6][1:],
                               np.log2(ioi[1:] / ioi[:-1]) / 3, rtol=1e-5)
    # No rests at all with a large threshold.
    assert not tokenize(pitch, onset, offset, velocity, 0, controls, rest_threshold_s=1.0).is_rest.any()


def test_tokenize_overlaps_and_empty():
    tok = tokenize([60, 62], [0.0, 0.4], [0.5, 1.0], [100, 100], 0)
    np.testing.assert_allclose(tok.duration_s, [0.4, 0.6])        # first note trimmed at the next onset
    assert not tok.is_rest.any() and tok.gap_after_s[0] == 0
    empty = tokenize([], [], [], [], 0)
    assert len(empty) == 0 and featurize(empty)[1].shape == (0, N_FEATURES)


def test_featurize_augmentation():
    pitch, onset, offset, velocity, controls = _melody()
    tok = tokenize(pitch, onset, offset, velocity, 2, controls)
    p0, f0 = featurize(tok)
    p1, f1 = featurize(tok, transpose=3, stretch=1.1)
    assert f0.shape == (6, N_FEATURES) and f0.dtype == np.float32
    np.testing.assert_array_equal(p1[~tok.is_rest], p0[~tok.is_rest] + 3)
    assert p1[3] == REST_PITCH
    np.testing.assert_allclose(f1[:, 6:], f0[:, 6:])               # invariant features unchanged
    np.testing.assert_allclose(f1[:, F["log_duration"]] - f0[:, F["log_duration"]], np.log(1.1) / 2, rtol=1e-5)
    cello = by_id(2)
    np.testing.assert_allclose(f1[~tok.is_rest, F["pitch_in_range"]] - f0[~tok.is_rest, F["pitch_in_range"]],
                               3 / (cello.high - cello.low), rtol=1e-5)
    np.testing.assert_allclose(f0[~tok.is_rest, F["velocity"]], velocity / 127, rtol=1e-6)


def test_synthetic_corpus_follows_the_contract(tmp_path):
    d = write_synthetic_corpus(tmp_path / "c", n_pieces=6, notes_per_piece=40, seed=1)
    split = read_split(d)
    assert sorted(split.values()).count("train") >= 3 and set(split.values()) == {"train", "valid", "test"}
    for stem in split:
        z = np.load(d / f"{stem}.npz")
        assert z["pitch"].dtype == np.int64 and z["onset_s"].dtype == np.float64
        assert z["velocity"].dtype == np.int64 and z["instrument_id"].shape == () and z["controls"].dtype == np.float32
        n = len(z["pitch"])
        assert z["controls"].shape == (n, 6) and np.all(z["offset_s"] > z["onset_s"])
        assert np.all(np.diff(z["onset_s"]) > 0) and np.all(z["offset_s"][:-1] <= z["onset_s"][1:] + 1e-9)


def test_neighbourhood_windows_and_datamodule(tmp_path):
    d = write_synthetic_corpus(tmp_path / "c", n_pieces=6, notes_per_piece=40, seed=1)
    dm = PerformanceDataModule(str(d), hop=2, batch_size=5)
    batch = next(iter(dm.train_dataloader()))
    T = batch["pitch"].shape[1]
    assert batch["features"].shape == (5, T, N_FEATURES) and batch["controls"].shape == (5, T, 6)
    assert batch["instrument"].shape == (5,) and batch["mask"].any(1).all()
    assert torch.all(batch["controls"][batch["is_rest"]] == 0)
    assert torch.all((batch["pitch"] >= 0) & (batch["pitch"] <= REST_PITCH))
    # Every note's window holds the notes starting within 2 s before / after it (at most 24 / 12 of them),
    # tokenised on their own: the same tokens as tokenising that slice of the voice.
    pieces = load_notes_split(d, "train")
    nb = Neighbourhood(lookback_s=2.0, lookahead_s=2.0, max_before=24, max_after=12)
    ds = NeighbourhoodWindows(pieces, nb, hop=1)
    assert len(ds) == sum(len(p) for p in pieces)
    p = pieces[0]
    for j in (0, 7, len(p) - 1):
        lo, hi = nb.bounds(p.onset_s)
        inside = np.flatnonzero((p.onset_s >= p.onset_s[j] - 2.0) & (p.onset_s <= p.onset_s[j] + 2.0))
        inside = inside[(inside >= j - 24) & (inside <= j + 12)]
        assert (lo[j], hi[j]) == (inside[0], inside[-1] + 1)
        tok = tokenize(p.pitch[lo[j]:hi[j]], p.onset_s[lo[j]:hi[j]], p.offset_s[lo[j]:hi[j]], p.velocity[lo[j]:hi[j]],
                       p.instrument_id, p.controls[lo[j]:hi[j]])
        item = ds[j]
        pitch, feats = featurize(tok)
        assert torch.equal(item["pitch"], torch.from_numpy(pitch))
        torch.testing.assert_close(item["features"], torch.from_numpy(feats))
        torch.testing.assert_close(item["controls"], torch.from_numpy(np.clip(tok.controls, 0, 1)))
    # The note caps bind in a dense passage: 40 notes 10 ms apart.
    lo, hi = nb.bounds(np.arange(40) * 0.01)
    assert lo[30] == 6 and hi[10] == 23
    # Augmentation: pitches shift together by at most 3 semitones; controls are unchanged.
    aug = NeighbourhoodWindows(pieces[:1], nb, augment=True, stretch=(1.0, 1.0))
    plain = NeighbourhoodWindows(pieces[:1], nb)
    a, b = aug[3], plain[3]
    notes = ~b["is_rest"]
    shift = (a["pitch"][notes] - b["pitch"][notes]).unique()
    assert len(shift) == 1 and abs(int(shift)) <= 3
    torch.testing.assert_close(a["controls"], b["controls"])


def test_windows_tokenised_at_once_equal_each_slice_tokenised_alone(tmp_path):
    d = write_synthetic_corpus(tmp_path / "c", n_pieces=3, notes_per_piece=60, seed=4)
    rng = np.random.default_rng(0)
    for p in load_notes_split(d, "train"):
        n = len(p)
        lo = np.concatenate([[0, 0, n - 1], rng.integers(0, n - 1, 30)])
        hi = np.concatenate([[n, 1, n], np.minimum(lo[3:] + rng.integers(1, 20, 30), n)])
        flat, starts = tokenize_windows(p.pitch, p.onset_s, p.offset_s, p.velocity, p.instrument_id, lo, hi,
                                        p.controls, 0.1)
        assert starts[0] == 0 and starts[-1] == len(flat)
        for r in range(len(lo)):
            one = tokenize(p.pitch[lo[r]:hi[r]], p.onset_s[lo[r]:hi[r]], p.offset_s[lo[r]:hi[r]],
                           p.velocity[lo[r]:hi[r]], p.instrument_id, p.controls[lo[r]:hi[r]], 0.1)
            part = flat.slice(starts[r], starts[r + 1])
            for f in ("pitch", "duration_s", "velocity", "gap_before_s", "gap_after_s", "is_rest", "invariant",
                      "note_index", "controls"):
                np.testing.assert_allclose(getattr(part, f), getattr(one, f), atol=1e-12, err_msg=f)


def test_instrument_statistics_and_errors(tmp_path):
    d = write_synthetic_corpus(tmp_path / "c", n_pieces=8, notes_per_piece=30, instruments=(0, 4), seed=2)
    pieces = load_split(d, "train")
    stats = instrument_statistics(pieces)
    for inst in (0, 4):
        c = np.concatenate([np.load(d / f"{s}.npz")["controls"] for s, v in read_split(d).items()
                            if v == "train" and int(np.load(d / f"{s}.npz")["instrument_id"]) == inst])
        np.testing.assert_allclose(stats["mean"][inst], np.clip(c, 0, 1).mean(0), rtol=1e-5)
        assert stats["hist"][inst].sum() == 6 * len(c)
    assert np.allclose(stats["mean"][7], stats["mean"][[0, 4]].T @ stats["count"][[0, 4]] / stats["count"].sum())
    (tmp_path / "bad").mkdir()
    with pytest.raises(FileNotFoundError, match="split.json"):
        read_split(tmp_path / "bad")
    np.savez(tmp_path / "bad" / "x.npz", pitch=np.array([60]))
    with pytest.raises(ValueError, match="missing arrays"):
        load_piece(tmp_path / "bad" / "x.npz")
    (tmp_path / "bad" / "split.json").write_text(json.dumps({"x": "train", "y": "test"}))
    with pytest.raises(FileNotFoundError, match="without .npz"):
        load_split(tmp_path / "bad", "test")
