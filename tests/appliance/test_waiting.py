"""``intercom appliance --wait-for-settings``: settings that cannot work are shown (log, systemd
status, the status light blinking fast) until the env file changes, and then the unit exits to be
started again with it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.exc import PinFactoryFallback
from gpiozero.pins.mock import MockFactory, PinState

from intercom.appliance import waiting
from intercom.appliance.service import run_appliance
from intercom.appliance.waiting import SETTINGS_CHANGED, Relay, StatusLight, relay, status_light
from intercom.cli import main

from ..units import STEP
from .helpers import ABS_TOLERANCE, REL_TOLERANCE, WatchedPin, history

VALID = {
    "INTERCOM_ROLE": "door",
    "INTERCOM_IDENTITY": "door",
    "INTERCOM_HUB_URL": "ws://127.0.0.1:9",  # never reached: these tests stop before connecting
    "INTERCOM_ACCESS_KEY_ID": "511f5c63d6db9cc19aa3274d",
    "INTERCOM_ACCESS_KEY": "LU-secret-value",
    "INTERCOM_UNLOCK_CODE": "4711#",
    "INTERCOM_AUDIO_TONES": "false",
}


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file under test speaks (and the state directory every test gets, see conftest.py),
    and a change is seen within 50 ms instead of 2 s."""
    for name in [name for name in os.environ if name.startswith("INTERCOM_") and name != "INTERCOM_STATE_DIR"]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(waiting, "POLL_S", 0.05)


@pytest.fixture
def board() -> Iterator[MockFactory]:
    pins = MockFactory(pin_class=WatchedPin)
    yield pins
    pins.reset()
    pins.close()


def write_env(path: Path, mode: int = 0o600, **values: str) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in {**VALID, **values}.items()))
    path.chmod(mode)
    return path


def fast_blink(states: list[PinState]) -> bool:
    """0.1 s on, 0.1 s off, on and off (the heartbeat is 0.1 s on, 1.9 s off)."""
    levels = [state.state for state in states]
    gaps = [state.timestamp for state in states]
    return all(a != b for a, b in itertools.pairwise(levels)) and all(
        abs(gap - 0.1) <= ABS_TOLERANCE + REL_TOLERANCE * 0.1 for gap in gaps
    )


def used(board: MockFactory) -> list[str]:
    """The pins anything opened (asking for a pin's history would open it)."""
    return sorted(pin.info.name for pin in board.pins.values())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]


def config_check_line(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["config", "check", "--env-file", str(path)]) == 2
    return capsys.readouterr().err.strip().removeprefix("intercom config: ")


async def started(path: Path, board: MockFactory | None) -> asyncio.Task[int]:
    task = asyncio.create_task(run_appliance(path, wait_for_settings=True, pin_factory=board))
    await asyncio.sleep(0)  # up to its wait: settings are read and the error is logged without a pause
    assert not task.done(), task.result()
    return task


async def exit_status(task: asyncio.Task[int]) -> int:
    async with asyncio.timeout(STEP):
        return await task


# -- the light's own settings, read leniently -------------------------------------------------------


def test_the_status_light_is_read_from_a_file_that_is_wrong_elsewhere(tmp_path):
    path = write_env(tmp_path / "intercom.env", INTERCOM_ROLE="porch", INTERCOM_LED_STATUS_PIN="12",
                     INTERCOM_LEDS_ACTIVE_LOW="yes", INTERCOM_PIN_FACTORY="mock")  # fmt: skip
    assert status_light(path, {}) == StatusLight(pin=12, active_low=True, mock=True)


@pytest.mark.parametrize(
    ("values", "environ", "light"),
    [
        ({}, {}, StatusLight(pin=5)),  # the default pin
        ({"INTERCOM_LED_STATUS_PIN": "GPIO12"}, {}, StatusLight(pin=5)),  # does not parse: the default
        ({"INTERCOM_LED_STATUS_PIN": "40"}, {}, StatusLight(pin=5)),  # not a header GPIO
        ({"INTERCOM_LED_STATUS_PIN": ""}, {}, StatusLight(pin=None)),  # not fitted
        ({"INTERCOM_LEDS_ACTIVE_LOW": "sometimes"}, {}, StatusLight(pin=5)),
        ({"INTERCOM_LED_STATUS_PIN": "12"}, {"INTERCOM_LED_STATUS_PIN": "16"}, StatusLight(pin=16)),  # as settings
        ({}, {"intercom_leds_active_low": "true"}, StatusLight(pin=5, active_low=True)),
    ],
)
def test_each_status_light_value_that_does_not_parse_is_its_default(tmp_path, values, environ, light):
    assert status_light(write_env(tmp_path / "intercom.env", **values), environ) == light


