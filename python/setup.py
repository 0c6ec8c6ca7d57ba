"""Build hook: copies the C library into the package.

pyproject.toml holds the metadata; this only makes the wheel carry
build/libretnet.so (and build/libretnet64.so, for retnet.torch's float64
tensors) of the source tree, or of $RETNET_BUILD_DIR. Build them first with
`make python` in the repository root.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = ("libretnet.so", "libretnet64.so")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        src = os.environ.get("RETNET_BUILD_DIR") or os.path.join(HERE, "..", "build")
        if not os.path.exists(os.path.join(src, LIBS[0])):
            raise SystemExit(f"retnet: {os.path.join(src, LIBS[0])} not found: run `make python` in the "
                             "repository root first (or set RETNET_BUILD_DIR)")
        dst = os.path.join(self.build_lib, "retnet")
        os.makedirs(dst, exist_ok=True)
        for name in LIBS:
            p = os.path.join(src, name)
            if os.path.exists(p):
                shutil.copy2(p, os.path.join(dst, name))


setup(cmdclass={"build_py": BuildWithLibrary})
