"""The door strike is off whenever the unit's process is not running: after a SIGKILL in the middle of
a relay pulse, the service's ``ExecStopPost=`` drives the relay pin to its inactive level within 1 s.

The hardware is mocked twice over, and only there. The unit runs for real (``intercom appliance``,
started from its env file as the service starts it, talking to a real hub on loopback, unlocked
by a real call's DTMF) on gpiozero's mock pins (``INTERCOM_PIN_FACTORY=mock``), whose levels die
with the process. And there is no GPIO here (no ``/dev/gpiochip*``, no gpio-sim), so the tool the
script drives the pin with, Raspberry Pi's ``pinctrl`` or libgpiod's ``gpioset``, is a stand-in on
``PATH`` that records its arguments: the test shows that the right command reaches the right pin
with the inactive level in time, not that a pin's voltage changed (only a real Pi shows that).

The command is the one in ``deploy/intercom.service`` itself, run as systemd would once the main
process is gone: its installed paths mapped to this checkout's, in an environment of ``PATH`` alone.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intercom.sdk import CallStatus

from ..units import DESK_HZ, STEP, store_flow
from .test_deploy import DEPLOY, script_value, unit_value
from .test_service import env_file

STRIKE_OFF = DEPLOY / "strike-off.sh"
WITHIN_S = 1.0  # from the kill to the pin driven inactive
CODE = "4711#"  # test_service's env file's unlock code

# What each stand-in says of itself: libgpiod's tools as Debian bookworm and trixie ship them.
GPIOD_V1 = "gpioset (libgpiod) v1.6.3"
GPIOD_V2 = "gpioset (libgpiod) v2.1.3"


class Tools:
    """A PATH of ``sed`` (all the script needs besides its GPIO tool) and stand-ins of the GPIO
    tools, each of which appends ``name arguments`` to a record and answers ``--version``."""

    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.record = directory / "calls"
        (self.bin / "sed").symlink_to(subprocess.check_output(["sh", "-c", "command -v sed"], text=True).strip())

    def stand_in(self, name: str, version: str = "", prints: str = "", status: int = 0) -> None:
        script = self.bin / name
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = --version ]; then echo {shlex.quote(version)}; exit 0; fi\n'
            f'echo "{name} $*" >>{shlex.quote(str(self.record))}\n'
            + (f"echo {shlex.quote(prints)}\n" if prints else "")
            + f"exit {status}\n"
        )
        script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), env={"PATH": str(self.bin)}, capture_output=True, text=True, timeout=STEP, check=False
        )


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


def stop_post_command(env: Path) -> list[str]:
    """``ExecStopPost=`` of deploy/intercom.service, as systemd would run it here: its prefixes
    (``+`` and the like) are systemd's, and the paths install.sh installs to are this checkout's."""
    line = unit_value("ExecStopPost")
    argv = shlex.split(line.lstrip("-+@:!"))
    installed = {script_value("STRIKE_OFF"): str(STRIKE_OFF), script_value("ENV_FILE"): str(env)}
    assert argv[0] in installed and str(env) in [installed.get(arg, arg) for arg in argv], line
    return [installed.get(arg, arg) for arg in argv]


def strike_off(tools: Tools, env: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return tools.run(str(STRIKE_OFF), "--env-file", str(env), *options)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


# -- the relay test: the real unit killed mid-pulse -----------------------------------------------


async def start_door(env: Path) -> asyncio.subprocess.Process:
    """``intercom appliance`` as deploy/intercom.service runs it, the env file alone saying what it
    is (no INTERCOM_ or GPIOZERO_ variable of the test's own)."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("INTERCOM_", "GPIOZERO_"))}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "intercom.cli", "--log-level", "info",
        "appliance", "--env-file", str(env), "--wait-for-settings",
        stderr=asyncio.subprocess.PIPE, env={**environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def logged(process: asyncio.subprocess.Process, lines: list[str], wanted: str) -> None:
    """Reads the unit's log into ``lines`` until a line ends with ``wanted``."""
    assert process.stderr is not None
    async with asyncio.timeout(STEP * 3):  # a cold start imports aiortc, PortAudio and gpiozero
        while not (lines and lines[-1].endswith(wanted)):
            line = await process.stderr.readline()
            assert line, "\n".join(lines)
            lines.append(line.decode().rstrip())


async def kill_and_stop_post(process: asyncio.subprocess.Process, env: Path, tools: Tools) -> tuple[float, str]:
    """SIGKILL, then the service's ExecStopPost once the process is gone (as systemd runs it on
    SIGCHLD): the seconds from the kill until that command returned, and what it said. The stand-in
    was called before the command returned, so those seconds bound the kill-to-pin time."""
    killed = time.monotonic()
    process.send_signal(signal.SIGKILL)
    async with asyncio.timeout(STEP):
        assert await process.wait() == -signal.SIGKILL
    result = await asyncio.to_thread(tools.run, *stop_post_command(env))
    elapsed = time.monotonic() - killed
    assert result.returncode == 0, result.stderr
    return elapsed, result.stderr


@pytest.mark.parametrize(("active_low", "inactive"), [("false", "dl"), ("true", "dh")])
async def test_killed_mid_pulse_the_stop_post_command_drives_the_pin_inactive_within_1_s(
    tmp_path, hub, make_unit, tools, active_low, inactive
):
    tools.stand_in("pinctrl")
    env = env_file(
        tmp_path, hub, INTERCOM_PIN_FACTORY="mock", INTERCOM_AUTO_ANSWER="true", INTERCOM_RELAY_PIN="21",
        INTERCOM_RELAY_ACTIVE_LOW=active_low, INTERCOM_RELAY_PULSE_S="30",
    )  # fmt: skip
    await store_flow(hub, "desk", "client:door")
    door = await start_door(env)
    lines: list[str] = []
    try:
        await logged(door, lines, "status connected")
        desk = await make_unit("desk", DESK_HZ, outgoing="desk")
        call = desk.start_call()
        await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))  # auto-answered
        call.send_digits(CODE)
        await logged(door, lines, "door strike energised for 30 s (GPIO21)")  # 30 s from now: mid-pulse
        assert tools.calls() == []  # nothing drove the pin back before the kill
        elapsed, said = await kill_and_stop_post(door, env, tools)
    finally:
        if door.returncode is None:
            door.kill()
            await door.wait()
    assert tools.calls() == [f"pinctrl set 21 op {inactive}"]
    print(f"kill to pin: {elapsed:.3f} s")
    assert elapsed < WITHIN_S, elapsed
    level = "high" if active_low == "true" else "low"
    assert said == f"intercom-strike-off: drove GPIO21 {level}: the door strike's relay is off\n"