def test_a_missing_or_unreadable_file_leaves_the_environment(tmp_path):
    assert status_light(tmp_path / "missing.env", {"INTERCOM_LED_STATUS_PIN": "7"}) == StatusLight(pin=7)
    assert status_light(tmp_path, {}) == StatusLight(pin=5)  # a directory: unreadable as a file


@pytest.mark.parametrize(
    ("values", "strike"),
    [
        ({}, Relay(26)),  # the default pin, active high
        ({"INTERCOM_RELAY_PIN": " 16 ", "INTERCOM_RELAY_ACTIVE_LOW": "yes"}, Relay(16, active_low=True)),
        ({"INTERCOM_RELAY_PIN": ""}, None),  # no relay
        ({"INTERCOM_RELAY_PIN": "GPIO16"}, None),  # which pin the unit drove is not known: none is guessed
        ({"INTERCOM_RELAY_PIN": "40"}, None),
        ({"INTERCOM_RELAY_ACTIVE_LOW": "sometimes"}, None),  # a guessed level could energise the strike
    ],
)
def test_the_relay_is_read_leniently_but_never_guessed(tmp_path, values, strike):
    assert relay(write_env(tmp_path / "intercom.env", **values), {}) == strike


# -- the wait, in the process ---------------------------------------------------------------------


async def test_bad_settings_blink_the_status_light_fast_until_the_file_is_mended(tmp_path, board, caplog):
    path = write_env(tmp_path / "intercom.env", INTERCOM_RELAY_PULSE_S="forever", INTERCOM_LED_STATUS_PIN="12")
    task = await started(path, board)
    states = await history(board.pin(12), 7)
    assert fast_blink(states[3:]), states  # after the LED's set-up and the blink's start
    assert errors(caplog)[0].startswith("INTERCOM_RELAY_PULSE_S: Input should be a valid number")
    # The light's default pin (5) is not touched when the file names another; the relay is held off.
    assert used(board) == ["GPIO12", "GPIO26"]
    write_env(path)
    assert await exit_status(task) == SETTINGS_CHANGED
    count = len(board.pin(12).states)
    async with asyncio.timeout(STEP):  # closed: no more blinking
        assert not await asyncio.to_thread(board.pin(12).wait_for_states, count + 1, 0.3)


@pytest.mark.parametrize("problem", ["missing", "others-read-it", "group-writes-it", "bad-value", "misspelt"])
async def test_the_logged_line_is_the_line_config_check_prints(tmp_path, board, caplog, capsys, problem):
    path = tmp_path / "intercom.env"
    if problem == "others-read-it":
        write_env(path, mode=0o644)
    elif problem == "group-writes-it":
        write_env(path, mode=0o660)
    elif problem == "bad-value":
        write_env(path, INTERCOM_UNLOCK_CODE="open sesame")
    elif problem == "misspelt":
        write_env(path, INTERCOM_BUTON_ANSWER_PIN="5")
    task = await started(path, board)
    await history(board.pin(5), 4)  # the default pin: the file is missing, unreadable or fine for the light
    [logged] = errors(caplog)
    assert logged == config_check_line(path, capsys)
    if problem == "misspelt":
        assert logged.startswith("INTERCOM_BUTON_ANSWER_PIN: unknown; did you mean INTERCOM_BUTTON_ANSWER_PIN?")
    if problem in ("others-read-it", "group-writes-it"):
        path.chmod(0o640)  # what the line says to do
    else:
        write_env(path)
    assert await exit_status(task) == SETTINGS_CHANGED


@pytest.mark.parametrize(("active_low", "inactive"), [("false", False), ("true", True)])
async def test_while_it_waits_the_relay_is_driven_to_its_inactive_level(tmp_path, board, active_low, inactive):
    """As a unit killed mid-pulse would have left it: the pin at its active level, as an output."""
    left = board.pin(19)
    left.function, left.state = "output", not inactive
    path = write_env(tmp_path / "intercom.env", INTERCOM_ROLE="porch", INTERCOM_RELAY_PIN="19",
                     INTERCOM_RELAY_ACTIVE_LOW=active_low)  # fmt: skip
    task = await started(path, board)
    assert (left.function, left.state) == ("output", inactive)
    assert [state.state for state in left.states][-1] == inactive
    write_env(path)
    assert await exit_status(task) == SETTINGS_CHANGED
    assert left.state == inactive  # closed at its inactive level


@pytest.mark.parametrize("value", ["", "GPIO19"])
async def test_no_relay_pin_is_touched_when_there_is_none_or_it_does_not_parse(tmp_path, board, value):
    left = board.pin(19)
    left.function, left.state = "output", True
    task = await started(write_env(tmp_path / "intercom.env", INTERCOM_ROLE="porch", INTERCOM_RELAY_PIN=value), board)
    assert used(board) == ["GPIO19", "GPIO5"]  # the one this test made, and the status light
    assert left.state is True
    write_env(tmp_path / "intercom.env")
    assert await exit_status(task) == SETTINGS_CHANGED


