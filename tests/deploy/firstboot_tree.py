"""A root filesystem in a directory for ``deploy/image/firstboot.sh`` (``FIRSTBOOT_ROOT``): the boot
partition, passwd and group with the ``intercom`` user, /etc/hosts, and the real ``intercom``
command behind a shim that notes which user ran it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "image" / "firstboot.sh"
REPOSITORY = SCRIPT.parents[2]
UID = GID = 999  # the intercom user's, as deploy/install.sh's `useradd --system` would pick
GPIO_GID, AUDIO_GID = 997, 29
TIMEOUT = 60  # the script, including `intercom config check` and ssh-keygen
SYSTEM_PYTHON = Path("/usr/bin/python3")


def python_for_the_service_user() -> tuple[str, list[str]]:
    """An interpreter the intercom user may run, and what it needs on PYTHONPATH to import intercom.

    The tests' own interpreter may live where only root can go (pyenv under /root); the system's
    Python of the same version can import the same packages from its site-packages, as the
    image's venv (--system-site-packages on /usr/bin/python3) does.
    """
    version = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if SYSTEM_PYTHON.exists()
        else ""
    )
    if version == str(sys.version_info[:2]):
        return str(SYSTEM_PYTHON), site.getsitepackages()
    return sys.executable, []


@dataclass
class Run:
    returncode: int
    lines: list[str]  # stdout, each line without the "intercom-firstboot: " prefix
    stderr: str

    def line(self, start: str) -> str:
        """The one line that starts with ``start``."""
        found = [line for line in self.lines if line.startswith(start)]
        assert len(found) == 1, (start, self.lines)
        return found[0]


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.boot = root / "boot" / "firmware"
        self.boot.mkdir(parents=True)
        for directory in ("etc", "root", "tmp", "usr/local/bin"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)  # where the shim notes who ran it
        self.write(
            "etc/passwd",
            f"root:x:0:0:root:/root:/bin/bash\nintercom:x:{UID}:{GID}::/var/lib/intercom:/usr/sbin/nologin\n",
        )
        self.write(
            "etc/group", f"root:x:0:\naudio:x:{AUDIO_GID}:intercom\ngpio:x:{GPIO_GID}:pi,intercom\nintercom:x:{GID}:\n"
        )
        self.write("etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tintercom\n::1\tlocalhost ip6-localhost\n")
        self.write("etc/hostname", "intercom\n")
        self.intercom = root / "usr/local/bin/intercom"
        python, self.python_path = python_for_the_service_user()
        self.intercom.write_text(
            f'#!/bin/sh\nid -u >"{root}/tmp/checked-as"; id -G >>"{root}/tmp/checked-as"\n'
            f'exec "{python}" -m intercom.cli "$@"\n'
        )
        self.intercom.chmod(0o755)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write(self, relative: str, text: str, mode: int = 0o644) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        path.chmod(mode)
        return path

    def drop(self, name: str, text: str) -> Path:
        """A file the user put on the boot partition."""
        return self.write(f"boot/firmware/{name}", text)

    def run(self, path_prefix: Path | None = None, **env: str) -> Run:
        environment = {
            "PATH": f"{path_prefix}:{os.environ['PATH']}" if path_prefix else os.environ["PATH"],
            "PYTHONPATH": os.pathsep.join([str(REPOSITORY), *self.python_path]),
            "FIRSTBOOT_ROOT": str(self.root),
            "INTERCOM_BIN": str(self.intercom),
            "INTERCOM_STRIKE_OFF": str(REPOSITORY / "deploy" / "strike-off.sh"),
            **env,
        }  # nothing else: no INTERCOM_* variable of the test's own environment reaches `config check`
        result = subprocess.run(
            ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        prefix = "intercom-firstboot: "
        assert all(line.startswith(prefix) for line in result.stdout.splitlines()), result.stdout
        return Run(result.returncode, [line.removeprefix(prefix) for line in result.stdout.splitlines()], result.stderr)

    def checked_as(self) -> tuple[int, set[int]]:
        """Who ran ``intercom config check``: its uid and its groups."""
        uid, groups = self.path("tmp/checked-as").read_text().splitlines()
        return int(uid), {int(group) for group in groups.split()}
