"""The web desk's browser tests: a real hub serving https with a certificate the test's own CA
issued, and Chromium (browser.mjs) trusting that CA, never told to ignore certificate errors.

Use: ``web_hub`` (a :class:`WebHub`: the hub, its admin key, its data directory, ``ca_file``
for ``launch({caFile})``), and :func:`run_node` to run a node script of this folder to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from intercom.auth.certificates import Authority, issue, new_authority, private_key_pem
from intercom.hub import HubConfig

from ..browser.jssip_page import require_browser
from ..conftest import Hub
from ..units import STEP

HERE = Path(__file__).parent
TEST_NAMES = ["127.0.0.1", "localhost"]


@dataclass(frozen=True)
class WebAuthority:
    """The test run's CA, name-constrained to loopback as the hub's own is to a home's addresses."""

    authority: Authority
    ca_file: Path

    def issue_files(self, folder: Path, names: list[str]) -> tuple[Path, Path]:
        """A leaf for ``names`` in ``folder``: the certificate file (the leaf, then the CA, as the
        hub serves its own) and the key file."""
        certificate, key = issue(self.authority, names)
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / "cert.pem", folder / "key.pem"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + self.authority.certificate_pem())
        key_file.write_bytes(private_key_pem(key))
        return cert_file, key_file


@dataclass
class WebHub(Hub):
    """A :class:`~tests.conftest.Hub` serving https: ``Hub.token()`` and ``connect_unit`` work on it."""

    data_dir: Path
    ca_file: Path

    @property
    def origin(self) -> str:
        return f"https://{self.address}"

    def url(self, path: str = "/") -> str:
        return f"{self.origin}{path}"


@pytest.fixture(scope="session")
def web_authority(tmp_path_factory: pytest.TempPathFactory) -> WebAuthority:
    folder = tmp_path_factory.mktemp("web-ca")
    authority = new_authority("intercom tests CA", ["localhost"], ["127.0.0.0/8"])
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(authority.certificate_pem())
    return WebAuthority(authority, ca_file)


@pytest.fixture(scope="session")
def web_tls_files(web_authority: WebAuthority, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return web_authority.issue_files(tmp_path_factory.mktemp("web-leaf"), TEST_NAMES)


@pytest.fixture
def hub_config(hub_config: HubConfig, web_tls_files: tuple[Path, Path]) -> HubConfig:
    """The hub of tests/conftest.py (``hub``, the units' ``make_unit``), serving https with a leaf
    the tests' CA issued, as a browser that trusts that CA accepts."""
    cert_file, key_file = web_tls_files
    return replace(hub_config, cert_file=cert_file, key_file=key_file)


@pytest.fixture
def web_hub(hub: Hub, hub_config: HubConfig, web_authority: WebAuthority) -> WebHub:
    """That hub, with what a browser needs to reach and trust it."""
    return WebHub(hub.running, hub.storage, hub.key, hub_config.data_dir, web_authority.ca_file)


def require_web_browser() -> None:
    """Fail with the one command that fixes it when certutil, node, Chromium or the modules are missing."""
    require_browser(HERE / "node_modules")
    assert shutil.which("certutil"), "missing certutil (Debian libnss3-tools): run scripts/setup.sh"


async def run_node(script: str, *args: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Run ``node <script> <args>`` from this folder to its end; its JSON lines on stdout, parsed.
    A non-zero exit fails the test with its stderr."""
    require_web_browser()
    process = await asyncio.create_subprocess_exec(
        "node", str(HERE / script), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so that Chromium is killed with it
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        async with asyncio.timeout(STEP):
            await process.communicate()
        raise
    assert process.returncode == 0, (stdout.decode(), stderr.decode()[-3000:])
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
