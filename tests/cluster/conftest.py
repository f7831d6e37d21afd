"""A building's worth of the "many buildings" deployment (README "Running for many buildings"):
one Kamailio edge (deploy/kamailio/), two `intercom hub` processes behind it on one PostgreSQL
database, and SDK units over WSS to the edge. The hubs are real processes, so that a test can
kill one as a machine dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.kamailio import Edge, free_port, kamailio_program, wait_for_port
from intercom.auth import ADMIN, AccessKey
from intercom.hub.storage import Storage

from ..conftest import unit_token
from ..units import STEP

# Probing every second, one failed probe takes a hub out: a dead hub is out within ~2 s.
FAST_PROBING = {"DS_PING_INTERVAL": 1, "DS_PROBING_THRESHOLD": 1, "DS_INACTIVE_THRESHOLD": 1}
HEARTBEAT_SECONDS = 0.5  # a dead hub's calls are logged as ended 6 of these after it stopped


@dataclass
class HubProcess:
    """``intercom hub`` behind the edge: its SIP/TCP port for the edge, its log file."""

    name: str
    data_dir: Path
    sip_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def sip_address(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def log(self) -> str:
        return (self.data_dir / "hub.log").read_text(errors="replace")

    async def start(self, database: str, password_file: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "intercom.cli", "hub", "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--ice-host", "127.0.0.1",
            "--sip-proxy-listen", self.sip_address, "--sip-proxy", "127.0.0.1",
            "--database", database, "--database-password-file", str(password_file), "--hub-id", self.name,
            "--heartbeat-seconds", str(HEARTBEAT_SECONDS),
        ]  # fmt: skip
        with (self.data_dir / "hub.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        await wait_for_port(self.sip_port, lambda: self.process is not None and self.process.poll() is None, self.name)

    def kill(self) -> None:
        """Gone as a machine that lost power: no BYE, no goodbye to the database."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STEP)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STEP)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Building:
    """The edge, its hubs, and the test's own connection to their database; as ``connect_unit``'s
    hub, the edge's address and certificate with tokens of the test's admin key."""

    edge: Edge
    hubs: list[HubProcess]
    storage: Storage
    key: AccessKey
    cert: Path

    @property
    def address(self) -> str:
        return self.edge.host

    @property
    def running(self) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(secure=True, cert_file=self.cert))

    def token(self, identity: str = "desk", *, incoming: bool = True, outgoing: str | None = None) -> str:
        return unit_token(self.key, identity, incoming=incoming, outgoing=outgoing)

    def drain(self, name: str) -> None:
        """Take a hub out of the edge's choice, as an operator does before an upgrade (kamcmd over
        the edge's control socket): new registrations and calls go to the others."""
        hub = self.hub(name)
        subprocess.run(
            ["kamcmd", "-s", f"unix:{self.edge.folder / 'run' / 'kamailio_ctl'}", "dispatcher.set_state", "d", "1",
             f"sip:{hub.sip_address};transport=tcp"],
            check=True, capture_output=True, timeout=STEP,
        )  # fmt: skip

    def hub(self, name: str) -> HubProcess:
        return next(hub for hub in self.hubs if hub.name == name)

    async def registered_through(self, identity: str) -> str:
        """The hub that took ``identity``'s (one) registration."""
        rows = await self.storage.rows("SELECT hub FROM registrations WHERE identity = ?", (identity,))
        assert len(rows) == 1, rows
        return rows[0][0]

    async def call_hubs(self) -> list[str]:
        """The hub of each call in the log, oldest first."""
        return [hub for (hub,) in await self.storage.rows("SELECT hub FROM calls ORDER BY created_at")]


@pytest.fixture
async def building(postgres, tmp_path: Path, tls_files: tuple[Path, Path]) -> AsyncIterator[Building]:
    if kamailio_program() is None:
        pytest.skip("kamailio is not installed (scripts/setup.sh installs it)")
    from intercom.hub.storage_postgresql import PostgresStorage

    database = postgres.url(postgres.new_database())
    password_file = tmp_path / "database-password"
    password_file.write_text(postgres.password)
    password_file.chmod(0o600)
    storage = await PostgresStorage.open(database, tmp_path / "tests", "tests", postgres.password, pool_size=2)
    hubs = [HubProcess(name, tmp_path / name) for name in ("hub-1", "hub-2")]
    edge = Edge(tmp_path / "edge", [hub.sip_address for hub in hubs], tls_files, FAST_PROBING)
    try:
        key = await storage.create_key("tests", ADMIN)
        async with asyncio.timeout(3 * STEP):
            await asyncio.gather(*(hub.start(database, password_file) for hub in hubs))
            await edge.start()
        yield Building(edge, hubs, storage, key, tls_files[0])
    finally:
        async with asyncio.timeout(2 * STEP):
            await edge.stop()
        for hub in hubs:
            hub.stop()
        await storage.aclose()
