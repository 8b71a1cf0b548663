"""Tiny corpus built inside the test -> feature cache -> datasets/datamodules (needs FluidSynth + music21)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from midi_ddsp.data.render import renderer_available

pytestmark = pytest.mark.skipif(not renderer_available(),
                                reason="fluidsynth + a GM soundfont are needed "
                                       "(apt-get install fluidsynth fluid-soundfont-gm)")
pytest.importorskip("music21")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from midi_ddsp.data.cache import CacheConfig, cache_features
    from midi_ddsp.data.corpus import CorpusConfig, build_corpus

    root = tmp_path_factory.mktemp("tiny")
    ccfg = CorpusConfig(out_dir=str(root / "corpus"), seed=7, minutes_per_instrument=0.25,
                        instruments=["flute", "cello"], collections={"bach": 2}, n_workers=1,
                        min_piece_s=7.0, max_piece_s=10.0, progress=False, sample_rate=16000)
    summary = build_corpus(ccfg)
    kcfg = CacheConfig(source="corpus", source_dir=ccfg.out_dir, out_dir=str(root / "cache"), n_workers=1,
                       progress=False, sample_rate=16000)
    csum = cache_features(kcfg)
    return {"root": root, "ccfg": ccfg, "kcfg": kcfg, "summary": summary, "cache_summary": csum}


def test_corpus_built_with_manifest(tiny):
    s = tiny["summary"]
    assert s["n_ok"] == s["n_pieces"] >= 2
    assert set(s["minutes_per_instrument"]) == {"flute", "cello"}
    assert all(m >= 0.25 for m in s["minutes_per_instrument"].values())
    man = json.loads((tiny["root"] / "corpus" / "manifest.json").read_text())
    for e in man["pieces"]:
        wav = tiny["root"] / "corpus" / e["files"]["wav"]
        info = sf.info(str(wav))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - e["duration_s"]) < 1e-3
        assert not e["melody"].lower().startswith(("beethoven", "mozart", "haydn"))


@pytest.mark.slow
def test_corpus_is_reproducible_and_resumes(tiny, tmp_path):
    from midi_ddsp.data.corpus import build_corpus
    from dataclasses import replace

    root = tiny["root"] / "corpus"
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")}
    s = build_corpus(tiny["ccfg"])  # resume: nothing to render
    assert s["n_ok"] == tiny["summary"]["n_ok"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")} == before
    # same seed, fresh directory -> identical audio and annotations
    cfg2 = replace(tiny["ccfg"], out_dir=str(tmp_path / "again"))
    build_corpus(cfg2)
    for p in before:
        q = tmp_path / "again" / p.relative_to(root)
        a, _ = sf.read(str(p))
        b, _ = sf.read(str(q))
        np.testing.assert_array_equal(a, b)


def test_cache_round_trip(tiny):
    from midi_ddsp.data.cache import load_features, load_manifest
    from midi_ddsp.data.performer import PerformedPiece

    cs = tiny["cache_summary"]
    assert cs["n_ok"] == tiny["summary"]["n_ok"] and cs["n_skipped"] == 0
    cache_dir = tiny["kcfg"].out_dir
    for e in load_manifest(cache_dir):
        f = load_features(cache_dir, e)
        n = int(f["n_samples"])
        F = n // 64
        for k in ("f0_hz", "f0_confidence", "loudness_db", "true_f0_hz", "frame_pitch", "frame_onset",
                  "frame_offset", "frame_note_index", "frame_position", "true_expression_db"):
            assert f[k].shape == (F,), k
        corpus = tiny["root"] / "corpus"
        perf = PerformedPiece.load(corpus / "pieces" / ("fl" if e["instrument"] == "flute" else "vc")
                                   / f"{e['id']}.npz")
        np.testing.assert_array_equal(f["note_pitch"], perf.notes["pitch"])
        np.testing.assert_allclose(f["note_onset_s"], perf.notes["onset_s"])
        np.testing.assert_array_equal(f["true_f0_hz"], perf.curves["f0_hz"][:F])
        assert int(f["instrument_id"]) == {"flute": 4, "cello": 2}[e["instrument"]]
        # note frames agree with the annotation
        on_frames = np.flatnonzero(f["frame_onset"])
        assert np.abs(on_frames / 250.0 - perf.notes["onset_s"][: on_frames.size]).max() <= 0.5 / 250 + 1e-9
        # tracker f0 agrees with the performer's true f0 on held notes (within 20 cents)
        held = (f["frame_position"] > 0.3) & (f["frame_position"] < 0.9) & (f["f0_confidence"] > 0.8)
        cents = 1200 * np.log2(f["f0_hz"][held] / f["true_f0_hz"][held])
        assert held.sum() > 200
        assert np.median(np.abs(cents)) < 10 and np.mean(np.abs(cents) < 20) > 0.9


def test_cache_resumes_without_recomputing(tiny):
    from midi_ddsp.data.cache import cache_features

    feats = list((tiny["root"] / "cache" / "features").glob("*.npz"))
    before = {p: p.stat().st_mtime_ns for p in feats}
    s = cache_features(tiny["kcfg"])
    assert s["n_ok"] == tiny["cache_summary"]["n_ok"]
    assert {p: p.stat().st_mtime_ns for p in feats} == before


def test_clip_dataset_items(tiny):
    import torch

    from midi_ddsp.data.cache import load_features, load_manifest
    from midi_ddsp.data.datasets import SynthesisClipDataset

    cache_dir = tiny["kcfg"].out_dir
    ds = SynthesisClipDataset(cache_dir, split="all", clip_samples=64000, hop_samples=32000)
    assert len(ds) > 0
    item = ds[len(ds) - 1]
    assert item["audio"].shape == (64000,) and item["audio"].dtype == torch.float32
    for k in ("f0_hz", "f0_confidence", "true_f0_hz", "loudness_db"):
        assert item[k].shape == (1000, 1), k
    assert item["note_features"].shape == (1000, 4)
    assert item["frame_pitch"].shape == (1000,) and item["note_index"].shape == (1000,)
    # the clip's audio and frames come from the same place in the piece
    i, s = int(item["piece_index"]), int(item["start_sample"])
    e = ds.pieces[i]
    f = load_features(cache_dir, e)
    np.testing.assert_array_equal(item["loudness_db"][:, 0].numpy(), f["loudness_db"][s // 64: s // 64 + 1000])
    full, _ = sf.read(e["audio"], dtype="float32")
    np.testing.assert_array_equal(item["audio"].numpy(), full[s:s + 64000])
    assert len({e["id"] for e in load_manifest(cache_dir)}) == len(ds.pieces)


def test_splits_are_by_group_disjoint_and_deterministic(tiny):
    from midi_ddsp.data.datasets import split_entries, split_of
    from midi_ddsp.data.cache import load_manifest

    entries = load_manifest(tiny["kcfg"].out_dir)
    parts = {s: split_entries(entries, s, 0.3, 0.3) for s in ("train", "valid", "test")}
    ids = [e["id"] for s in parts.values() for e in s]
    assert sorted(ids) == sorted(e["id"] for e in entries)
    groups = {s: {e["group"] for e in v} for s, v in parts.items()}
    assert not (groups["train"] & groups["valid"]) and not (groups["train"] & groups["test"])
    # hash-based: stable and roughly proportional
    names = [f"g{i}" for i in range(4000)]
    got = [split_of(n, 0.1, 0.1) for n in names]
    assert got == [split_of(n, 0.1, 0.1) for n in names]
    assert 0.08 < got.count("valid") / 4000 < 0.12 and 0.08 < got.count("test") / 4000 < 0.12


def test_datamodules(tiny):
    from midi_ddsp.data.datamodules import NoteSequenceDataModule, SynthesisDataModule

    dm = SynthesisDataModule(tiny["kcfg"].out_dir, batch_size=2, valid_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (2, 64000) and batch["f0_hz"].shape == (2, 1000, 1)
    assert batch["instrument_id"].shape == (2,)
    nd = NoteSequenceDataModule(tiny["kcfg"].out_dir, batch_size=2, valid_fraction=0.0, test_fraction=0.0)
    nd.setup("fit")
    pieces = next(iter(nd.train_dataloader()))
    assert isinstance(pieces, list) and len(pieces) == 2
    p = pieces[0]
    assert len(p["sequence"]) == p["pitch"].shape[0] > 5
    assert p["instrument"] in ("flute", "cello")


def test_datamodule_shards_under_ddp_via_lightning(tiny):
    """Our loaders use plain Random/Sequential samplers, which Lightning's default
    ``use_distributed_sampler=True`` replaces by a DistributedSampler: each rank gets a disjoint shard."""
    from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

    dc = pytest.importorskip("pytorch_lightning.trainer.connectors.data_connector")
    if not hasattr(dc, "_get_distributed_sampler"):
        pytest.skip("this Lightning version has no _get_distributed_sampler")
    from midi_ddsp.data.datamodules import SynthesisDataModule

    dm = SynthesisDataModule(tiny["kcfg"].out_dir, batch_size=1, valid_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, RandomSampler)
    assert isinstance(dm.val_dataloader().sampler, SequentialSampler)
    seen = []
    for rank in range(2):
        sampler = dc._get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=2, rank=rank)
        assert isinstance(sampler, DistributedSampler)
        seen.append(list(iter(sampler)))
    n = len(dm.dataset("train"))
    assert set(seen[0]) | set(seen[1]) == set(range(n))
    assert len(set(seen[0]) & set(seen[1])) <= n % 2  # disjoint up to DistributedSampler's padding


def test_report(tiny, tmp_path):
    from midi_ddsp.data.report import write_report

    txt, png = write_report(tiny["root"] / "corpus", tmp_path / "rep")
    text = txt.read_text()
    assert "flute" in text and "cello" in text and "note lengths" in text
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_cli_build_and_report(tmp_path):
    from midi_ddsp.data.cli import main

    out = tmp_path / "c"
    rc = main(["build-corpus", f"out_dir={out}", "minutes_per_instrument=0.1", "instruments=[oboe]",
               "collections={bach: 1}", "n_workers=1", "progress=false", "min_piece_s=6", "max_piece_s=8"])
    assert rc == 0 and (out / "manifest.json").is_file()
    rc = main(["report", f"corpus_dir={out}", f"out={tmp_path / 'r'}"])
    assert rc == 0 and (tmp_path / "r.txt").is_file() and (tmp_path / "r.png").is_file()
    assert main(["report", f"corpus_dir={tmp_path / 'nope'}", f"out={tmp_path / 'r2'}"]) == 2


def test_build_from_a_user_midi_folder(tmp_path):
    """``midi_dirs``: each track of the user's MIDI files becomes a melody; tempo comes from the file."""
    import pretty_midi

    from midi_ddsp.data.corpus import CorpusConfig, build_corpus
    from midi_ddsp.data.performer import PerformedPiece

    d = tmp_path / "midi"
    d.mkdir()
    rng = np.random.default_rng(0)
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    t = 0.0
    for _ in range(40):
        dur = float(rng.choice([0.25, 0.5]))
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=int(rng.integers(60, 72)), start=t, end=t + dur * 0.9))
        t += dur
    pm.instruments.append(inst)
    pm.write(str(d / "tune.mid"))
    cfg = CorpusConfig(out_dir=str(tmp_path / "c"), use_music21=False, midi_dirs=[str(d)], instruments=["oboe"],
                       minutes_per_instrument=0.1, n_workers=1, progress=False, min_piece_s=8, max_piece_s=12)
    s = build_corpus(cfg)
    assert s["n_ok"] == 1
    e = json.loads((tmp_path / "c" / "manifest.json").read_text())["pieces"][0]
    p = PerformedPiece.load(tmp_path / "c" / e["files"]["npz"])
    # the file's own tempo (+-8 %) with drift and ritardandi on top
    orig = np.array([n.start for n in inst.notes])
    m = p.n_notes
    ratio = (p.notes["onset_s"][-1] - p.notes["onset_s"][0]) / (orig[m - 1] - orig[0])
    assert 0.85 < ratio < 1.35, ratio
    shift = p.notes["pitch"] - np.array([n.pitch for n in inst.notes][:m])
    assert np.all(shift == p.transpose) and p.transpose % 12 == 0  # moved by whole octaves only
