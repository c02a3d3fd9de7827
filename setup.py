"""Build step: the wheel carries the course (notebooks and batch configs) under advunlearn/course/.

The repository keeps them at the top level (notebooks/, configs/); this copies them into the built
package so an installed advunlearn finds them (advunlearn.course) and `advunlearn notebooks DIR`
can hand them out.  Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
COURSE = ("notebooks/*.ipynb", "notebooks/solutions/*.ipynb", "configs/*.yaml")


class build_py_with_course(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the source tree's folders directly
            return
        dest = Path(self.build_lib) / "advunlearn" / "course"
        for pat in COURSE:
            for src in ROOT.glob(pat):
                target = dest / src.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


setup(cmdclass={"build_py": build_py_with_course})
