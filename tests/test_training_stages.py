"""The training recipe end to end on a tiny corpus: analysis -> dump targets -> generator (-> loadable weights)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from midi_ddsp.data.render import renderer_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not renderer_available(), reason="fluidsynth + a GM soundfont are needed")]
pytest.importorskip("music21")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from midi_ddsp.data.cache import CacheConfig, cache_features
    from midi_ddsp.data.corpus import CorpusConfig, build_corpus

    root = tmp_path_factory.mktemp("stages")
    ccfg = CorpusConfig(out_dir=str(root / "corpus"), seed=3, minutes_per_instrument=0.3,
                        instruments=["violin", "flute"], collections={"bach": 3}, n_workers=1,
                        min_piece_s=6.0, max_piece_s=9.0, progress=False)
    build_corpus(ccfg)
    cache_features(CacheConfig(source="corpus", source_dir=ccfg.out_dir, out_dir=str(root / "cache"), n_workers=1,
                               progress=False))
    return root


def _train(root, stage, *extra):
    from midi_ddsp.training.config import load_config
    from midi_ddsp.training.runner import run

    cfg = load_config([f"stage={stage}", f"run_dir={root / stage}", "trainer.progress_bar=false",
                       f"stage.data.cache_dir={root / 'cache'}", "stage.max_steps=3", "stage.val_batches=1",
                       "stage.data.batch_size=2", "stage.data.clip_s=1.0", "stage.task.width=16",
                       *extra])
    return run(cfg)


def test_analysis_dump_generator(cache):
    from midi_ddsp.data.datasets import split_of
    from midi_ddsp.synthesis.loading import load_analysis, load_generator
    from midi_ddsp.training.targets import dump_targets, load_normalizer

    analysis = _train(cache, "analysis", "stage.task.reverb_length=4000")
    model, synth, _, extra, _ = load_analysis(analysis.export_path)
    assert extra["global_step"] == 3 and model.n_mels == 64

    targets = cache / "targets"
    summary = dump_targets(cache / "cache", analysis.export_path, targets, lambda e: "train", progress=False)
    assert summary["pieces"] > 0
    split = json.loads((targets / "notes" / "split.json").read_text())
    first = np.load(targets / "notes" / f"{next(iter(split))}.npz")
    assert first["controls"].shape == (len(first["pitch"]), 6)
    assert np.all((first["controls"] >= 0) & (first["controls"] <= 1))
    assert load_normalizer(targets).low.shape == (14, 6)

    gen = _train(cache, "generator", "stage.task.reverb_length=4000", f"stage.init_from={analysis.export_path}",
                 f"stage.data.targets_dir={targets}", "stage.task.f0_hidden=16",
                 f"stage.normalizer_from={targets / 'control_normalizer.safetensors'}")
    generator, gsynth, _, extra, others = load_generator(gen.export_path)
    assert extra["global_step"] == 3
    assert set(others) == {"control_normalizer.low", "control_normalizer.high"}
    # the generator reuses the analysis model's (frozen) reverb
    assert torch.equal(gsynth.reverb.state_dict()["ir"] if "ir" in gsynth.reverb.state_dict() else
                       next(iter(gsynth.reverb.state_dict().values())),
                       next(iter(synth.reverb.state_dict().values())))

    # the consistency loss scores whole notes only: each numbered note is one run of frames that starts with
    # an onset flag and ends with an offset flag inside the clip, with one set of controls
    from midi_ddsp.training.generator_data import GeneratorDataModule

    data = GeneratorDataModule(str(cache / "cache"), str(targets), clip_s=1.0)
    clips = data.dataset("train")
    n_whole = 0
    for idx in range(min(len(clips), 8)):
        item = clips[idx]
        ids, feats = item["note_id"].numpy(), item["features"].numpy()
        onset, offset = feats[:, 7] > 0.5, feats[:, 8] > 0.5
        numbered = np.unique(ids[ids >= 0])
        assert np.array_equal(numbered, np.arange(numbered.size))
        for k in numbered:
            run = np.flatnonzero(ids == k)
            assert np.array_equal(run, np.arange(run[0], run[-1] + 1))
            assert onset[run[0]] and offset[run[-1]]
            assert np.ptp(feats[run, :6], axis=0).max() == 0
        # and every note whose onset and offset flags are both in the clip is numbered
        n_whole += numbered.size
        any_note = item["note_index"].numpy()  # every note touching the clip, cut or not
        assert numbered.size == len(set(any_note[onset]) & set(any_note[offset]))
    assert n_whole > 0
