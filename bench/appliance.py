"""Appliance benchmark: button press to desk ringing, UNLOCK to the strike, and one unit's cold start, idle CPU and RSS.

Phases, each on a fresh hub process started through the CLI (``intercom hub``):

1. press: a door unit and a desk unit (whole appliances: settings, panel, lights, controller) run
   in this process on gpiozero's mock pins. The door's CALL pin is driven low; the time until the
   desk's controller lights its call LED for ringing is one sample. Each call is turned away
   (REJECT) and the next press waits until both units are idle again. Interleaved with those
   presses, the same path without GPIO as the baseline: the door's SDK ``start_call()`` to the
   desk's ``incoming`` event, so that what the panel and controller add is visible.
2. unlock: the same two units in a call (the door called, the desk answered). The desk's UNLOCK pin
   is driven low; the time until the door's unit energises its strike is one sample (the desk's
   unlock request through the hub, the door's verdict and audit write). Interleaved with those,
   the baseline: the desk's SDK ``send_digits`` of one digit to the door's ``digits`` event (one
   INFO through the hub, nothing judged). Before them, a few samples of the old way, a 6-digit
   code typed as DTMF from the desk (one digit per 600 ms) to the strike, for comparison.
3. unit: ``intercom appliance`` is started as a process of its own (mock pins, an env file), as
   systemd would: a door unit against the hub process. Cold start is process start to its "status
   connected" log line; then, idle and connected, its CPU over a 10 s window and its RSS.
4. desk_with_hub: the same for a desk unit that runs the hub inside it (``INTERCOM_HUB_EMBEDDED``),
   connected to its own hub; the targets hold for it too.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

from gpiozero.pins.mock import MockFactory
from harness import (
    HOST,
    call_ended,
    cpu_seconds,
    create_key,
    fresh_hub,
    host_environment,
    ms_summary,
    package_versions,
    parse_args,
    rss_mb,
    run_and_report,
    wait_phase,
)

from intercom.appliance.settings import Settings
from intercom.appliance.unit import Unit
from intercom.auth import AccessKey
from intercom.auth.keys import new_key_id, new_key_secret
from intercom.hub import Storage, blocking
from intercom.hub.callflows import CallFlow
from intercom.media import MediaPolicy, RecordingSink, ToneSource
from intercom.sdk import Call, CallAudio, CallStatus

TARGET_PRESS_TO_RING_P50_MS = 100.0
TARGET_UNLOCK_P50_MS = 300.0
TARGET_COLD_START_S = 3.0
TARGET_IDLE_CPU_PCT = 1.0
TARGET_RSS_MB = 110.0
PRESSES, QUICK_PRESSES = 30, 8
TYPED, QUICK_TYPED = 3, 1  # samples of the typed code: each takes ~3.6 s
IDLE_WINDOW_S, QUICK_IDLE_WINDOW_S = 10.0, 3.0
PHASE_TIMEOUT = 180.0
STEP_TIMEOUT = 15.0
CALL_PIN, UNLOCK_PIN, RELAY_PIN = 17, 24, 26  # the default pin map
UNLOCK_CODE = "583920#"  # six digits, as deploy/intercom.env.example suggests
RELAY_PULSE_S = 0.2
LOOPBACK = MediaPolicy(host_addresses=(HOST,))


def settings_for(role: str, port: int, key: AccessKey, workdir: Path) -> Settings:
    state_dir = workdir / f"{role}-state"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return Settings(
        role=role, identity=role, hub_url=f"ws://{HOST}:{port}", access_key_id=key.id, access_key=key.secret,
        call_flow=role, unlock_code=UNLOCK_CODE, relay_pulse_s=RELAY_PULSE_S, state_dir=state_dir,
    )  # fmt: skip


class Moment:
    """When a unit last told its watchers something: the desk's controller lighting its call LED for
    ringing, or the door energising its strike."""

    def __init__(self, unit: Unit, told: Callable[[str, str, object], bool]) -> None:
        self.at: float | None = None
        self.event = asyncio.Event()
        self._told = told
        unit.watchers.append(self._watch)

    def _watch(self, kind: str, name: str, value: object) -> None:
        if self._told(kind, name, value):
            self.at = time.monotonic()
            self.event.set()


def ringing(desk: Unit) -> Moment:
    return Moment(desk, lambda kind, name, value: kind == "light" and name == "call" and value == "ring_blink")


def strike(door: Unit) -> Moment:
    return Moment(door, lambda kind, _name, _value: kind == "relay")


class Units(NamedTuple):
    door: Unit
    desk: Unit
    door_board: MockFactory
    desk_board: MockFactory


@contextlib.asynccontextmanager
async def door_and_desk(port: int, key: AccessKey, workdir: Path) -> AsyncIterator[Units]:
    """A door and a desk unit, each on a mock board of its own, registered with the hub on ``port``
    for the block, and stopped after it. ``workdir``: their state directories go there."""
    audio = CallAudio(source=lambda: ToneSource(440.0), sink=RecordingSink, policy=LOOPBACK, tones=None)
    door_board, desk_board = MockFactory(), MockFactory()
    desk = Unit(settings_for("desk", port, key, workdir), audio, pin_factory=desk_board)
    door = Unit(settings_for("door", port, key, workdir), audio, pin_factory=door_board)
    try:
        await desk.start()
        await door.start()
        yield Units(door, desk, door_board, desk_board)
    finally:
        for unit in (door, desk):
            await asyncio.wait_for(unit.stop(), STEP_TIMEOUT)
        for board in (door_board, desk_board):
            board.reset()
            board.close()


async def idle(unit: Unit) -> None:
    while unit.controller.call is not None or unit.controller.offered is not None:
        await asyncio.sleep(0.01)  # between samples only: the next press waits for both units to settle


def press(board: MockFactory, pin: int) -> float:
    """Press and release a button; when it went down."""
    pressed = time.monotonic()
    board.pin(pin).drive_low()
    board.pin(pin).drive_high()
    return pressed


async def released(board: MockFactory) -> None:
    await asyncio.sleep(RELAY_PULSE_S)
    while board.pin(RELAY_PIN).state:
        await asyncio.sleep(0.01)  # between samples only: the next UNLOCK finds the strike at rest


async def confirmed(unit: Unit) -> Call:
    while unit.controller.call is None or unit.controller.call.status is not CallStatus.CONFIRMED:
        await asyncio.sleep(0.01)
    return unit.controller.call


async def measure_unlocks(port: int, key: AccessKey, workdir: Path, presses: int, typed: int) -> dict[str, object]:
    unlock_ms: list[float] = []
    digit_ms: list[float] = []
    typed_ms: list[float] = []
    async with door_and_desk(port, key, workdir) as units:
        desk, door = units.desk, units.door
        rang, struck = ringing(desk), strike(door)
        press(units.door_board, CALL_PIN)
        await asyncio.wait_for(rang.event.wait(), STEP_TIMEOUT)
        desk.controller.press("answer")
        desk_call = await asyncio.wait_for(confirmed(desk), STEP_TIMEOUT)
        door_call = await asyncio.wait_for(confirmed(door), STEP_TIMEOUT)
        heard = asyncio.Event()
        door_call.on("digits", lambda digit: heard.set())
        for _ in range(typed):  # first: the single digits below are not an attempt's start
            struck.event.clear()
            sent = time.monotonic()
            desk_call.send_digits(UNLOCK_CODE)
            await asyncio.wait_for(struck.event.wait(), STEP_TIMEOUT)
            assert struck.at is not None
            typed_ms.append((struck.at - sent) * 1000)
            await asyncio.wait_for(released(units.door_board), STEP_TIMEOUT)
        for _ in range(presses):
            struck.event.clear()
            pressed = press(units.desk_board, UNLOCK_PIN)
            await asyncio.wait_for(struck.event.wait(), STEP_TIMEOUT)
            assert struck.at is not None
            unlock_ms.append((struck.at - pressed) * 1000)
            await asyncio.wait_for(released(units.door_board), STEP_TIMEOUT)

            heard.clear()
            sent = time.monotonic()
            desk_call.send_digits("1")  # the baseline: one INFO through the hub, nothing judged
            await asyncio.wait_for(heard.wait(), STEP_TIMEOUT)
            digit_ms.append((time.monotonic() - sent) * 1000)
    unlock_ms.sort()
    digit_ms.sort()
    typed_ms.sort()
    return {
        "presses": presses,
        "unlock_pressed_to_strike_ms": ms_summary(unlock_ms),
        "sdk_digit_to_door_digits_event_ms": ms_summary(digit_ms),
        "typed_code_to_strike_ms": ms_summary(typed_ms),
        "typed_code": f"{len(UNLOCK_CODE.removesuffix('#'))} digits and #, as DTMF",
        "ratio_p50": round(statistics.median(unlock_ms) / statistics.median(digit_ms), 2),
    }


async def ring_once(units: Units, rang: Moment) -> float:
    """The door's CALL button pressed until the desk rang (``rang.at``): when it was pressed."""
    rang.event.clear()
    pressed = press(units.door_board, CALL_PIN)
    await asyncio.wait_for(rang.event.wait(), STEP_TIMEOUT)
    return pressed


