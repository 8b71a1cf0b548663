"""``midi-ddsp data <command> [key=value ...]``: corpus building, feature caching, corpus report.

Commands (each configured by a YAML file in ``conf/data/``; ``key=value`` arguments override it with
Hydra's override syntax, e.g. ``seed=3 instruments=[violin,flute]``):

* ``build-corpus``   -> conf/data/build_corpus.yaml   (:func:`midi_ddsp.data.corpus.build_corpus`)
* ``cache-features`` -> conf/data/cache_features.yaml (:func:`midi_ddsp.data.cache.cache_features`)
* ``report``         -> conf/data/report.yaml         (:func:`midi_ddsp.data.report.write_report`)

Entry point: :func:`main` (``main(argv) -> int`` exit status).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

COMMANDS = {
    "build-corpus": "build_corpus",
    "cache-features": "cache_features",
    "report": "report",
}


def _conf_dir() -> Path | None:
    d = Path(__file__).resolve().parents[2] / "conf" / "data"
    return d if d.is_dir() else None


def load_config(name: str, overrides: list[str]) -> dict:
    """Compose ``conf/data/<name>.yaml`` with Hydra overrides; returns a plain dict."""
    from omegaconf import OmegaConf

    d = _conf_dir()
    if d is not None and (d / f"{name}.yaml").is_file():
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(d), version_base=None):
            cfg = compose(config_name=name, overrides=overrides)
    else:  # installed without the repo's conf/: defaults from the dataclasses + dotlist overrides
        cfg = OmegaConf.from_dotlist(overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _dataclass_from(cls, d: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SystemExit(f"unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**d)


def main(argv: list[str] | None = None) -> int:
    """Run a data command; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="midi-ddsp data", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("overrides", nargs="*", help="key=value settings (Hydra override syntax)")
    args = parser.parse_args(argv)
    cfg = load_config(COMMANDS[args.command], args.overrides)
    try:
        if args.command == "build-corpus":
            from midi_ddsp.data.corpus import CorpusConfig, build_corpus

            summary = build_corpus(_dataclass_from(CorpusConfig, cfg))
            return 0 if summary["n_ok"] > 0 else 1
        if args.command == "cache-features":
            from midi_ddsp.data.cache import CacheConfig, cache_features

            summary = cache_features(_dataclass_from(CacheConfig, cfg))
            return 0 if summary["n_ok"] > 0 else 1
        if args.command == "report":
            from midi_ddsp.data.report import write_report

            txt, png = write_report(cfg["corpus_dir"], cfg["out"], cfg.get("cache_dir"))
            print(f"wrote {txt} and {png}")
            return 0
    except (FileNotFoundError, ValueError) as e:  # missing folder, unknown source or instrument
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
