"""Calls never fail because the disk cannot be written: a real hub on a real filesystem that is
full, or read-only, still connects calls with their audio; it says "not logged" once, ``/metrics``
shows the fault, and once the disk has room again the call log gets the rows it held back.

The filesystem is a 16 MB tmpfs in a mount namespace of the hub's own (``unshare --user
--map-root-user --mount``: no root needed, nothing left mounted when the hub exits, whatever
the test's outcome), so the hub runs in a subprocess (tests/hub/fault_hub.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from intercom.auth import ADMIN, AccessKey
from intercom.hub import HubConfig, RunningHub

from ..conftest import Hub, end_with_its_input
from ..flows.flows import until_answered
from ..units import DESK_HZ, DOOR_HZ, STEP, Unit

ROOT = Path(__file__).resolve().parents[2]
MOUNT = 'mount -t tmpfs -o size=16m,mode=0700 tmpfs "$1" && exec "$0" -m tests.hub.fault_hub "$@"'


def namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not namespaces_work(), reason="unshare --user --mount is not allowed here")


class FaultHub(Hub):
    process: asyncio.subprocess.Process

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{line}\n".encode())
        async with asyncio.timeout(STEP):
            assert (await self.process.stdout.readline()).strip() == b"ok"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://{self.address}", timeout=STEP) as http:
            return await http.get(path, headers={"Authorization": f"AccessKey {self.key.secret}"})

    async def metric(self, line_start: str) -> float:
        text = (await self.get("/metrics")).text
        return float(next(line for line in text.splitlines() if line.startswith(line_start)).split()[-1])

    async def logged_calls(self) -> list[dict]:
        return (await self.get("/v1/calls")).json()["data"]


@pytest.fixture
async def hub(tmp_path: Path, request) -> AsyncIterator[FaultHub]:
    """The hub in its namespace; ``request.param``: ``"--read-only"`` or nothing."""
    mount = tmp_path / "data"
    mount.mkdir()
    process = await asyncio.create_subprocess_exec(
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, sys.executable, str(mount),
        *([request.param] if request.param else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        async with asyncio.timeout(STEP * 2):
            started = json.loads(await process.stdout.readline())
        config = HubConfig(data_dir=mount, host="127.0.0.1", port=started["port"])
        key = AccessKey(started["key_id"], started["key_secret"], "tests", time.time(), scope=ADMIN)
        fault_hub = FaultHub(RunningHub(config, app=None), storage=None, key=key)  # type: ignore[arg-type]
        fault_hub.process = process
        yield fault_hub
    finally:
        await end_with_its_input(process)
        assert not os.path.ismount(mount)  # the tmpfs lived only in the hub's namespace


async def hub_log(hub: FaultHub) -> str:
    """Everything the hub logged, once it has stopped."""
    assert hub.process.stdin is not None and hub.process.stderr is not None
    hub.process.stdin.close()
    async with asyncio.timeout(STEP):
        await hub.process.wait()
        return (await hub.process.stderr.read()).decode()


async def a_call_with_audio(make_unit, desk: Unit, meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
    """The door calls, the desk answers, each hears the other (after ``meanwhile`` too, if given,
    run while they talk); the door hangs up."""
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming(len(desk.events.incoming) + 1))
    await until_answered(door)
    await until_answered(desk)
    for step in (None, meanwhile) if meanwhile else (None,):
        if step is not None:
            await step()
        for sink, hz in ((answered.sink, DOOR_HZ), (call.sink, DESK_HZ)):
            await sink.wait_until(lambda s=sink, hz=hz: s.dominant_frequency(0.3) == pytest.approx(hz, abs=15), STEP)
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await door.client.destroy()


async def until_metric(hub: FaultHub, line_start: str, value: float) -> None:
    async with asyncio.timeout(STEP):
        while await hub.metric(line_start) != value:
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("hub", [None], indirect=True)
async def test_on_a_full_disk_calls_connect_unlogged_and_the_log_catches_up_when_there_is_room(hub, make_unit):
    desk = await make_unit("desk", DESK_HZ)

    async def fill_and_see_the_recording_stop() -> None:
        await hub.command("fill")
        await until_metric(hub, 'intercom_storage_fault{part="recordings"}', 1)

    await a_call_with_audio(make_unit, desk, fill_and_see_the_recording_stop)  # the card fills mid-call
    await a_call_with_audio(make_unit, desk)  # and the next call finds it full
    assert await hub.metric('intercom_storage_fault{part="call_log"}') == 1
    assert await hub.metric("intercom_call_log_held_back") > 0
    assert len(await hub.logged_calls()) <= 1  # at most the first call's start, written before the card filled

    await hub.command("free")
    async with asyncio.timeout(STEP):
        while len(calls := await hub.logged_calls()) < 2 or {call["status"] for call in calls} != {"ended"}:
            await asyncio.sleep(0.1)
    assert await hub.metric('intercom_storage_fault{part="call_log"}') == 0
    assert await hub.metric("intercom_call_log_held_back") == 0
    await until_metric(hub, 'intercom_storage_fault{part="recordings"}', 0)  # before any recording
    log = await hub_log(hub)
    assert log.count("call log not written") == 1, log  # once, not at every write
    assert log.count("recordings not written") == 1 and log.count("recordings written again") == 1
    assert "database or disk is full" in log and log.count("call log written again") == 1
    assert log.count("call recording") == 2 and "stopped at" in log  # the first cut, the second never started
    assert "below the floor of 1 MB (min_free_mb)" in log or "the disk refused it (No space left" in log


@pytest.mark.parametrize("hub", ["--read-only"], indirect=True)
async def test_on_a_read_only_disk_the_hub_starts_and_calls_connect_unlogged(hub, make_unit):
    desk = await make_unit("desk", DESK_HZ)
    await a_call_with_audio(make_unit, desk)
    await a_call_with_audio(make_unit, desk)
    assert await hub.metric('intercom_storage_fault{part="call_log"}') == 1
    assert await hub.metric('intercom_storage_fault{part="recordings"}') == 1
    assert await hub.logged_calls() == []  # the log still reads: what was there before
    log = await hub_log(hub)
    assert log.count("call log not written") == 1, log
    assert "is read-only" in log and "recordings not written (Read-only file system)" in log
