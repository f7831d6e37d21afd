"""MQTT benchmark: the door's press to the ring event at an MQTT subscriber, next to the desk ringing; the bridge's CPU.

A real mosquitto on 127.0.0.1 (bench/mosquitto.py: a password file hashed by mosquitto_passwd, an
ACL) and two hub processes started through the CLI, each with a door and a desk unit (whole
appliances on gpiozero's mock pins, bench/appliance.py's) calling through it:

- bridge: ``intercom hub --mqtt-url mqtt://127.0.0.1:<port> --mqtt-username intercom
  --mqtt-password-file <file>``. The door is one of the hub's doors (``door``, the default), so
  the Home Assistant link publishes its doorbell. A subscriber (bench/mqtt_subscriber.py: aiomqtt in
  a process of its own, as Home Assistant is; a user that may only read ``intercom/#``) listens on
  ``intercom/door/doorbell`` (Home Assistant's event entity), ``intercom/door/event`` (the plain
  JSON of every webhook item) and the bridge's availability (the run starts once it reads ``online``)
  and says when each message came, by the system's monotonic clock, which the presses are timed by.
- plain: the same hub without the bridge: the baseline of the hub's CPU per call and of the desk ringing.

One press on the bridge's hub: t0 = the door's CALL pin driven low; the samples are the subscriber
receiving the ``ring`` event, the plain ``callCreated`` of the same call, and the desk's call LED
blinking for ringing. The desk rejects; the next press waits until both units are idle and the
subscriber has the call's ``missed`` event, so no call's messages overlap the next one's. The two
hubs take presses in turn, in blocks, each block a CPU window of its hub (the order flips every
block, so the machine's drift hits both alike): the hub's CPU per call with the bridge minus
without it is what the bridge costs. One press on each hub before the blocks is not counted (the
first call's imports and caches).

It prints one JSON object with every figure, the target and pass/fail, then a one-line summary.
Exit status: 0 when the target is met, 1 when it is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance import STEP_TIMEOUT, Moment, Units, door_and_desk, ring_once, ringing, store_call_flows, turn_away
from harness import (
    CpuWindow,
    cpu_seconds,
    create_key,
    free_port,
    fresh_hub,
    host_environment,
    ms_summary,
    package_versions,
    parse_args,
    run_and_report,
    wait_phase,
)
from mosquitto import Mosquitto, mosquitto_program

from intercom.auth import AccessKey
from intercom.hub.mqtt.topics import Topics

TARGET_RING_EVENT_P50_MS = 50.0
PRESSES, QUICK_PRESSES = 50, 5
BLOCK = 5  # presses per CPU window: a window of one would be near the clock tick (10 ms) it is read in
PHASE_TIMEOUT = 180.0
BRIDGE_USER, SUBSCRIBER_USER = "intercom", "subscriber"
ACL = f"""user {BRIDGE_USER}
topic readwrite intercom/#
topic readwrite homeassistant/#
user {SUBSCRIBER_USER}
topic read intercom/#
"""
SUBSCRIBER = Path(__file__).with_name("mqtt_subscriber.py")
TOPICS = Topics("intercom", "homeassistant")  # the bridge's default prefixes
DOORBELL, EVENTS, AVAILABILITY = (
    TOPICS.doorbell("door"),
    TOPICS.unit("door", "event"),
    TOPICS.unit("bridge", "availability"),
)


class Subscriber:
    """What the subscriber process (bench/mqtt_subscriber.py) received on the door's topics, and
    when, by the system's monotonic clock: the presses' own. Each message is keyed by what it says
    and which call it is about."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}  # the first arrival of each
        self.rings: asyncio.Queue[str] = asyncio.Queue()  # the calls rung, in order
        self._news = asyncio.Condition()

    async def listen(self, lines: asyncio.StreamReader) -> None:
        async for line in lines:
            heard = json.loads(line)
            key = arrival_key(heard["topic"], heard["payload"])
            self.arrived.setdefault(key, heard["at"])
            if key[0] == "ring":
                self.rings.put_nowait(key[1])
            async with self._news:
                self._news.notify_all()

    async def moment(self, kind: str, subject: str) -> float:
        """When ``kind`` about ``subject`` arrived, once it has."""
        async with self._news:
            await self._news.wait_for(lambda: (kind, subject) in self.arrived)
        return self.arrived[kind, subject]


