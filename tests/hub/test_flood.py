"""Issue 16's flood, against a real hub with its default limits: while 1,000 strangers' connections
are opened from 25 loopback addresses and another client sends 10,000 OPTIONS as fast as it can,
a door registers and places a call that a desk answers.

The flood comes from another process (bench/flooder.py), so that it costs the hub's event loop
what a flood from the network costs (its sockets), and the test's own loop stays the hub's and the
units'. The flooder says when its connections are open and its OPTIONS flowing, and goes on until
told to stop after the call and has sent 10,000 at least.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from intercom.sdk import CallStatus

from ..conftest import STEP
from ..units import DESK_HZ, DOOR_HZ, store_flow

FLOODER = Path(__file__).resolve().parents[2] / "bench" / "flooder.py"
STRANGERS, SOURCES, OPTIONS = 1000, 25, 10_000


async def line_from(flooder: asyncio.subprocess.Process) -> dict:
    assert flooder.stdout is not None
    async with asyncio.timeout(STEP * 3):
        line = await flooder.stdout.readline()
    assert line, "the flooder ended early"
    return json.loads(line)


async def test_a_door_registers_and_calls_during_the_flood(hub, make_unit):
    per_source = hub.running.config.max_connections_per_source
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", DESK_HZ)
    port = hub.address.rsplit(":", 1)[1]
    argv = ["--port", port, "--idle", str(STRANGERS), "--sources", str(SOURCES), "--options", str(OPTIONS)]
    flooder = await asyncio.create_subprocess_exec(
        sys.executable, str(FLOODER), *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        opened = await line_from(flooder)
        # the per-source limit let in its share from each address and refused the rest
        assert opened == {"idle": SOURCES * per_source, "idle_refused": STRANGERS - SOURCES * per_source}
        gate = hub.running.app.state.gate
        assert gate.count >= SOURCES * per_source
        assert gate.refused["max_connections_per_source"] == STRANGERS - SOURCES * per_source

        door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
        door_call = door.start_call()
        desk_call = await desk.accept(await desk.next_incoming())
        for unit in (door, desk):
            await unit.events.until(lambda unit=unit: CallStatus.CONFIRMED in unit.events.of("call.status"))
        async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as http:
            assert (await http.get("/healthz")).status_code == 200
        assert flooder.returncode is None  # all of it happened while the flood went on

        assert flooder.stdin is not None
        flooder.stdin.write(b"stop\n")
        await flooder.stdin.drain()
        result = await line_from(flooder)
        await door_call.disconnect()
        assert desk_call is not None
    finally:
        if flooder.returncode is None:
            flooder.kill()
        async with asyncio.timeout(STEP):
            await flooder.wait()
    assert result["sent"] >= OPTIONS
    # each of the flooder's connections was closed after its burst (the last one perhaps by the
    # flooder itself, once told to stop), the rest of what it sent dropped unparsed
    assert result["connections"] - 1 <= gate.refused["sip_message_rate"] <= result["connections"]
    assert result["answered"] <= result["connections"] * hub.running.config.sip_message_burst * 2
    assert result["answered"] < result["sent"]
