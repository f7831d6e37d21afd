"""``intercom simulate``: a unit in a headless terminal, driven by keys, against a loopback hub."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from textual.pilot import Pilot

from intercom.appliance.settings import Settings, load_settings
from intercom.appliance.simulator import Lamp, Simulator
from intercom.appliance.unit import Unit
from intercom.cli import main
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus, ClientStatus

from ..conftest import ENDPOINT_LOOPBACK
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow, unit_key
from .boards import press
from .helpers import WatchedPin, WatchedPWMPin, history

CODE = "4711#"
PULSE_S = 0.3
CALL, RELAY = 17, 26  # the default pins of the CALL button and the relay
WHOLE_TEST = STEP * 6  # starting and shutting down the app included: each step has its own STEP


def settings_for(hub, role: str, **values: Any) -> Settings:
    values = {"unlock_code": CODE, "relay_pulse_s": PULSE_S, **values}
    return Settings(
        role=role, identity=role, hub_url=f"ws://{hub.address}", access_key_id=hub.key.id,
        access_key=hub.key.secret, call_flow=role, **values,
    )  # fmt: skip


def make_unit(hub, role: str, **values: Any) -> tuple[Unit, MockFactory]:
    """A unit on a board of its own, sending its tone and recording what it hears, on loopback."""
    board = MockFactory(pin_class=WatchedPWMPin if values.get("pwm_leds") else WatchedPin)
    hz = DOOR_HZ if role == "door" else DESK_HZ
    audio = CallAudio(source=lambda: ToneSource(hz), sink=RecordingSink, policy=ENDPOINT_LOOPBACK, tones=None)
    return Unit(settings_for(hub, role, **values), audio, pin_factory=board), board


@pytest.fixture
async def units(hub) -> AsyncIterator[Callable[..., Any]]:
    """Plain units (the other end of the call), connected; each one's ``changed`` event is set
    whenever it shows something (a light pattern, a relay pulse). Stopped at teardown."""
    await store_flow(hub, "door", "client:desk")
    await store_flow(hub, "desk", "client:door")
    made: list[tuple[Unit, MockFactory]] = []

    async def make(role: str, **values: Any) -> tuple[Unit, asyncio.Event, MockFactory]:
        unit, board = make_unit(hub, role, **values)
        made.append((unit, board))
        changed = asyncio.Event()
        unit.watchers.append(lambda *_: changed.set())
        async with asyncio.timeout(STEP):
            await unit.start()
        return unit, changed, board

    yield make
    for unit, board in made:
        async with asyncio.timeout(STEP):
            await unit.stop()
        board.close()


@pytest.fixture
async def simulators(hub) -> AsyncIterator[Callable[..., Simulator]]:
    """Simulator apps, each on a unit of its own (not yet connected: the app connects it).
    A test that fails half-way still has its unit stopped here."""
    made: list[tuple[Simulator, MockFactory]] = []

    def make(role: str, **values: Any) -> Simulator:
        unit, board = make_unit(hub, role, **values)
        app = Simulator(unit, board)
        made.append((app, board))
        return app

    yield make
    for app, board in made:
        async with asyncio.timeout(STEP):
            await app.stop_unit()
        board.close()


async def until(condition: Callable[[], bool], *events: asyncio.Event, timeout: float = STEP) -> None:
    """Wait for ``condition``, checked again each time one of ``events`` is set."""
    async with asyncio.timeout(timeout):
        while True:
            for event in events:
                event.clear()
            if condition():
                return
            waits = [asyncio.ensure_future(event.wait()) for event in events]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()


def blinked(lamp: Lamp, since: float, times: int = 2) -> bool:
    """The lamp was drawn lit and dark at least ``times`` times each since ``since`` (monotonic)."""
    levels = [level for when, level in lamp.history if when >= since]
    return sum(1 for level in levels if level > 0) >= times and sum(1 for level in levels if level == 0) >= times


def hearing(app: Simulator) -> float | None:
    """The frequency the call line says this unit hears, if it says one."""
    text = app.text("call")
    if ", hearing " not in text:
        return None
    return float(text.rpartition(", hearing ")[2].removesuffix(" Hz"))


async def keys(pilot: Pilot[None], *names: str) -> None:
    """Keys typed at the simulator, each handled before the next (the pilot waits until the app is idle)."""
    async with asyncio.timeout(STEP):
        await pilot.press(*names)


def in_call(unit: Unit, status: CallStatus) -> bool:
    return unit.controller.call is not None and unit.controller.call.status is status


async def test_a_desk_in_the_terminal_rings_answers_unlocks_and_quits(simulators, units):
    app = simulators("desk")
    async with asyncio.timeout(WHOLE_TEST), app.run_test() as pilot:
        await until(lambda: app.text("client") == "hub: connected", app.changed)
        assert app.text("unit") == f"desk unit 'desk' · hub {app.unit.settings.hub_url}"
        door, door_changed, door_board = await units("door")
        ringing_since = time.monotonic()

        await press(door_board, CALL)
        call_lamp = app.lamp("call")
        await until(lambda: blinked(call_lamp, ringing_since), app.changed)
        assert call_lamp.pattern == "ring_blink"
        assert app.text("call") == "incoming call from door: ringing"
        assert app.text("client") == "hub: connected"

        await keys(pilot, "a")  # ANSWER
        await until(lambda: app.text("call").startswith("call confirmed"), app.changed)
        await until(lambda: in_call(door, CallStatus.CONFIRMED), door_changed)
        assert call_lamp.pattern == "on"
        await until(lambda: hearing(app) is not None and abs(hearing(app) - DOOR_HZ) < 15, app.changed)

        await keys(pilot, "u")  # UNLOCK: an unlock request, and the door's relay pulses once
        relay = await history(door_board.pin(RELAY), 3)
        assert [state.state for state in relay] == [False, True, False]
        assert relay[2].timestamp == pytest.approx(PULSE_S, abs=0.1)

        await keys(pilot, "q")
        await until(lambda: app.stopped, app.changed)
        await until(lambda: door.controller.call is None, door_changed)  # the desk hung up on its way out
    assert app.return_code == 0
    assert app.unit.client.status is ClientStatus.OFFLINE
    log = "\n".join(app.log_lines())
    for line in ("status connected", "light call: ring_blink", "ANSWER pressed", "call confirmed", "UNLOCK pressed"):
        assert line in log, log


async def test_a_door_in_the_terminal_calls_the_desk_and_its_keypad_opens_the_door(simulators, units):
    desk, desk_changed, _ = await units("desk")
    app = simulators("door", unlock_code="2580#", keypad_pins="2:12,5:16,8:19,0:21,#:20")
    async with asyncio.timeout(WHOLE_TEST), app.run_test() as pilot:
        await until(lambda: app.text("client") == "hub: connected", app.changed)
        assert app.text("relay") == "door strike: released"
        assert app.query_one("#button-answer").has_class("idle")  # fitted, but a door's ANSWER does nothing
        assert not app.query_one("#button-call").has_class("idle")

        await keys(pilot, "c")  # CALL
        await until(lambda: desk.controller.offered is not None, desk_changed)
        await until(lambda: app.text("call") == "call ringing", app.changed)
        assert "CALL pressed" in "\n".join(app.log_lines())

        await keys(pilot, "9", "2", "5", "8", "0", "#")  # 9 is not on this keypad: its key does nothing
        await until(lambda: app.text("relay") == "door strike: energised", app.changed)
        await until(lambda: app.text("relay") == "door strike: released", app.changed)
        assert [state.state for state in await history(app.board.pin(RELAY), 3)] == [False, True, False]
        log = "\n".join(app.log_lines())
        assert "# pressed" in log and "9 pressed" not in log, log
        await keys(pilot, "q")
        await until(lambda: app.stopped, app.changed)
    assert app.unit.client.status is ClientStatus.OFFLINE


async def test_a_desk_in_the_terminal_can_host_the_hub_for_a_door(tmp_path):
    key = {"access_key_id": "sim", "access_key": "a-secret-long-enough-to-sign-with"}
    desk_settings = Settings(
        role="desk", identity="desk", hub_embedded=True, hub_listen="127.0.0.1", hub_port=0,
        hub_data_dir=tmp_path / "hub", unlock_code=CODE, **key,
    )  # fmt: skip
    desk_board, door_board = MockFactory(pin_class=WatchedPin), MockFactory(pin_class=WatchedPin)
    audio = CallAudio(source=lambda: ToneSource(DESK_HZ), sink=RecordingSink, policy=ENDPOINT_LOOPBACK, tones=None)
    app = Simulator(Unit(desk_settings, audio, pin_factory=desk_board), desk_board)
    door = None
    try:
        async with asyncio.timeout(STEP):
            await app.unit.start_hub()  # as `intercom simulate` does before the app starts
        assert app.unit.hub is not None
        door_settings = Settings(
            role="door",
            identity="door",
            hub_url=f"ws://{app.unit.hub.local_address}",
            unlock_code=CODE,
            **await unit_key(tmp_path / "hub", "door", "door"),
        )
        door_audio = CallAudio(source=lambda: ToneSource(DOOR_HZ), sink=RecordingSink, policy=ENDPOINT_LOOPBACK)
        door = Unit(door_settings, door_audio, pin_factory=door_board)
        door_changed = asyncio.Event()
        door.watchers.append(lambda *_: door_changed.set())
        async with asyncio.timeout(WHOLE_TEST), app.run_test() as pilot:
            await until(lambda: app.text("client") == "hub: connected", app.changed)
            assert app.text("unit") == f"desk unit 'desk' · hub here, on 127.0.0.1 port {app.unit.hub.port}"
            async with asyncio.timeout(STEP):
                await door.start()
            await press(door_board, CALL)  # ring_desks: made by the desk's hub on its first start
            await until(lambda: app.text("call") == "incoming call from door: ringing", app.changed)
            await keys(pilot, "a")
            await until(lambda: in_call(door, CallStatus.CONFIRMED), door_changed)
            await keys(pilot, "q")
            await until(lambda: app.stopped, app.changed)
        await until(lambda: door.client.status is ClientStatus.CONNECTING, door_changed)  # the hub left with the desk
    finally:
        async with asyncio.timeout(STEP):
            await app.stop_unit()
            if door is not None:
                await door.stop()
        desk_board.close()
        door_board.close()


async def test_lamps_are_as_bright_as_the_leds_whichever_way_they_are_wired(simulators):
    app = simulators("desk", pwm_leds=True, leds_active_low=True)
    async with asyncio.timeout(WHOLE_TEST), app.run_test():
        status = app.lamp("status")
        # The heartbeat fades in and out: levels between dark and lit, drawn as such.
        await until(lambda: any(0 < level < 1 for _, level in status.history), app.changed)
        assert status.pattern == "heartbeat"
        # Wired to light when the pin is low: the mute light, steadily off, has its pin high.
        assert app.lamp("mute").level == 0 and app.board.pin(13).state == 1


def write_env(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "intercom.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)
    return path


GOOD = {
    "INTERCOM_ROLE": "door", "INTERCOM_IDENTITY": "hall", "INTERCOM_HUB_URL": "ws://127.0.0.1:9",
    "INTERCOM_ACCESS_KEY_ID": "k", "INTERCOM_ACCESS_KEY": "s", "INTERCOM_UNLOCK_CODE": "1234#",
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_intercom_environment(monkeypatch):
    """Only the files under test speak: the process's own INTERCOM_* variables are set aside (but
    the state directory every test gets, see conftest.py)."""
    import os

    for name in [name for name in os.environ if name.startswith("INTERCOM_") and name != "INTERCOM_STATE_DIR"]:
        monkeypatch.delenv(name)


def test_the_role_on_the_command_line_wins_over_the_settings(tmp_path):
    settings, _ = load_settings(write_env(tmp_path, **GOOD), role="desk")
    assert settings.role == "desk" and settings.identity == "hall"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"INTERCOM_RELAY_PULSE_S": "forever"}, "INTERCOM_RELAY_PULSE_S: Input should be a valid number"),
        ({"INTERCOM_HUB_URL": "", "INTERCOM_HUB_EMBEDDED": "true"}, "INTERCOM_ACCESS_KEY: the embedded hub signs"),
    ],
    ids=["bad value", "embedded hub"],
)
def test_the_simulator_refuses_settings_that_cannot_work_with_one_line(tmp_path, capsys, values, message):
    path = write_env(tmp_path, **{**GOOD, **values})
    assert main(["simulate", "--role", "desk", "--env-file", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"intercom simulate: {message}") and err.count("\n") == 1, err


def test_without_an_env_file_the_environment_is_all_there_is(capsys):
    assert main(["simulate", "--role", "door"]) == 2
    assert capsys.readouterr().err == "intercom simulate: INTERCOM_IDENTITY: required, and not set\n"


def test_without_textual_the_simulator_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "intercom.appliance.simulator")
    for name in [name for name in sys.modules if name.partition(".")[0] == "textual"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual", None)  # importing it fails, as where it is not installed
    assert main(["simulate", "--role", "desk", "--env-file", str(write_env(tmp_path, **GOOD))]) == 2
    assert capsys.readouterr().err == (
        "intercom simulate: the simulator needs textual: pip install 'intercom[simulator]'\n"
    )
