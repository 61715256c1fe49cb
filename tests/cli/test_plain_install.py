"""A plain (non-editable) install gives working `sgl.engine` and `sgl.registry` packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_plain_install_imports_from_outside_the_repo(tmp_path: Path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("sgl-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import sgl.engine.cli.main, sgl.registry, sgl.registry.spaces.darts as d; print(d.__file__)"],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""}, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(site))
