"""``intercom appliance`` as a process: it connects, shows it, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from gpiozero.exc import PinFactoryFallback

from intercom.cli import main

from ..units import STEP


def env_file(tmp_path: Path, hub, **extra: str) -> Path:
    state = tmp_path / "state"  # the door's unlock log: INTERCOM_STATE_DIR, which systemd makes
    state.mkdir(mode=0o700, exist_ok=True)
    values = {
        "INTERCOM_STATE_DIR": str(state),
        "INTERCOM_ROLE": "door", "INTERCOM_IDENTITY": "door", "INTERCOM_HUB_URL": f"ws://{hub.address}",
        "INTERCOM_ACCESS_KEY_ID": hub.key.id, "INTERCOM_ACCESS_KEY": hub.key.secret,
        "INTERCOM_UNLOCK_CODE": "4711#", "INTERCOM_AUDIO_TONES": "false", **extra,
    }  # fmt: skip
    path = tmp_path / "intercom.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)
    return path


async def run_until_connected(path: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> tuple[list[str], str]:
    """Run ``intercom appliance`` (under ``wrapper``, a command that runs its arguments) until it
    logs ``status connected``, then SIGTERM it; its log lines until then, and the rest of its log
    once it exited (status 0)."""
    process = await asyncio.create_subprocess_exec(
        *wrapper, sys.executable, "-m", "intercom.cli", "--log-level", "info", "appliance", "--env-file", str(path),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip
    lines: list[str] = []
    try:
        async with asyncio.timeout(STEP * 3):  # a cold start imports aiortc, PortAudio and gpiozero
            while not any(line.endswith("status connected") for line in lines):
                line = await process.stderr.readline()
                assert line, "\n".join(lines)
                lines.append(line.decode().rstrip())
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STEP):
            _, rest = await process.communicate()
            assert await process.wait() == 0, rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return lines, rest.decode()


def received(systemd: socket.socket) -> list[str]:
    """What the unit told the notify socket, in order; the socket closed."""
    told = []
    with contextlib.suppress(BlockingIOError):
        while True:
            told.append(systemd.recv(4096).decode())
    systemd.close()
    return told


async def test_the_unit_connects_tells_systemd_and_stops_cleanly_on_sigterm(tmp_path, hub):
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # plays systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    _, rest = await run_until_connected(
        env_file(tmp_path, hub), {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    )
    assert "door unit 'door' stopped" in rest
    told = received(systemd)
    assert told[0].startswith("READY=1\nSTATUS=door door: connecting"), told
    assert told.index("STATUS=door door: connected") < told.index("STOPPING=1"), told
    assert told[-1] == "STATUS=door door: offline", told  # un-registered on the way out
    assert told.count("WATCHDOG=1") >= 1  # every 0.2 s while it ran


async def test_a_desk_hosting_the_hub_starts_it_connects_to_it_and_stops_both(tmp_path, hub):
    path = env_file(
        tmp_path, hub, INTERCOM_ROLE="desk", INTERCOM_IDENTITY="desk", INTERCOM_HUB_URL="",
        INTERCOM_HUB_EMBEDDED="true", INTERCOM_HUB_LISTEN="127.0.0.1", INTERCOM_HUB_PORT="0",
        INTERCOM_HUB_DATA_DIR=str(tmp_path / "desk-hub"),
    )  # fmt: skip
    lines, rest = await run_until_connected(path, {})
    assert any("hub listening on 127.0.0.1 port" in line for line in lines), lines
    assert "desk unit 'desk' stopped" in rest
    assert (tmp_path / "desk-hub" / "intercom.sqlite3").exists()


def test_bad_settings_stop_start_up_with_one_line(tmp_path, hub, capsys):
    path = env_file(tmp_path, hub, INTERCOM_RELAY_PULSE_S="forever")
    assert main(["appliance", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("intercom appliance: INTERCOM_RELAY_PULSE_S: Input should be a valid number") and "\n" not in err
    )


def test_without_gpio_it_says_how_to_try_it(tmp_path, hub, monkeypatch, capsys):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.warns(PinFactoryFallback):  # gpiozero tries lgpio, RPi.GPIO, pigpio and native in turn
        assert main(["appliance", "--env-file", str(env_file(tmp_path, hub))]) == 2
    assert "GPIOZERO_PIN_FACTORY=mock runs the unit without hardware" in capsys.readouterr().err


def test_a_desk_whose_hub_port_is_taken_stops_with_one_line(tmp_path, hub, capsys):
    host, port = hub.address.rsplit(":", 1)  # the test's own hub holds it
    path = env_file(
        tmp_path, hub, INTERCOM_ROLE="desk", INTERCOM_IDENTITY="desk", INTERCOM_HUB_URL="",
        INTERCOM_HUB_EMBEDDED="true", INTERCOM_HUB_LISTEN=host, INTERCOM_HUB_PORT=port,
        INTERCOM_HUB_DATA_DIR=str(tmp_path / "desk-hub"),
    )  # fmt: skip
    assert main(["appliance", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"intercom appliance: INTERCOM_HUB_PORT: the hub cannot listen on {host} port {port} ")
    assert "\n" not in err


async def test_the_env_file_can_ask_for_mock_pins_where_there_is_no_gpio(tmp_path, hub):
    """A unit in a VM (the SD-card image's boot test): INTERCOM_PIN_FACTORY=mock, nothing in the environment."""
    _, rest = await run_until_connected(
        env_file(tmp_path, hub, INTERCOM_PIN_FACTORY="mock"), {"GPIOZERO_PIN_FACTORY": ""}
    )
    assert "door unit 'door' stopped" in rest