async def turn_away(units: Units) -> None:
    """REJECT at the desk, until both units are idle again."""
    units.desk.controller.press("reject")
    await asyncio.wait_for(asyncio.gather(idle(units.desk), idle(units.door)), STEP_TIMEOUT)


async def measure_presses(port: int, key: AccessKey, workdir: Path, presses: int) -> dict[str, object]:
    press_ms: list[float] = []
    sdk_ms: list[float] = []
    async with door_and_desk(port, key, workdir) as units:
        rang = ringing(units.desk)
        offered = asyncio.Event()
        units.desk.client.on("incoming", lambda incoming: offered.set())
        for _ in range(presses):
            pressed = await ring_once(units, rang)
            press_ms.append((rang.at - pressed) * 1000)  # type: ignore[operator]
            await turn_away(units)

            offered.clear()
            started = time.monotonic()
            call = units.door.client.start_call()  # the baseline: the SDK alone, no GPIO or controller
            await asyncio.wait_for(offered.wait(), STEP_TIMEOUT)
            sdk_ms.append((time.monotonic() - started) * 1000)
            units.desk.controller.press("reject")
            await asyncio.wait_for(call_ended(call), STEP_TIMEOUT)
            await asyncio.wait_for(idle(units.desk), STEP_TIMEOUT)
    press_ms.sort()
    sdk_ms.sort()
    return {
        "presses": presses,
        "press_to_desk_ringing_ms": ms_summary(press_ms),
        "sdk_start_call_to_incoming_ms": ms_summary(sdk_ms),
        "ratio_p50": round(statistics.median(press_ms) / statistics.median(sdk_ms), 2),
    }