def arrival_key(topic: str, payload: str) -> tuple[str, str]:
    """A doorbell event's ``event_type`` and call; a plain event's name (``callCreated``...) and row
    id; the bridge's availability and what it says."""
    if topic == AVAILABILITY:
        return "availability", payload
    item = json.loads(payload)
    if topic == DOORBELL:
        return item["event_type"], item.get("callId", "")
    return item["event"], item["payload"].get("id", "")


@contextlib.asynccontextmanager
async def subscribed(broker: Mosquitto) -> AsyncIterator[Subscriber]:
    """The subscriber process listening on the door's topics for the block (its password on its stdin)."""
    argv = [sys.executable, str(SUBSCRIBER), "--port", str(broker.port), "--user", SUBSCRIBER_USER]
    process = await asyncio.create_subprocess_exec(
        *argv, DOORBELL, EVENTS, AVAILABILITY, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    subscriber = Subscriber()
    listening = None
    try:
        process.stdin.write(f"{broker.passwords[SUBSCRIBER_USER]}\n".encode())
        await process.stdin.drain()
        first = await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT)
        if json.loads(first or "{}") != {"subscribed": True}:
            raise RuntimeError(f"the subscriber did not subscribe (it exited with {await process.wait()})")
        listening = asyncio.create_task(subscriber.listen(process.stdout))
        yield subscriber
    finally:
        if listening is not None:
            listening.cancel()
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), STEP_TIMEOUT)


