"""The attacker of issue 14, on the door's cable, against exactly what an installer following the
README sets up: the desk hosts the hub with its own certificate, ``intercom units add`` prints the
door's env-file lines (hub URL, the pin, the door's own key), the door adds its keypad code.

The one difference from a real install: the desk listens on 127.0.0.1 with ``INTERCOM_HUB_TLS=on``
where a real one listens on 0.0.0.0 with the default ``auto`` (which is TLS for any address but
loopback: tests/hub/test_tls.py); tests may send traffic to loopback only.

The attacker relays the door's connection (:class:`~.cable.CableRelay`): it keeps every byte, may
inject its own, may present a certificate of its own, and may open connections of its own to the
hub with everything it could know of the call. It must read neither the door's token nor the code,
and nothing it sends may open the strike or end the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import itertools
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from intercom.appliance.settings import load_settings
from intercom.appliance.unlock_store import UnlockStore
from intercom.auth.certificates import own_certificate
from intercom.cli import main
from intercom.sdk import CallStatus, ClientStatus
from intercom.sip import Request, Via, make_cancel, parse_message
from intercom.sip.door import UNLOCK_CONTENT_TYPE
from intercom.sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body

from ..units import DESK_HZ, DOOR_HZ, STEP
from .boards import confirmed, press, until
from .cable import CableRelay

CALL, ANSWER, UNLOCK = 17, 27, 24
CALL_LED, RELAY = 6, 26
DOOR_CODE = "583920#"  # the example file's advice: six digits


def cli(*argv: str) -> list[str]:
    """What an ``intercom`` command prints, line by line."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(list(argv)) == 0
    return printed.getvalue().splitlines()


def env_file(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o640)
    return path


def install_desk(tmp_path: Path) -> Path:
    """The desk's env file as the README has the installer write it: role, identity, the hub
    embedded, and a key of its own from ``intercom config new-key``."""
    return env_file(
        tmp_path / "desk.env",
        [
            "INTERCOM_ROLE=desk",
            "INTERCOM_IDENTITY=desk",
            "INTERCOM_HUB_EMBEDDED=true",
            "INTERCOM_HUB_LISTEN=127.0.0.1",
            "INTERCOM_HUB_TLS=on",  # stands in for 0.0.0.0 and auto: see the module's docstring
            "INTERCOM_HUB_PORT=0",
            f"INTERCOM_HUB_DATA_DIR={tmp_path / 'hub'}",
            *cli("config", "new-key"),
        ],
    )


def install_door(tmp_path: Path, desk_env: Path, reached_at: int) -> Path:
    """The door's env file: what ``intercom units add`` printed on the desk, and its keypad code.
    The URL the installer gives is the desk's address, which here is where the relay listens."""
    printed = cli(
        "units", "add", "--role", "door", "--identity", "door", "--env-file", str(desk_env),
        "--hub-url", f"wss://127.0.0.1:{reached_at}",
    )  # fmt: skip
    return env_file(tmp_path / "door.env", [*printed, f"INTERCOM_UNLOCK_CODE={DOOR_CODE}"])


def dialog_ids(unit) -> tuple[str, str, str]:
    """What the attacker would need to speak in the door's call: Call-ID and both tags."""
    dialog = unit.controller.call.dialog
    return dialog.call_id, dialog.local_tag, dialog.remote_tag


@pytest.fixture
async def installed(tmp_path, boards):
    """The desk started, a relay in front of its hub, the door started through the relay."""
    desk_settings, _ = load_settings(install_desk(tmp_path))
    desk, desk_pins = await boards.start(desk_settings, DESK_HZ)
    assert desk.hub is not None and desk.hub.running is not None
    async with CableRelay(("127.0.0.1", desk.hub.port)) as relay:
        door_settings, _ = load_settings(install_door(tmp_path, tmp_path / "desk.env", relay.port))
        door, door_pins = await boards.start(door_settings, DOOR_HZ)
        assert door.client.status is ClientStatus.CONNECTED and relay.connections == 1
        yield desk, desk_pins, door, door_pins, relay


async def a_call_answered_at_the_desk(desk, desk_pins, door, door_pins) -> None:
    await press(door_pins, CALL)
    await until(lambda: desk.controller.offered is not None)
    await press(desk_pins, ANSWER)
    await until(lambda: confirmed(desk, desk_pins, CALL_LED) and confirmed(door, door_pins, CALL_LED))


def strike_pulses(door_pins) -> int:
    """How often the relay went on (its pin's recorded states)."""
    states = [state for _, state in door_pins.pin(RELAY).states]
    return sum(1 for before, after in itertools.pairwise(states) if not before and after)


def unlock_log(door) -> list[str]:
    store = UnlockStore.open(door.settings.state_dir)
    try:
        return [entry.verdict for entry in store.latest(100)]
    finally:
        store.close()


