"""A throwaway PostgreSQL cluster for the tests (``tests/conftest.py`` imports it as
``bench.postgres``) and for bench/cluster.py: Debian's ``postgresql`` binaries, ``initdb`` and
``pg_ctl`` in a temporary directory, listening on 127.0.0.1 at a free port (its socket in that
directory too), password authentication over TCP as a real deployment has it, and nothing kept
(no fsync: the tests are about our SQL, not PostgreSQL's durability).

``initdb`` refuses to run as root, which CI is: then the cluster is the ``postgres`` user's
(Debian's package makes it), run through ``runuser``. A fresh database per test is a copy of a
migrated template (``CREATE DATABASE ... TEMPLATE``): a few milliseconds, no migration each time.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "intercom"
TEMPLATE = "intercom_template"


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is missing (Debian's postgresql): run scripts/setup.sh")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """One PostgreSQL server for the test session; :meth:`new_database` for each test."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="intercom-pg-"))
        self.port = _free_port()
        self.password = "a-test-password-" + os.urandom(8).hex()
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self._as = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._names = itertools.count()

    def start(self) -> None:
        password_file = self.dir / "password"
        password_file.write_text(self.password)
        if self._as:
            shutil.chown(password_file, "postgres")
        data = self.dir / "data"
        self._run(
            "initdb", "-D", str(data), "-U", USER, f"--pwfile={password_file}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        self._sql(f"CREATE DATABASE {TEMPLATE}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        """The server's main process (its backends are its children): for a benchmark's CPU figures."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def url(self, database: str) -> str:
        """Its URL, without the password (the hub refuses one there): give :attr:`password` aside."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh copy of the migrated template; its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def _sql(self, statement: str) -> None:
        self._run("psql", "-h", str(self.dir), "-p", str(self.port), "-U", USER, "-d", "postgres", "-qc", statement)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as, str(self.bin / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = (self.dir / "log").read_text()[-2000:] if (self.dir / "log").exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
