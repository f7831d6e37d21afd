"""deploy/image/lib.sh's install_missing, which build.sh, smoke.sh and powercut.sh share: apt-get
installs the packages whose command is missing, and only those (a stand-in apt-get on PATH notes
what it was asked; nothing is installed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "deploy" / "image" / "lib.sh"


def install_missing(tmp_path: Path, *pairs: str, apt_status: int = 0) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >>"{tmp_path}/apt.log"\nexit {apt_status}\n')
    apt.chmod(0o755)
    script = f'fail() {{ echo "boot: $1" >&2; exit "${{2:-1}}"; }}\n. "{LIB}"\ninstall_missing "$@"\necho done'
    result = subprocess.run(
        ["bash", "-c", script, "boot.sh", *pairs],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    log = tmp_path / "apt.log"
    return result, log.read_text() if log.exists() else ""


@pytest.mark.skipif(os.geteuid() != 0, reason="it installs only as root")
def test_only_the_packages_whose_command_is_missing_are_installed(tmp_path):
    result, asked = install_missing(tmp_path, "qemu-nowhere:no-such-command-here", "coreutils:ls", "mt-x:also-missing")
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "done", result.stderr
    assert asked.split()[-2:] == ["qemu-nowhere", "mt-x"] and "install" in asked.split()
    assert "installing what it needs: qemu-nowhere mt-x" in result.stdout


def test_nothing_missing_installs_nothing(tmp_path):
    result, asked = install_missing(tmp_path, "coreutils:ls", "bash:bash")
    assert result.returncode == 0 and asked == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="it installs only as root")
def test_a_failed_install_stops_with_one_line(tmp_path):
    result, _ = install_missing(tmp_path, "qemu-nowhere:no-such-command-here", apt_status=100)
    assert result.returncode == 1 and "done" not in result.stdout
    assert result.stderr == "boot: apt-get install qemu-nowhere failed\n"