async def test_the_relay_reads_neither_token_nor_code_and_the_residents_unlock_still_works(installed):
    desk, desk_pins, door, door_pins, relay = installed
    await a_call_answered_at_the_desk(desk, desk_pins, door, door_pins)
    await press(desk_pins, UNLOCK)
    await until(lambda: strike_pulses(door_pins) == 1)  # the resident opens, through the relay

    seen = relay.capture.both
    assert len(relay.capture.to_hub) > 1000 and len(relay.capture.to_door) > 1000  # it saw the whole call
    for secret in (
        b"WebRTC-Token", b"eyJ",  # the token's header, and any JWT (base64 of '{"')
        door.settings.access_key_id.encode(),
        b"REGISTER", b"INVITE", b"sip:",  # no SIP at all in clear
        UNLOCK_CONTENT_TYPE.encode(), DTMF_CONTENT_TYPE.encode(), b"Signal=",
        DOOR_CODE.encode(), DOOR_CODE[:4].encode(),
    ):  # fmt: skip
        assert secret not in seen, secret


async def test_bytes_injected_into_the_doors_stream_open_nothing(installed):
    """What the relay writes into the TLS stream is no TLS record of the hub's: the door's TLS layer
    refuses it and drops the connection, as a cut cable would. No SIP reaches the door: no strike."""
    desk, desk_pins, door, door_pins, relay = installed
    await a_call_answered_at_the_desk(desk, desk_pins, door, door_pins)
    call_id, door_tag, desk_tag = dialog_ids(door)
    forged = (
        f"INFO sip:door@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS hub.invalid;branch=z9hG4bKx\r\n"
        f"From: <sip:00000@hub>;tag={desk_tag}\r\nTo: <sip:door@hub>;tag={door_tag}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 99 INFO\r\nP-Asserted-Identity: <sip:desk@hub>\r\nContent-Type: {UNLOCK_CONTENT_TYPE}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    frame = b"\x81" + bytes([126]) + len(forged).to_bytes(2, "big") + forged  # an unmasked text frame
    dropped = asyncio.Event()
    door.client.on("status", lambda status: status is ClientStatus.CONNECTING and dropped.set())
    relay.inject_to_door(frame)
    async with asyncio.timeout(STEP):
        await dropped.wait()
    assert strike_pulses(door_pins) == 0 and unlock_log(door) == []


async def test_the_attackers_own_connections_cannot_end_the_call_or_open_the_door(installed):
    """Worst case: the attacker knows the dialog's identifiers (TLS hides them) and speaks to the hub
    on connections of its own, one that never registered. Every request is refused; the call and the
    strike do not move."""
    desk, desk_pins, door, door_pins, _relay = installed
    await a_call_answered_at_the_desk(desk, desk_pins, door, door_pins)
    dialog = door.controller.call.dialog
    via = Via("WSS", "attacker.invalid", None, {})
    requests: list[Request] = [
        copy.copy(dialog).create_request("BYE", via),
        copy.copy(dialog).create_request("UPDATE", via),
        copy.copy(dialog).create_request("INFO", via, headers=[("Content-Type", UNLOCK_CONTENT_TYPE)]),
        copy.copy(dialog).create_request(
            "INFO", via, headers=[("Content-Type", DTMF_CONTENT_TYPE)], body=dtmf_body("5", 100)
        ),
        make_cancel(door.controller.call._invite),  # the INVITE it answered long ago
    ]
    anything = ssl.create_default_context()
    anything.check_hostname, anything.verify_mode = False, ssl.CERT_NONE  # an attacker trusts any hub
    async with asyncio.timeout(STEP):
        async with connect(f"wss://127.0.0.1:{desk.hub.port}/", subprotocols=["sip"], ssl=anything) as own:
            for request in requests:
                await own.send(request.text())
                answer = parse_message(await own.recv())
                assert answer.status_code in (403, 481), (request.method, answer)
    await press(desk_pins, UNLOCK)  # the call is still up: the resident's unlock gets through
    await until(lambda: strike_pulses(door_pins) == 1)
    assert door.controller.call.status is CallStatus.CONFIRMED
    assert desk.controller.call.status is CallStatus.CONFIRMED
    assert unlock_log(door) == ["open"]  # only the resident's


async def test_a_relay_with_a_certificate_of_its_own_gets_nothing_in_clear(tmp_path, boards):
    """The relay ends the door's TLS itself: the door sees a certificate that is not the pinned one
    and sends nothing, not even the WebSocket upgrade."""
    desk_settings, _ = load_settings(install_desk(tmp_path))
    desk, _ = await boards.start(desk_settings, DESK_HZ)
    assert desk.hub is not None and desk.hub.running is not None
    impostor = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    impostor.load_cert_chain(*own_certificate(tmp_path / "attacker"))
    async with CableRelay(("127.0.0.1", desk.hub.port), impostor=impostor) as relay:
        door_settings, _ = load_settings(install_door(tmp_path, tmp_path / "desk.env", relay.port))
        door, _ = boards.build(door_settings, DOOR_HZ)
        refused = asyncio.Event()
        door.client.on("error", lambda error: refused.set())
        door.connect()
        async with asyncio.timeout(STEP):
            await refused.wait()
        assert relay.capture.to_hub == b""  # the clear text the impostor read: nothing
        assert desk.hub.running.registrar.lookup("door") == []