async def test_a_unit_without_a_relay_is_left_alone(tmp_path, hub, tools):
    tools.stand_in("pinctrl")
    env = env_file(tmp_path, hub, INTERCOM_PIN_FACTORY="mock", INTERCOM_RELAY_PIN="")
    door = await start_door(env)
    try:
        await logged(door, [], "status connected")
        elapsed, said = await kill_and_stop_post(door, env, tools)
    finally:
        if door.returncode is None:
            door.kill()
            await door.wait()
    assert tools.calls() == []
    assert said == "intercom-strike-off: no relay (INTERCOM_RELAY_PIN is empty): nothing to drive\n"
    assert elapsed < WITHIN_S, elapsed


def test_the_service_runs_it_privileged_after_every_stop():
    """``+``: as root, so that the pin is driven whatever the gpio group's device permissions are."""
    line = unit_value("ExecStopPost")
    assert line == f"+{script_value('STRIKE_OFF')} --env-file {script_value('ENV_FILE')}"
    install = (DEPLOY / "install.sh").read_text()
    assert 'install -D -m 755 "$source_dir/deploy/strike-off.sh" "$STRIKE_OFF"' in install
    # Installed before release.sh installs the unit file that runs it.
    assert install.index('"$STRIKE_OFF"\n') < install.index('release=("$here/release.sh"')


# -- the tools: pinctrl first, else gpioset ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "version", "finds", "called"),
    [
        ("pinctrl", "", None, ["pinctrl set 26 op dl"]),
        ("gpioset", GPIOD_V1, "gpiochip4 26", ["gpiofind GPIO26", "gpioset gpiochip4 26=0"]),  # a Pi 5, kernel 6.1
        ("gpioset", GPIOD_V1, "", ["gpiofind GPIO26", "gpioset gpiochip0 26=0"]),  # no line names: chip 0
        ("gpioset", GPIOD_V2, None, ["gpioset -t 0 GPIO26=0"]),  # by name; exits once set
    ],
)
def test_each_tool_is_given_the_pin_and_its_inactive_level(tmp_path, tools, tool, version, finds, called):
    tools.stand_in(tool, version)
    if finds is not None:  # gpiofind fails when no line has the name
        tools.stand_in("gpiofind", prints=finds, status=0 if finds else 1)
    result = strike_off(tools, write(tmp_path / "intercom.env", "INTERCOM_ROLE=door\n"))
    assert (result.returncode, tools.calls()) == (0, called)


def test_pinctrl_is_preferred_to_gpioset(tmp_path, tools):
    """It sets the registers: the level stays after it exits, whatever the kernel does with a
    released line."""
    tools.stand_in("gpioset", GPIOD_V1)
    tools.stand_in("pinctrl")
    strike_off(tools, write(tmp_path / "intercom.env", "INTERCOM_RELAY_PIN=5\n"))
    assert tools.calls() == ["pinctrl set 5 op dl"]


def test_a_tool_that_fails_fails_the_command(tmp_path, tools):
    tools.stand_in("pinctrl", status=1)
    result = strike_off(tools, write(tmp_path / "intercom.env", ""))
    assert result.returncode == 1 and tools.calls() == ["pinctrl set 26 op dl"]
    assert "drove" not in result.stderr