async def test_a_unit_without_a_status_light_waits_all_the_same(tmp_path, board, caplog):
    path = write_env(tmp_path / "intercom.env", INTERCOM_ROLE="", INTERCOM_LED_STATUS_PIN="")
    task = await started(path, board)
    assert "no status light (INTERCOM_LED_STATUS_PIN is empty) to show it on" in caplog.text
    assert errors(caplog) == ["INTERCOM_ROLE: Input should be 'door' or 'desk' (got '')"]
    path.unlink()  # a deleted file is a change too
    assert await exit_status(task) == SETTINGS_CHANGED
    assert used(board) == ["GPIO26"]  # the relay, held off


async def test_without_gpio_it_waits_without_the_light(tmp_path, caplog, monkeypatch):
    """Valid settings, no GPIO: the unit's own "no GPIO here" line is what is shown."""
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    path = write_env(tmp_path / "intercom.env")
    with pytest.warns(PinFactoryFallback):
        task = await started(path, None)
    assert errors(caplog)[0].startswith("no GPIO here (")
    assert "the status light (GPIO5) cannot show it: " in caplog.text
    write_env(path, INTERCOM_PIN_FACTORY="mock")  # the fix the line suggests
    assert await exit_status(task) == SETTINGS_CHANGED


async def test_a_desk_whose_hub_cannot_listen_waits_too(tmp_path, board, caplog, hub):
    host, port = hub.address.rsplit(":", 1)  # the test's own hub holds it
    path = write_env(
        tmp_path / "intercom.env", INTERCOM_ROLE="desk", INTERCOM_IDENTITY="desk", INTERCOM_HUB_URL="",
        INTERCOM_HUB_EMBEDDED="true", INTERCOM_HUB_LISTEN=host, INTERCOM_HUB_PORT=port,
        INTERCOM_ACCESS_KEY="a-secret-that-is-long-enough-0123456789",
        INTERCOM_HUB_DATA_DIR=str(tmp_path / "desk-hub"),
    )  # fmt: skip
    task = asyncio.create_task(run_appliance(path, wait_for_settings=True, pin_factory=board))
    states = await history(board.pin(5), 12)  # the unit's own status light first, then the waiting one's
    assert fast_blink(states[-4:]), states
    assert errors(caplog)[0].startswith(f"INTERCOM_HUB_PORT: the hub cannot listen on {host} port {port} ")
    write_env(path, INTERCOM_ROLE="desk")
    assert await exit_status(task) == SETTINGS_CHANGED


async def test_without_the_flag_bad_settings_still_raise(tmp_path, board):
    from intercom.appliance.settings import SettingsError

    with pytest.raises(SettingsError, match="INTERCOM_ROLE"):
        await run_appliance(write_env(tmp_path / "intercom.env", INTERCOM_ROLE="porch"), pin_factory=board)
    assert used(board) == []  # before touching any pin, as ever


# -- the wait, as the service runs it -------------------------------------------------------------


@contextlib.asynccontextmanager
async def waiting_unit(tmp_path: Path, path: Path):
    """``intercom appliance --wait-for-settings`` with a fake systemd notify socket; yields the
    process and a function that returns each datagram it sent, in order."""
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "intercom.cli", "appliance", "--env-file", str(path), "--wait-for-settings",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": str(tmp_path / "notify"),
             "WATCHDOG_USEC": "400000"},
    )  # fmt: skip

    async def told() -> str:
        async with asyncio.timeout(STEP * 3):  # a cold start imports gpiozero and the SDK
            return (await asyncio.get_running_loop().sock_recv(systemd, 4096)).decode()

    try:
        yield process, told
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        systemd.close()


async def test_the_service_tells_systemd_the_line_and_exits_75_when_the_file_changes(tmp_path):
    path = tmp_path / "intercom.env"
    async with waiting_unit(tmp_path, path) as (process, told):
        assert await told() == f"READY=1\nSTATUS=settings: {path}: cannot read the settings (No such file or directory)"
        assert await told() == "WATCHDOG=1"
        write_env(path)
        async with asyncio.timeout(STEP):
            _, log = await process.communicate()
        assert process.returncode == SETTINGS_CHANGED == 75
        sent = []
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(0.1):
                    sent.append(await told())
        assert sent[-1] == "STOPPING=1", sent
        assert f"{path} changed: exiting 75 to be started again with it" in log.decode()


async def test_the_waiting_service_stops_cleanly_on_sigterm(tmp_path):
    path = write_env(tmp_path / "intercom.env", INTERCOM_IDENTITY="front door")
    async with waiting_unit(tmp_path, path) as (process, told):
        assert (await told()).startswith("READY=1\nSTATUS=settings: INTERCOM_IDENTITY: ")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STEP):
            _, log = await process.communicate()
        assert process.returncode == 0, log.decode()