def door_values(port: int, key: AccessKey, workdir: Path) -> dict[str, str]:
    """A door unit's env file, against the hub process on ``port``."""
    state_dir = workdir / "unit-state"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return {
        "INTERCOM_ROLE": "door", "INTERCOM_IDENTITY": "benchdoor", "INTERCOM_HUB_URL": f"ws://{HOST}:{port}",
        "INTERCOM_ACCESS_KEY_ID": key.id, "INTERCOM_ACCESS_KEY": key.secret, "INTERCOM_UNLOCK_CODE": UNLOCK_CODE,
        "INTERCOM_CALL_FLOW": "door", "INTERCOM_STATE_DIR": str(state_dir),
    }  # fmt: skip


def desk_hub_values(workdir: Path) -> dict[str, str]:
    """A desk unit's env file that runs the hub inside the unit: the usual two-unit install."""
    return {
        "INTERCOM_ROLE": "desk", "INTERCOM_IDENTITY": "benchdesk", "INTERCOM_HUB_EMBEDDED": "true",
        "INTERCOM_HUB_LISTEN": HOST, "INTERCOM_HUB_PORT": "0", "INTERCOM_HUB_DATA_DIR": str(workdir / "desk-hub"),
        "INTERCOM_ACCESS_KEY_ID": new_key_id(), "INTERCOM_ACCESS_KEY": new_key_secret(),
        "INTERCOM_UNLOCK_CODE": UNLOCK_CODE,
    }  # fmt: skip


async def measure_unit(values: dict[str, str], workdir: Path, window_s: float) -> dict[str, object]:
    env_file = workdir / "intercom.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    env_file.chmod(0o600)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "intercom.cli", "--log-level", "info", "appliance", "--env-file", str(env_file),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        while True:
            line = await asyncio.wait_for(process.stderr.readline(), STEP_TIMEOUT * 2)
            if not line:
                raise RuntimeError("the unit exited before it connected")
            if line.decode().rstrip().endswith("status connected"):
                break
        cold_start = time.monotonic() - started
        await asyncio.sleep(1.0)  # let start-up work (imports, first timers) finish before the window
        cpu_before, window_started = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(window_s)  # the measurement window itself
        idle_share = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - window_started)
        rss = rss_mb(process.pid)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), STEP_TIMEOUT)
    return {
        "cold_start_to_connected_s": round(cold_start, 2),
        "idle_cpu_pct_of_core": round(idle_share * 100, 2),
        "idle_window_s": window_s,
        "rss_mb": round(rss, 1),
        "exit_code_on_sigterm": process.returncode,
    }


def store_call_flows(data_dir: Path) -> None:
    """The units' call flows in the hub's database: the door rings the desk, the desk the door."""
    storage = Storage(data_dir)
    for flow, callee in (("door", "desk"), ("desk", "door")):
        steps = [{"action": "transfer", "options": {"destination": f"client:{callee}", "timeout": 30}}]
        blocking(storage.create_call_flow(CallFlow.model_validate({"id": flow, "title": flow, "steps": steps})))
    storage.close()


