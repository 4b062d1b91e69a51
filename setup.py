# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the native half and bundle it into the package.

`pip install .` and `pip install -e .` both run build_py, which runs
`make -C native` and copies libckpt.so, myrestart and ckpt_image.h into
extckpt/_native/ in the source tree (so an editable install finds them
there) and, through package_data, into the wheel. The wheel is marked as
platform-specific because it carries binaries.
"""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "native"
BUNDLE = HERE / "extckpt" / "_native"
FILES = ("libckpt.so", "myrestart", "ckpt_image.h")


def build_native() -> None:
    subprocess.run(["make", "-C", str(NATIVE), "libckpt.so", "myrestart"], check=True)
    BUNDLE.mkdir(exist_ok=True)
    for name in FILES:
        shutil.copy2(NATIVE / name, BUNDLE / name)


class BuildPyWithNative(build_py):
    def run(self) -> None:
        build_native()
        super().run()


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildPyWithNative}, distclass=BinaryDistribution)