def test_without_a_tool_it_says_what_is_missing(tmp_path, tools):
    """No pinctrl and no gpioset: on a machine without GPIO (a VM, CI) nothing is to be driven; on
    one with GPIO the strike cannot be held off, and the script fails naming the package."""
    result = strike_off(tools, write(tmp_path / "intercom.env", ""))
    if any(Path("/dev").glob("gpiochip*")) or any(Path("/dev").glob("gpiomem*")):
        assert result.returncode == 1 and "(apt install gpiod)" in result.stderr
    else:
        assert (result.returncode, result.stderr) == (0, "intercom-strike-off: no GPIO here: GPIO26 not driven\n")


# -- the env file, read and never run --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "gpio=26=op,dl"),  # neither set: the unit's defaults
        ("INTERCOM_RELAY_PIN=17\nINTERCOM_RELAY_ACTIVE_LOW=true\n", "gpio=17=op,dh"),
        ("INTERCOM_RELAY_PIN=\"17\"\nINTERCOM_RELAY_ACTIVE_LOW='Yes'\n", "gpio=17=op,dh"),  # quotes, any case
        ("  export INTERCOM_RELAY_PIN = 17   # the porch\n", "gpio=17=op,dl"),  # export, blanks, a comment
        ('INTERCOM_RELAY_PIN="17 # not a comment"\n', None),  # inside quotes it is the value
        ("INTERCOM_RELAY_PIN=17\r\nINTERCOM_RELAY_ACTIVE_LOW=on\r\n", "gpio=17=op,dh"),  # saved on Windows
        ("# INTERCOM_RELAY_PIN=17\nINTERCOM_RELAY_PINS=18\nXINTERCOM_RELAY_PIN=19\n", "gpio=26=op,dl"),  # not it
        ("INTERCOM_RELAY_PIN=17\nINTERCOM_RELAY_PIN=18\n", "gpio=18=op,dl"),  # the last one, as python-dotenv
        ("INTERCOM_RELAY_PIN=017\nINTERCOM_RELAY_ACTIVE_LOW=0\n", "gpio=17=op,dl"),  # as pydantic reads them
        ("INTERCOM_RELAY_PIN=\n", ""),  # no relay
        ("INTERCOM_RELAY_PIN=''  # none fitted\n", ""),
        ("INTERCOM_RELAY_PIN=GPIO17\n", None),
        ("INTERCOM_RELAY_PIN=40\n", None),  # not on the header
        ("INTERCOM_RELAY_PIN=1\n", None),  # the HAT EEPROM's
        ("INTERCOM_RELAY_PIN=17;reboot\n", None),
        ("INTERCOM_RELAY_PIN=$(reboot)\n", None),  # read, never run
        ("INTERCOM_RELAY_ACTIVE_LOW=sometimes\n", None),
        ("INTERCOM_RELAY_ACTIVE_LOW=\n", None),  # the unit refuses an empty flag too
    ],
)
def test_the_env_file_is_parsed_as_the_unit_parses_it(tmp_path, tools, text, line):
    """``--config-line`` shows what was read; None: the unit would refuse it, and nothing is driven."""
    result = strike_off(tools, write(tmp_path / "intercom.env", text), "--config-line")
    assert result.returncode == (1 if line is None else 0), result.stderr
    assert result.stdout == ("" if not line else f"{line}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("INTERCOM_RELAY_PIN=GPIO17\n", "INTERCOM_RELAY_PIN is 'GPIO17', not a GPIO of 2-27 (in {env}): no pin driven"),
        (
            "INTERCOM_RELAY_ACTIVE_LOW=low\n",
            "INTERCOM_RELAY_ACTIVE_LOW is 'low', not true or false (in {env}): no pin driven",
        ),
    ],
)
def test_a_bad_value_drives_nothing_and_names_the_variable(tmp_path, tools, text, message):
    """Which pin the unit last drove, at which level, is not known: a guess could energise the strike."""
    tools.stand_in("pinctrl")
    env = write(tmp_path / "intercom.env", text)
    result = strike_off(tools, env)
    assert (result.returncode, tools.calls()) == (1, [])
    assert result.stderr == f"intercom-strike-off: {message.format(env=env)}\n"


def test_an_unreadable_env_file_drives_nothing(tmp_path, tools):
    tools.stand_in("pinctrl")
    result = strike_off(tools, tmp_path / "missing.env")
    assert (result.returncode, tools.calls()) == (1, [])
    assert "cannot read" in result.stderr


def test_the_images_config_txt_line_is_the_one_for_the_example_settings(tmp_path, tools):
    """The SD-card image's config.txt drives the relay pin inactive from power-on: the line
    customize-rootfs.sh gives raspi-firmware is the script's for deploy/intercom.env.example."""
    result = strike_off(tools, DEPLOY / "intercom.env.example", "--config-line")
    assert result.returncode == 0, result.stderr
    custom = (DEPLOY / "image/customize-rootfs.sh").read_text()
    assert f"\n{result.stdout}" in custom.split("raspi-firmware-custom\" <<'CUSTOM'\n")[1].split("CUSTOM\n")[0]
    assert result.stdout == "gpio=26=op,dl\n"
    assert "gpiod" in (DEPLOY / "image/packages.txt").read_text().split()  # gpioset: Debian has no pinctrl
