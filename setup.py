"""Build hook: the wheel carries the shipped model folder and the training configs.

``checkpoints/`` and ``conf/`` stay at the top of the repository (the design card has them there); a
regular build copies them into the package as ``midi_ddsp/_data/checkpoints`` and ``midi_ddsp/_data/conf``,
where :func:`midi_ddsp._paths.shipped` finds them when the package runs outside a source tree. Editable
installs use the repository's folders directly. Everything else is in ``pyproject.toml``.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = {"checkpoints": ("*.safetensors", "*.md"), "conf": ("*.yaml",)}


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name, patterns in DATA.items():
            src = HERE / name
            if not src.is_dir():
                continue
            for pattern in patterns:
                for f in src.rglob(pattern):
                    dst = Path(self.build_lib) / "midi_ddsp" / "_data" / name / f.relative_to(src)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dst)


setup(cmdclass={"build_py": build_py_with_data})
