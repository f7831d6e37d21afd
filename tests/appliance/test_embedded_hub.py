"""A desk that hosts the hub (INTERCOM_HUB_EMBEDDED=true) and a door that connects to it: the usual
two-unit install, configured by the env files alone."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from intercom.appliance.embedded_hub import EmbeddedHub, HubStartError, prepare_storage
from intercom.appliance.settings import Settings
from intercom.auth.keys import new_key_id, new_key_secret
from intercom.cli import main
from intercom.hub import HubConfig, Storage
from intercom.hub.callflows import CallFlow
from intercom.sdk import ClientStatus

from ..units import DESK_HZ, DOOR_HZ, STEP, unit_key
from .boards import blinking, confirmed, lit, press, until

KEY_ID, SECRET = new_key_id(), new_key_secret()
CALL, ANSWER, REJECT = 17, 27, 22
STATUS_LED, CALL_LED = 5, 6


def desk_settings(tmp_path: Path, **values) -> Settings:
    embedded = {
        "hub_listen": "127.0.0.1", "hub_port": 0, "hub_data_dir": tmp_path / "hub", "access_key_id": KEY_ID,
        "access_key": SECRET,
    }  # fmt: skip
    return Settings(role="desk", identity="desk", hub_embedded=True, unlock_code="1234#", **{**embedded, **values})


async def door_settings(port: int, hub_dir: Path, **values) -> Settings:
    """The door's settings, with a key of its own made in the hub's database (``intercom units add``)."""
    return Settings(
        role="door", identity="door", hub_url=f"ws://127.0.0.1:{port}", unlock_code="1234#",
        **await unit_key(hub_dir, "door", "door"), **values,
    )  # fmt: skip


async def test_the_door_rings_the_desk_hosting_the_hub_and_the_desk_calls_the_door(tmp_path, boards):
    desk, desk_pins = await boards.start(desk_settings(tmp_path), DESK_HZ)
    assert desk.hub is not None and desk.client.status is ClientStatus.CONNECTED
    door, door_pins = await boards.start(
        await door_settings(desk.hub.port, tmp_path / "hub", auto_answer=True), DOOR_HZ
    )

    await press(door_pins, CALL)  # ring_desks, made by the hub on its first start
    await until(lambda: blinking(desk_pins, CALL_LED))
    await press(desk_pins, ANSWER)
    await until(lambda: confirmed(desk, desk_pins, CALL_LED) and confirmed(door, door_pins, CALL_LED))
    await press(desk_pins, REJECT)
    await until(lambda: not lit(desk_pins, CALL_LED) and not lit(door_pins, CALL_LED))

    await press(desk_pins, CALL)  # ring_door: the door listens in by itself (auto-answer)
    await until(lambda: confirmed(desk, desk_pins, CALL_LED) and confirmed(door, door_pins, CALL_LED))
    assert door.controller.offered is None  # answered at once, never left ringing


async def test_a_desk_stopping_takes_its_hub_along_and_the_door_shows_connecting(tmp_path, boards):
    desk, _ = await boards.start(desk_settings(tmp_path), DESK_HZ)
    assert desk.hub is not None
    door, _ = await boards.start(await door_settings(desk.hub.port, tmp_path / "hub"), DOOR_HZ)
    statuses: list[ClientStatus] = []
    door.client.on("status", statuses.append)
    await desk.stop()
    await until(lambda: ClientStatus.CONNECTING in statuses)
    with socket.create_server(("127.0.0.1", desk.hub.port)):  # the port is free again, as a restart needs
        pass


async def test_the_env_files_key_and_the_default_flows_go_into_the_database_once(tmp_path, caplog):
    settings = desk_settings(tmp_path, hub_desks="desk,attic", ring_timeout_s=20)
    storage = Storage(tmp_path / "hub")
    try:
        await prepare_storage(storage, settings)
        key = storage.get_key(KEY_ID)
        assert key is not None and key.secret == SECRET and not key.revoked
        flows = {flow.id: flow for flow in await storage.list_call_flows()}
        assert flows["ring_desks"].steps[0].options == {
            "destination": "client:desk,client:attic,group:phones",
            "timeout": 20,
        }
        assert flows["ring_door"].steps[0].options == {"destination": "client:door", "timeout": 20}

        await storage.delete_call_flow("ring_door")  # the installer's own flow stays as it is
        mine = {
            "id": "ring_door",
            "title": "mine",
            "steps": [{"action": "transfer", "options": {"destination": "client:gate"}}],
        }
        await storage.create_call_flow(CallFlow.model_validate(mine))
        changed = settings.model_copy(update={"access_key": type(settings.access_key)("a-new-secret-for-the-same-key")})
        await prepare_storage(storage, changed)
        assert (await storage.get_call_flow("ring_door")).title == "mine"
        assert len(await storage.list_call_flows()) == 2 and len(await storage.list_keys()) == 1
        assert storage.get_key(KEY_ID).secret == "a-new-secret-for-the-same-key"
        assert "the secret changed in the env file" in caplog.text
    finally:
        storage.close()


async def test_a_key_revoked_on_the_hub_stays_revoked(tmp_path, boards):
    storage = Storage(tmp_path / "hub")
    try:
        await prepare_storage(storage, desk_settings(tmp_path))
        assert await storage.revoke_key(KEY_ID)
    finally:
        storage.close()
    desk, _ = boards.build(desk_settings(tmp_path), DESK_HZ)
    with pytest.raises(HubStartError, match=rf"^INTERCOM_ACCESS_KEY_ID: key {KEY_ID} is revoked on this hub"):
        await desk.start_hub()


def test_a_port_in_use_stops_the_unit_before_it_is_built(tmp_path, boards):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            HubStartError, match=rf"^INTERCOM_HUB_PORT: the hub cannot listen on 127.0.0.1 port {port} "
        ):
            boards.build(desk_settings(tmp_path, hub_port=port), DESK_HZ)
    assert boards.made == []


async def test_an_unusable_data_dir_is_named(tmp_path, boards):
    (tmp_path / "hub").write_text("a file where the directory should be")
    desk, _ = boards.build(desk_settings(tmp_path), DESK_HZ)
    with pytest.raises(HubStartError, match=r"^INTERCOM_HUB_DATA_DIR: cannot use .*hub \(File exists\)$"):
        await desk.start_hub()


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate naming only ``name``, as a desk's own would."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=STEP,
    )  # fmt: skip
    return cert, key


async def test_over_tls_the_desk_trusts_its_own_certificate_whatever_it_names(tmp_path, boards):
    cert, key = certificate(tmp_path, "desk.example")  # not 127.0.0.1, where the desk's client connects
    desk, _ = await boards.start(desk_settings(tmp_path, hub_cert_file=cert, hub_key_file=key), DESK_HZ)
    assert desk.client.secure and desk.client.status is ClientStatus.CONNECTED


@pytest.mark.parametrize("spoilt", ["cert", "key"])
def test_a_certificate_and_key_that_do_not_make_a_pair_are_named(tmp_path, boards, spoilt):
    cert, key = certificate(tmp_path, "desk.example")
    (other := tmp_path / "other").mkdir()
    _, other_key = certificate(other, "desk.example")
    if spoilt == "cert":
        cert.write_text("not a certificate\n")
    else:
        key = other_key
    with pytest.raises(HubStartError, match=r"^INTERCOM_HUB_CERT_FILE: .* do not make a TLS certificate and key"):
        boards.build(desk_settings(tmp_path, hub_cert_file=cert, hub_key_file=key), DESK_HZ)


def test_config_new_key_prints_lines_an_embedded_desk_accepts(tmp_path, capsys):
    assert main(["config", "new-key"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"INTERCOM_ACCESS_KEY_ID", "INTERCOM_ACCESS_KEY"}
    settings = desk_settings(
        tmp_path, access_key_id=lines["INTERCOM_ACCESS_KEY_ID"], access_key=lines["INTERCOM_ACCESS_KEY"]
    )
    assert settings.access_key.get_secret_value() == lines["INTERCOM_ACCESS_KEY"]
    assert main(["config", "new-key"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[1] != f"INTERCOM_ACCESS_KEY={lines['INTERCOM_ACCESS_KEY']}"
    )  # fresh each time


def test_the_env_files_call_limits_reach_the_embedded_hub_with_the_hubs_own_defaults(tmp_path):
    defaults = EmbeddedHub(desk_settings(tmp_path))
    defaults.socket.close()
    assert {name: getattr(defaults.config, name) for name in CALL_LIMITS} == {
        name: getattr(HubConfig, name) for name in CALL_LIMITS
    }
    told = EmbeddedHub(
        desk_settings(
            tmp_path, hub_max_calls=3, hub_max_calls_per_identity=2, hub_max_call_duration_s=600,
            hub_media_timeout_s=10, hub_max_ring_legs=5,
        )
    )  # fmt: skip
    told.socket.close()
    assert [getattr(told.config, name) for name in CALL_LIMITS] == [3, 2, 600, 10, 5]


CALL_LIMITS = ("max_calls", "max_calls_per_identity", "max_call_duration", "media_timeout", "max_ring_legs")
