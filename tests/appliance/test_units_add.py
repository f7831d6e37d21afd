"""``intercom units add`` on the unit that hosts the hub: the new unit's own key, and what the door's
env file then can and cannot do. The second half of issue 14's "Must show": with only the door's
env file, the Voice API answers 401/403, a token for any identity but the door's own is refused
with 403, and the door's flow can be neither read nor changed."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
from websockets.asyncio.client import connect

from intercom.appliance.settings import load_settings
from intercom.auth import AccessKey, IncomingCapability, OutgoingCapability, mint_token, unit_scope
from intercom.auth.certificates import pin_of_file
from intercom.cli import main
from intercom.hub import Storage
from intercom.sdk.registration import RegistrationState

from ..conftest import RawSip
from ..units import DESK_HZ, STEP
from .test_attacker_on_the_cable import DOOR_CODE, cli, env_file, install_desk


@pytest.fixture
async def desk_and_door_file(tmp_path, boards):
    """The desk running its hub, and the door's env file as ``units add`` printed it."""
    desk_settings, _ = load_settings(install_desk(tmp_path))
    desk, _ = await boards.start(desk_settings, DESK_HZ)
    assert desk.hub is not None and desk.hub.running is not None
    url = f"wss://127.0.0.1:{desk.hub.port}"
    printed = cli("units", "add", "--role", "door", "--identity", "door", "--env-file", str(tmp_path / "desk.env"),
                  "--hub-url", url)  # fmt: skip
    door_file = env_file(tmp_path / "door.env", [*printed, f"INTERCOM_UNLOCK_CODE={DOOR_CODE}"])
    return desk, door_file, printed


async def test_the_printed_lines_name_the_hub_its_pin_and_a_key_for_the_door_alone(desk_and_door_file):
    desk, door_file, printed = desk_and_door_file
    door, _ = load_settings(door_file)
    assert (door.role, door.identity, door.hub_url) == ("door", "door", f"wss://127.0.0.1:{desk.hub.port}")
    assert door.hub_fingerprint == pin_of_file(desk.hub.config.cert_file)
    assert door.unlock_from == ("desk", "group:phones")
    key = desk.hub.running.app.state.storage.get_key(door.access_key_id)
    assert key.scope == unit_scope("door", "door", "ring_desks") and not key.scope.admin
    assert sum(door.access_key.get_secret_value() in line for line in printed) == 1  # shown once, here


async def test_with_only_the_doors_env_file_nothing_but_the_door_can_be_done(desk_and_door_file):
    desk, door_file, _ = desk_and_door_file
    door, _ = load_settings(door_file)
    secret = door.access_key.get_secret_value()
    trust = ssl.create_default_context(cafile=str(desk.hub.config.cert_file))
    trust.check_hostname = False
    headers = {"Authorization": f"AccessKey {secret}"}
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{desk.hub.port}", verify=trust, timeout=STEP) as api:
        for method, path in (
            ("GET", "/v1/call-flows"), ("GET", "/v1/call-flows/ring_desks"), ("DELETE", "/v1/call-flows/ring_desks"),
            ("PUT", "/v1/call-flows/ring_desks"), ("POST", "/v1/call-flows"), ("GET", "/v1/calls"),
            ("POST", "/v1/calls"), ("GET", "/v1/webhooks"),
        ):  # fmt: skip
            answer = await api.request(method, path, headers=headers, json={"steps": [{"action": "hangup"}]})
            assert answer.status_code == 403, (method, path, answer.text)
            assert "unit key for door: it has no Voice API rights" in answer.text
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert (await api.get(path, headers=headers)).status_code in (401, 403), path
    assert (await desk.hub.running.app.state.storage.get_call_flow("ring_desks")).steps[
        0
    ].action == "transfer"  # unchanged

    key = AccessKey(door.access_key_id, secret, "stolen", 0.0)
    address = f"127.0.0.1:{desk.hub.port}"
    async with asyncio.timeout(STEP), connect(f"wss://{address}/", subprotocols=["sip"], ssl=trust) as websocket:
        sip = RawSip(websocket)
        for capabilities, answer in (
            ([IncomingCapability("desk")], "may mint tokens for door only, not desk"),
            ([OutgoingCapability("ring_desks", "desk")], "may mint tokens for door only, not desk"),
            ([OutgoingCapability("ring_door", "door")], "may not start call flow ring_door (only ring_desks)"),
            ([IncomingCapability("door"), OutgoingCapability("ring_desks", "door")], "OK"),  # itself: yes
        ):
            response = await sip.exchange(RegistrationState(address).build(mint_token(key, capabilities)))
            assert answer in response.reason, (capabilities, response.reason)
            assert response.status_code == (200 if answer == "OK" else 403)
    assert [binding.identity for binding in desk.hub.running.registrar.lookup("desk")] == ["desk"]  # the desk's own


async def test_units_add_refuses_what_cannot_work(tmp_path, capsys):
    assert main(["units", "add", "--role", "door", "--identity", "front door", "--data-dir", str(tmp_path),
                 "--hub-url", "wss://desk:8443"]) == 2  # fmt: skip
    assert "identity 'front door' is not 1-30 characters" in capsys.readouterr().err
    assert main(["units", "add", "--role", "door", "--identity", "door", "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir needs --hub-url" in capsys.readouterr().err
    assert main(["units", "add", "--role", "door", "--identity", "door", "--data-dir", str(tmp_path),
                 "--hub-url", "ws://desk:8443"]) == 2  # fmt: skip
    assert "must be wss://host:port" in capsys.readouterr().err
    loopback = env_file(tmp_path / "desk.env", [
        "INTERCOM_ROLE=desk", "INTERCOM_IDENTITY=desk", "INTERCOM_HUB_EMBEDDED=true",
        "INTERCOM_HUB_LISTEN=127.0.0.1", f"INTERCOM_HUB_DATA_DIR={tmp_path / 'hub'}", *cli("config", "new-key"),
    ])  # fmt: skip
    assert main(["units", "add", "--role", "door", "--identity", "door", "--env-file", str(loopback)]) == 2
    assert "INTERCOM_HUB_LISTEN=127.0.0.1: the hub is reachable from this machine only" in capsys.readouterr().err
    storage = Storage(tmp_path)
    try:
        assert await storage.list_keys() == []  # nothing was made for what was refused
    finally:
        storage.close()


async def test_a_standalone_hub_gets_its_units_from_its_data_dir(tmp_path):
    printed = cli("units", "add", "--role", "desk", "--identity", "kitchen", "--data-dir", str(tmp_path),
                  "--hub-url", "wss://hub.example:8443", "--call-flow", "ring_door")  # fmt: skip
    lines = dict(line.split("=", 1) for line in printed if not line.startswith("#"))
    assert lines["INTERCOM_HUB_URL"] == "wss://hub.example:8443"
    assert lines["INTERCOM_HUB_FINGERPRINT"] == pin_of_file(tmp_path / "hub-cert.pem")
    assert "INTERCOM_UNLOCK_FROM" not in lines  # a desk opens nothing itself
    assert any("add kitchen to INTERCOM_HUB_DESKS" in line for line in printed)
    storage = Storage(tmp_path)
    try:
        (key,) = await storage.list_keys()
    finally:
        storage.close()
    assert key.id == lines["INTERCOM_ACCESS_KEY_ID"] and key.scope == unit_scope("desk", "kitchen", "ring_door")
