"""Which certificate a hub serves with, and what another unit needs to trust it."""

from __future__ import annotations

import pytest

from intercom.auth.certificates import fingerprint_of_file, own_certificate, pin_of_file
from intercom.hub.tls import certificate_fingerprint, served_url
from intercom.hub.tls import tls_files as serving


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
