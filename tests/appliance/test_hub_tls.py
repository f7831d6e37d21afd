"""TLS between the units: the desk's hub serves its own certificate, the door pins it (or trusts a
CA the installer brought), and a door that meets any other certificate says so and sends nothing."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from intercom.appliance.embedded_hub import plain_warning, serves_plain
from intercom.auth.certificates import CERT_NAME, KEY_NAME, fingerprint_of_file, own_certificate, pin_of_file
from intercom.hub import Storage
from intercom.hub.tls import certificate_fingerprint
from intercom.sdk import CertificateError, ClientStatus

from ..units import DESK_HZ, DOOR_HZ, STEP
from .test_embedded_hub import desk_settings, door_settings


async def test_the_door_pins_the_desks_own_certificate_and_it_stays_the_same_across_restarts(tmp_path, boards):
    desk, _ = await boards.start(desk_settings(tmp_path, hub_tls="on"), DESK_HZ)  # TLS on loopback, as beyond it
    assert desk.hub is not None and desk.client.secure and desk.client.status is ClientStatus.CONNECTED
    data_dir = tmp_path / "hub"
    pin = certificate_fingerprint(data_dir)  # what `intercom units add` prints
    for name in (CERT_NAME, KEY_NAME):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    door, _ = await boards.start(
        (await door_settings(desk.hub.port, tmp_path / "hub")).model_copy(
            update={"hub_url": f"wss://127.0.0.1:{desk.hub.port}", "hub_fingerprint": pin}
        ),
        DOOR_HZ,
    )
    assert door.client.url.startswith("wss://") and door.client.status is ClientStatus.CONNECTED
    assert desk.hub.running is not None and len(desk.hub.running.registrar.lookup("door")) == 1

    await door.stop()
    await desk.stop()
    again, _ = await boards.start(desk_settings(tmp_path, hub_tls="on", hub_port=desk.hub.port), DESK_HZ)
    assert again.hub is not None and pin_of_file(again.hub.config.cert_file) == pin
    door, _ = await boards.start((await door_settings(0, tmp_path / "hub")).model_copy(
        update={"hub_url": f"wss://127.0.0.1:{again.hub.port}", "hub_fingerprint": pin}), DOOR_HZ
    )  # fmt: skip
    assert door.client.status is ClientStatus.CONNECTED


async def test_a_door_pinned_to_another_certificate_says_so_sends_nothing_and_waits_a_minute(tmp_path, boards, caplog):
    desk, _ = await boards.start(desk_settings(tmp_path, hub_tls="on"), DESK_HZ)
    assert desk.hub is not None and desk.hub.running is not None
    relay_pin = fingerprint_of_file(own_certificate(tmp_path / "elsewhere")[0])
    door, _ = boards.build(
        (await door_settings(0, tmp_path / "hub")).model_copy(
            update={"hub_url": f"wss://127.0.0.1:{desk.hub.port}", "hub_fingerprint": relay_pin}
        ),
        DOOR_HZ,
    )
    refused = asyncio.Event()
    door.client.on("error", lambda error: refused.set())
    with caplog.at_level(logging.ERROR, logger="intercom.appliance.unit"):
        door.connect()
        async with asyncio.timeout(STEP):
            await refused.wait()
    assert door.retry_pending and door.retry_after_error_s == 60  # not a tight loop
    shown = pin_of_file(desk.hub.config.cert_file)
    assert f"the hub's certificate does not match INTERCOM_HUB_FINGERPRINT: it shows {shown}" in caplog.text
    assert desk.hub.running.registrar.lookup("door") == []  # no REGISTER, so no token, reached the hub


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def ca_signed(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for ``name`` (an IP address or a DNS name): the CA file,
    the certificate and its key, as an installer who brings a real certificate has them."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    leaf = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    folder.mkdir()
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


async def test_a_door_trusts_a_certificate_its_ca_file_vouches_for(tmp_path, boards):
    ca, cert, key = ca_signed(tmp_path / "tls", "127.0.0.1")
    desk, _ = await boards.start(desk_settings(tmp_path, hub_cert_file=cert, hub_key_file=key), DESK_HZ)
    assert desk.hub is not None and desk.client.status is ClientStatus.CONNECTED
    door_url = f"wss://127.0.0.1:{desk.hub.port}"
    door, _ = await boards.start(
        (await door_settings(0, tmp_path / "hub")).model_copy(update={"hub_url": door_url, "hub_ca_file": ca}), DOOR_HZ
    )
    assert door.client.status is ClientStatus.CONNECTED
    assert not (tmp_path / "hub" / CERT_NAME).exists()  # the installer's certificate, none of the hub's own


async def test_a_ca_signed_certificate_for_another_name_is_refused_naming_the_ca_file(tmp_path, boards, caplog):
    ca, cert, key = ca_signed(tmp_path / "tls", "desk.example")  # the door connects to 127.0.0.1
    desk, _ = await boards.start(desk_settings(tmp_path, hub_cert_file=cert, hub_key_file=key), DESK_HZ)
    assert desk.hub is not None
    door_url = f"wss://127.0.0.1:{desk.hub.port}"
    door, _ = boards.build(
        (await door_settings(0, tmp_path / "hub")).model_copy(update={"hub_url": door_url, "hub_ca_file": ca}), DOOR_HZ
    )
    with caplog.at_level(logging.ERROR), pytest.raises(CertificateError, match="not trusted"):
        async with asyncio.timeout(STEP):
            await door.start()
    assert "the hub's certificate is not vouched for by INTERCOM_HUB_CA_FILE" in caplog.text


@pytest.mark.parametrize(
    ("listen", "tls", "plain"),
    [
        ("0.0.0.0", None, False), ("192.168.1.20", None, False), ("::", None, False), ("127.0.0.1", None, True),
        ("::1", None, True), ("0.0.0.0", "auto", False), ("127.0.0.1", "on", False), ("0.0.0.0", "off", True),
    ],
)  # fmt: skip
def test_the_embedded_hub_is_plain_on_loopback_only_unless_told(tmp_path, listen, tls, plain):
    told = {} if tls is None else {"hub_tls": tls}
    assert serves_plain(desk_settings(tmp_path, hub_listen=listen, hub_port=8443, **told)) is plain


async def test_an_install_made_before_tls_by_default_keeps_plain_ws_until_its_file_says_otherwise(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("socket.gethostname", lambda: "desk")
    old = desk_settings(tmp_path, hub_listen="0.0.0.0", hub_port=8443)  # no INTERCOM_HUB_TLS line
    assert not serves_plain(old)  # a new install: nothing in the data dir yet
    storage = Storage(tmp_path / "hub")  # what an older version left: the key without a scope, no certificate
    try:
        await storage.put_key(old.access_key_id, old.access_key.get_secret_value(), "env file of desk", scope=None)
    finally:
        storage.close()
    assert serves_plain(old)
    warning = plain_warning(old, 8443).splitlines()
    assert "INTERCOM_HUB_TLS=auto" in warning and "INTERCOM_HUB_URL=wss://desk:8443" in warning
    assert "INTERCOM_HUB_FINGERPRINT=<what `intercom units add` prints on this unit>" in warning
    assert not serves_plain(desk_settings(tmp_path, hub_listen="0.0.0.0", hub_port=8443, hub_tls="auto"))
    other_key = old.model_copy(update={"access_key_id": "another_key"})
    assert not serves_plain(other_key)  # not this env file's database
    own_certificate(tmp_path / "hub")  # made by a start since TLS by default: never mistaken for an old install
    assert not serves_plain(old)


def test_off_beyond_loopback_is_warned_about_in_one_line(tmp_path):
    settings = desk_settings(tmp_path, hub_listen="0.0.0.0", hub_tls="off")
    assert plain_warning(settings, 8443) == (
        "INTERCOM_HUB_TLS=off: the hub serves plain ws:// on 0.0.0.0 port 8443: tokens and unlock codes readable "
        "on the network"
    )


async def test_a_loopback_desk_makes_no_certificate_and_a_plain_door_elsewhere_is_warned_at_start(
    tmp_path, boards, caplog
):
    desk, _ = await boards.start(desk_settings(tmp_path), DESK_HZ)
    assert desk.hub is not None and not desk.client.secure
    assert not (tmp_path / "hub" / CERT_NAME).exists()
    with caplog.at_level(logging.WARNING, logger="intercom.appliance.unit"):
        boards.build(
            (await door_settings(0, tmp_path / "hub")).model_copy(update={"hub_url": "ws://desk.local:8443"}), DOOR_HZ
        )  # not started
    assert "INTERCOM_HUB_URL=wss://desk.local:8443" in caplog.text.splitlines()