@dataclass
class Side:
    """One hub and its units: the presses' samples and the hub's CPU windows."""

    name: str
    units: Units
    hub_pid: int
    rang: Moment = field(init=False)
    desk_ms: list[float] = field(default_factory=list)
    windows: list[CpuWindow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rang = ringing(self.units.desk)


async def measure(
    bridge: Side, plain: Side, subscriber: Subscriber, broker_pid: int, presses: int
) -> dict[str, object]:
    ring_ms: list[float] = []
    plain_ms: list[float] = []

    async def call(side: Side) -> None:
        """One press, the desk ringing, turned away; on the bridge's side its events at the subscriber."""
        pressed = await ring_once(side.units, side.rang)
        side.desk_ms.append((side.rang.at - pressed) * 1000)  # type: ignore[operator]
        if side is plain:
            await turn_away(side.units)
            return
        rung = await asyncio.wait_for(subscriber.rings.get(), STEP_TIMEOUT)
        ring_ms.append((subscriber.arrived["ring", rung] - pressed) * 1000)
        plain_ms.append((await asyncio.wait_for(subscriber.moment("callCreated", rung), STEP_TIMEOUT) - pressed) * 1000)
        await turn_away(side.units)
        await asyncio.wait_for(subscriber.moment("missed", rung), STEP_TIMEOUT)

    for side in (bridge, plain):  # the first call's imports and caches, not counted
        await call(side)
        side.desk_ms.clear()
    ring_ms.clear()
    plain_ms.clear()
    broker_cpu = 0.0
    for block in range(presses // BLOCK):
        for side in (bridge, plain) if block % 2 == 0 else (plain, bridge):
            window, broker_before = CpuWindow(side.hub_pid), cpu_seconds(broker_pid)
            for _ in range(BLOCK):
                await call(side)
            window.stop()
            side.windows.append(window)
            if side is bridge:
                broker_cpu += cpu_seconds(broker_pid) - broker_before
    for samples in (ring_ms, plain_ms, bridge.desk_ms, plain.desk_ms):
        samples.sort()
    counted = presses // BLOCK * BLOCK
    cpu = {side.name: CpuWindow.merged(side.windows) for side in (bridge, plain)}
    per_call = {name: window.hub_seconds / counted * 1000 for name, window in cpu.items()}
    return {
        "presses": counted,
        "press_to_ring_event_ms": ms_summary(ring_ms),
        "press_to_plain_event_ms": ms_summary(plain_ms),
        "press_to_desk_ringing_ms": ms_summary(bridge.desk_ms),
        "ratio_p50": round(statistics.median(ring_ms) / statistics.median(bridge.desk_ms), 2),
        "press_to_desk_ringing_without_bridge_ms": ms_summary(plain.desk_ms),
        "hub_cpu_ms_per_call": {
            "with_bridge": round(per_call["bridge"], 1),
            "without_bridge": round(per_call["plain"], 1),
            "bridge_cost": round(per_call["bridge"] - per_call["plain"], 1),
        },
        "broker_cpu_ms_per_call": round(broker_cpu / counted * 1000, 1),
        "notes": sorted({note for window in cpu.values() for note in window.other_load_notes()}),
    }


def prepared_hub(workdir: Path, name: str) -> tuple[Path, AccessKey]:
    """A hub's data directory with an access key for the units and the door's and desk's flows."""
    data_dir = workdir / name
    key = create_key(data_dir)
    store_call_flows(data_dir)
    return data_dir, key


async def run(workdir: Path, quick: bool) -> dict[str, object]:
    passwords = {user: secrets.token_urlsafe(16) for user in (BRIDGE_USER, SUBSCRIBER_USER)}
    broker = Mosquitto.prepared(workdir / "broker", free_port(), passwords, ACL)
    password_file = workdir / "mqtt-password"
    password_file.write_text(passwords[BRIDGE_USER] + "\n")
    password_file.chmod(0o600)
    bridge_args = ("--mqtt-url", broker.url, "--mqtt-username", BRIDGE_USER, "--mqtt-password-file", str(password_file))
    (bridge_dir, bridge_key), (plain_dir, plain_key) = prepared_hub(workdir, "bridge"), prepared_hub(workdir, "plain")
    await broker.start()
    try:
        async with (
            subscribed(broker) as subscriber,
            fresh_hub(bridge_dir, workdir, "bridge", bridge_args) as (bridge_port, bridge_pid),
            fresh_hub(plain_dir, workdir, "plain") as (plain_port, plain_pid),
            door_and_desk(bridge_port, bridge_key, workdir / "bridge") as bridge_units,
            door_and_desk(plain_port, plain_key, workdir / "plain") as plain_units,
        ):
            try:
                await asyncio.wait_for(subscriber.moment("availability", "online"), STEP_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(f"the hub's bridge not online in {STEP_TIMEOUT:.0f} s (its log above)") from None
            bridge, plain = Side("bridge", bridge_units, bridge_pid), Side("plain", plain_units, plain_pid)
            assert broker.process is not None
            phase = measure(bridge, plain, subscriber, broker.process.pid, QUICK_PRESSES if quick else PRESSES)
            return await wait_phase("presses", phase, PHASE_TIMEOUT)
    finally:
        await broker.stop()


def mosquitto_version() -> str | None:
    program = mosquitto_program()
    if program is None:
        return None
    output = subprocess.run([program, "-h"], capture_output=True, text=True, timeout=10).stdout
    return output.splitlines()[0].removeprefix("mosquitto version ") if output else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], f"{QUICK_PRESSES} presses")

    def verdict(figures: dict[str, object]) -> dict[str, bool]:
        met = figures["press_to_ring_event_ms"]["p50"] <= TARGET_RING_EVENT_P50_MS  # type: ignore[index]
        return {"press_to_ring_event": met, "all": met}

    def summary_line(figures: dict[str, object]) -> str:
        ring, plain = figures["press_to_ring_event_ms"], figures["press_to_plain_event_ms"]
        desk, cpu = figures["press_to_desk_ringing_ms"], figures["hub_cpu_ms_per_call"]
        return (
            f"mqtt: press to ring event p50 {ring['p50']}ms p90 {ring['p90']}ms "  # type: ignore[index]
            f"(target {TARGET_RING_EVENT_P50_MS:.0f}ms), plain event p50 {plain['p50']}ms, "  # type: ignore[index]
            f"desk ringing p50 {desk['p50']}ms ({figures['ratio_p50']}x; "  # type: ignore[index]
            f"{figures['press_to_desk_ringing_without_bridge_ms']['p50']}ms without the bridge); "  # type: ignore[index]
            f"hub CPU per call {cpu['with_bridge']}ms with the bridge, {cpu['without_bridge']}ms without"  # type: ignore[index]
        )

    def environment() -> dict[str, object]:
        versions = package_versions(["intercom", "aiomqtt", "paho-mqtt", "gpiozero", "aiortc"])
        return {**host_environment(), "loadavg_at_end": os.getloadavg(), **versions, "mosquitto": mosquitto_version()}

    targets = {"press_to_ring_event_p50_ms_max": TARGET_RING_EVENT_P50_MS}
    return run_and_report(args, lambda workdir: run(workdir, args.quick), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