async def run(workdir: Path, quick: bool) -> dict[str, object]:
    data_dir = workdir / "hub"
    key = create_key(data_dir)
    store_call_flows(data_dir)
    async with fresh_hub(data_dir, workdir, "press") as (port, _):
        press = await wait_phase(
            "press", measure_presses(port, key, workdir, QUICK_PRESSES if quick else PRESSES), PHASE_TIMEOUT
        )
    async with fresh_hub(data_dir, workdir, "unlock") as (port, _):
        samples = (QUICK_PRESSES, QUICK_TYPED) if quick else (PRESSES, TYPED)
        unlock = await wait_phase("unlock", measure_unlocks(port, key, workdir, *samples), PHASE_TIMEOUT)
    window = QUICK_IDLE_WINDOW_S if quick else IDLE_WINDOW_S
    async with fresh_hub(data_dir, workdir, "unit") as (port, _):
        unit = await wait_phase("unit", measure_unit(door_values(port, key, workdir), workdir, window), PHASE_TIMEOUT)
    desk_hub = await wait_phase("desk_hub", measure_unit(desk_hub_values(workdir), workdir, window), PHASE_TIMEOUT)
    return {"press": press, "unlock": unlock, "unit": unit, "desk_with_hub": desk_hub}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(
        argv, __doc__.splitlines()[0], f"{QUICK_PRESSES} presses and a {QUICK_IDLE_WINDOW_S:.0f} s window"
    )

    def verdict(figures: dict[str, object]) -> dict[str, bool]:
        press, unlock = figures["press"], figures["unlock"]
        passed = {
            "press_to_ring": press["press_to_desk_ringing_ms"]["p50"] <= TARGET_PRESS_TO_RING_P50_MS,  # type: ignore[index]
            "unlock_to_strike": unlock["unlock_pressed_to_strike_ms"]["p50"] <= TARGET_UNLOCK_P50_MS,  # type: ignore[index]
        }
        for name in ("unit", "desk_with_hub"):  # the targets hold for a unit, the hub inside it or not
            unit = figures[name]
            passed |= {
                f"{name}_cold_start": unit["cold_start_to_connected_s"] <= TARGET_COLD_START_S,  # type: ignore[index]
                f"{name}_idle_cpu": unit["idle_cpu_pct_of_core"] <= TARGET_IDLE_CPU_PCT,  # type: ignore[index]
                f"{name}_rss": unit["rss_mb"] <= TARGET_RSS_MB,  # type: ignore[index]
            }
        return {**passed, "all": all(passed.values())}

    def summary_line(figures: dict[str, object]) -> str:
        press, unit, desk = figures["press"], figures["unit"], figures["desk_with_hub"]
        unlock = figures["unlock"]
        return (
            f"appliance: press to desk ringing p50 {press['press_to_desk_ringing_ms']['p50']}ms "  # type: ignore[index]
            f"(SDK alone {press['sdk_start_call_to_incoming_ms']['p50']}ms, {press['ratio_p50']}x); "  # type: ignore[index]
            f"UNLOCK to strike p50 {unlock['unlock_pressed_to_strike_ms']['p50']}ms "  # type: ignore[index]
            f"(one digit {unlock['sdk_digit_to_door_digits_event_ms']['p50']}ms, "  # type: ignore[index]
            f"typed 6-digit code {unlock['typed_code_to_strike_ms']['p50']}ms); "  # type: ignore[index]
            f"door: cold start {unit['cold_start_to_connected_s']}s, idle {unit['idle_cpu_pct_of_core']}% of a core, "  # type: ignore[index]
            f"RSS {unit['rss_mb']} MB; desk with the hub: cold start {desk['cold_start_to_connected_s']}s, "  # type: ignore[index]
            f"idle {desk['idle_cpu_pct_of_core']}%, RSS {desk['rss_mb']} MB"  # type: ignore[index]
        )

    targets = {
        "press_to_desk_ringing_p50_ms_max": TARGET_PRESS_TO_RING_P50_MS,
        "unlock_pressed_to_strike_p50_ms_max": TARGET_UNLOCK_P50_MS,
        "cold_start_s_max": TARGET_COLD_START_S,
        "idle_cpu_pct_of_core_max": TARGET_IDLE_CPU_PCT,
        "rss_mb_max": TARGET_RSS_MB,
    }

    def environment() -> dict[str, object]:
        return {**host_environment(), **package_versions(["intercom", "gpiozero", "aiortc", "websockets"])}

    return run_and_report(args, lambda workdir: run(workdir, args.quick), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
