"""``scripts/setup.sh``'s browser step, run for real with stand-ins for ``id``, ``sudo``, ``apt-get`` and ``chromium``
on a PATH of their own (nothing is installed): only the tests open Debian's chromium, so ``make run`` never asks for
it, and a user who is not root gets a notice instead of a failed ``apt-get``. The README's test command on a fresh
machine as root (CI) still installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _stand_ins(bin_dir: Path, *, uid: int, sudo: bool, chromium: bool, apt_fails: bool = False) -> Path:
    """Stand-ins on ``bin_dir``: every apt-get call is written to the returned log (and fails with ``apt_fails``)."""
    calls = bin_dir.parent / "apt-get.log"
    programs = {
        "id": f'[ "$1" = -u ] && echo {uid}',
        "apt-get": f'echo "$*" >> {calls}; exit {100 if apt_fails else 0}',
    }
    if sudo:  # sudo without a password: `sudo -n COMMAND…` runs it
        programs["sudo"] = '[ "$1" = -n ] && shift; exec "$@"'
    if chromium:
        programs["chromium"] = "exit 0"
    bin_dir.mkdir()
    for name, body in programs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for tool in ("dirname", "true"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return calls


def _browser_step(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"PATH"}} | {"PATH": str(bin_dir)}
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(ROOT / "scripts" / "setup.sh"), "browser"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("sudo", [False, True], ids=["root", "passwordless-sudo"])
def test_root_or_passwordless_sudo_installs_chromium_when_it_is_missing(sudo: bool, tmp_path: Path) -> None:
    calls = _stand_ins(tmp_path / "bin", uid=1000 if sudo else 0, sudo=sudo, chromium=False)
    done = _browser_step(tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends chromium"]


def test_a_user_who_cannot_install_gets_a_notice_and_nothing_is_tried(tmp_path: Path) -> None:
    """apt-get without root failed, and with it `make run`, which needs no browser at all."""
    calls = _stand_ins(tmp_path / "bin", uid=1000, sudo=False, chromium=False)
    done = _browser_step(tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), "apt-get was called"
    assert "NOTICE: chromium is not installed, and installing it needs root" in done.stderr


def test_chromium_already_there_installs_nothing_and_a_failed_install_as_root_fails(tmp_path: Path) -> None:
    calls = _stand_ins(tmp_path / "there", uid=0, sudo=False, chromium=True)
    assert _browser_step(tmp_path / "there").returncode == 0
    assert not calls.exists()
    calls.parent.joinpath("second").mkdir()
    failing = _stand_ins(tmp_path / "second" / "bin", uid=0, sudo=False, chromium=False, apt_fails=True)
    done = _browser_step(tmp_path / "second" / "bin")
    assert done.returncode != 0  # CI, as root: a browser that could not be installed stops the set-up
    assert failing.read_text().splitlines() == ["update -qq"]


def test_only_the_test_target_asks_for_the_browser() -> None:
    def planned(target: str) -> list[str]:
        make = shutil.which("make")
        assert make is not None
        done = subprocess.run(
            [make, "-n", "--no-print-directory", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    run, test = planned("run"), planned("test")
    assert "bash scripts/setup.sh" in run
    assert "bash scripts/setup.sh browser" not in run
    assert test.index("bash scripts/setup.sh") < test.index("bash scripts/setup.sh browser")
