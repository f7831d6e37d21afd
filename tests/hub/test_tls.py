"""Which certificate a hub serves with, what another unit needs to trust it, and the CA a phone installs."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from cryptography import x509

from intercom.auth.certificates import (
    CA_CERT_NAME,
    CERT_NAME,
    KEY_NAME,
    fingerprint_of_der,
    fingerprint_of_file,
    own_certificate,
    pin_of_file,
)
from intercom.hub import HubConfig, Storage, running_hub
from intercom.hub.ca_download import CA_PATH
from intercom.hub.tls import (
    authority_certificate,
    authority_fingerprint,
    certificate_fingerprint,
    phone_trust_line,
    served_url,
)
from intercom.hub.tls import tls_files as serving

from ..units import STEP


def test_the_pin_is_the_hubs_own_certificates_made_once(tmp_path):
    data_dir = tmp_path / "hub"
    first = certificate_fingerprint(data_dir)  # what `intercom units add` prints
    assert first == certificate_fingerprint(data_dir) == pin_of_file(own_certificate(data_dir)[0])


def test_the_installers_certificate_is_the_one_pinned_when_there_is_one(tmp_path, tls_files):
    cert, _ = tls_files
    assert certificate_fingerprint(tmp_path / "hub", cert) == fingerprint_of_file(cert)
    assert not (tmp_path / "hub").exists()  # no certificate of its own made for nothing


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "desk.local"])
def test_a_hub_beyond_loopback_serves_its_own_certificate_unless_told_plain(tmp_path, host):
    assert serving(host, tmp_path, None, None) == own_certificate(tmp_path)
    assert serving(host, tmp_path / "plain", None, None, plain=True) is None
    assert not (tmp_path / "plain").exists()


def test_a_loopback_hub_stays_plain_and_a_given_certificate_wins(tmp_path, tls_files):
    assert serving("127.0.0.1", tmp_path, None, None) is None and not any(tmp_path.iterdir())
    assert serving("0.0.0.0", tmp_path, *tls_files) == tls_files


def test_the_url_other_units_use(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "desk")
    assert served_url("0.0.0.0", 8443, secure=True) == "wss://desk:8443"
    assert served_url("192.168.1.20", 8443, secure=True) == "wss://192.168.1.20:8443"
    assert served_url("fd00::20", 8443, secure=False) == "ws://[fd00::20]:8443"


@pytest.fixture
async def own_ca_hub(hub_config) -> AsyncIterator[tuple[HubConfig, str]]:
    """A hub serving https with the leaf its own CA issued, as a hub beyond loopback does: its
    settings and address."""
    cert, key = own_certificate(hub_config.data_dir, ["127.0.0.1", "localhost"])
    config = replace(hub_config, cert_file=cert, key_file=key)
    storage = Storage(config.data_dir)
    async with asyncio.timeout(STEP), running_hub(config, storage) as running:
        yield config, running.address
    storage.close()


async def test_a_phone_gets_the_hubs_ca_from_ca_crt_and_it_is_the_one_the_hub_prints(own_ca_hub):
    config, address = own_ca_hub
    ca_path = authority_certificate(config.data_dir, config.cert_file)
    assert ca_path is not None
    trust = ssl.create_default_context(cafile=str(ca_path))  # the CA alone: the leaf must chain to it
    async with httpx.AsyncClient(base_url=f"https://{address}", verify=trust, timeout=STEP) as web:
        answer = await web.get(CA_PATH)  # no key: a CA certificate is public
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-x509-ca-cert"
    assert 'filename="intercom-hub-ca.crt"' in answer.headers["content-disposition"]
    served = x509.load_der_x509_certificate(answer.content)
    assert fingerprint_of_der(answer.content) == authority_fingerprint(config.data_dir, config.cert_file)
    assert served.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def test_no_ca_to_install_when_the_hub_serves_an_installers_certificate(hub_config, tls_files):
    own_certificate(hub_config.data_dir, ["127.0.0.1"])  # a CA of its own exists, but is not what it serves
    cert, key = tls_files
    config = replace(hub_config, cert_file=cert, key_file=key)
    assert authority_certificate(config.data_dir, cert) is None and authority_fingerprint(config.data_dir, cert) is None
    storage = Storage(config.data_dir)
    trust = ssl.create_default_context(cafile=str(cert))
    async with asyncio.timeout(STEP), running_hub(config, storage) as running:
        web = httpx.AsyncClient(base_url=f"https://{running.address}", verify=trust, timeout=STEP)
        async with web:
            answer = await web.get(CA_PATH)
    storage.close()
    assert answer.status_code == 404, answer.text
    assert "not issued by a CA of its own" in answer.text


def test_a_hub_made_before_the_ca_offers_no_ca(tmp_path, tls_files):
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    for source, name in zip(tls_files, (CERT_NAME, KEY_NAME), strict=True):
        (data_dir / name).write_bytes(source.read_bytes())
    assert authority_fingerprint(data_dir) is None
    assert certificate_fingerprint(data_dir) == fingerprint_of_file(tls_files[0])  # the units' pin, unchanged


def test_the_hub_tells_phones_where_its_ca_is_and_its_fingerprint(tmp_path, tls_files):
    data_dir = tmp_path / "hub"
    cert, _ = own_certificate(data_dir, ["desk", "192.168.1.20"])
    line = phone_trust_line(data_dir, cert, "wss://desk:8443")
    assert line == (
        "phones trust this hub once they install its CA, https://desk:8443/ca.crt, "
        f"SHA-256 fingerprint {fingerprint_of_file(data_dir / CA_CERT_NAME)}"
    )
    assert phone_trust_line(data_dir, tls_files[0], "wss://desk:8443") is None  # the installer's: nothing to install
