"""Web desk benchmark: the page's load to ``connected``, and the door's call to the page ringing
next to a Python desk rung by the same call.

Run from the repository root (needs the built desk, ``intercom/web/dist/desk/``, and the tests'
node modules: ``scripts/setup.sh``)::

    .venv/bin/python bench/web.py            # full run
    .venv/bin/python bench/web.py --quick    # smoke test
    .venv/bin/python bench/web.py --json-out result.json

What it does, all on 127.0.0.1:

1. an ``intercom hub`` process through the CLI, serving https with the certificate its own CA
   issued (``bench/harness.py``'s TLS transport: the hub's own, as a hub beyond loopback makes it);
   a phone paired the way ``intercom web add`` and the page's pairing view do it (a one-time code
   traded for a credential); Chromium (``tests/web/browser.mjs``: the hub's CA trusted, as on a
   phone that installed it; fake media devices) driven by ``bench/web_page.mjs``;
2. load: the desk page opened with that credential in its storage, the time from navigation to
   its status showing ``connected`` (the SDK registered): each sample in a fresh browser context
   (nothing cached, no service worker: a cold start), then as many reloads of an open page (its
   service worker and cache warm);
3. ring: a door (the Python SDK) calls a flow whose transfer rings the page's identity and a
   Python desk's (a ring group: the same INVITE fork, the same moment): the time from the door's
   ``start_call()`` to the Python desk's ``incoming`` event, and to the page's ringing view showing
   (the page's own clock, which is the system's, as the bench's). The door hangs up; the next
   sample waits until both are idle again. The target is the ratio of the medians.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    Transport,
    call_ended,
    create_key,
    fresh_hub,
    host_environment,
    ms_summary,
    package_versions,
    parse_args,
    run_and_report,
    tls_transport,
    wait_phase,
)

from intercom.auth import AccessKey, IncomingCapability, OutgoingCapability, mint_token
from intercom.auth.certificates import CA_CERT_NAME
from intercom.hub import Storage
from intercom.hub.callflows import CallFlow
from intercom.media import MediaPolicy, RecordingSink, ToneSource
from intercom.sdk import CallAudio, Client

ROOT = Path(__file__).resolve().parents[1]
PAGE_DRIVER = ROOT / "bench" / "web_page.mjs"
TARGET_LOAD_P50_MS = 1000.0
TARGET_RING_RATIO = 1.5
LOADS, QUICK_LOADS = 10, 3
RINGS, QUICK_RINGS = 20, 5
PHASE_TIMEOUT = 180.0
STEP_TIMEOUT = 15.0
LAUNCH_TIMEOUT = 30.0  # Chromium's first start on a busy 2-core machine
RESIDENT, DESK, DOOR = "anna_phone", "benchdesk", "benchdoor"
LOOPBACK = MediaPolicy(host_addresses=(HOST,))


class Page:
    """``bench/web_page.mjs``: one Chromium, one command at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the page driver exited")
        return json.loads(line)

    async def do(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, "ms": STEP_TIMEOUT * 1000, **args}) + "\n").encode())
        await self.process.stdin.drain()
        answer = await self._answer(STEP_TIMEOUT + 5)
        if not answer["ok"]:
            raise RuntimeError(f"the page: {op}: {answer['error']}")
        return answer


@contextlib.asynccontextmanager
async def page_driver(ca_file: Path) -> AsyncIterator[Page]:
    process = await asyncio.create_subprocess_exec(
        "node", str(PAGE_DRIVER), json.dumps({"caFile": str(ca_file)}),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    page = Page(process)
    try:
        assert (await page._answer(LAUNCH_TIMEOUT))["ready"]
        yield page
    finally:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(b'{"op": "stop"}\n')
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STEP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


def paired_credential(data_dir: Path) -> str:
    """A phone's credential, as the page's pairing view gets it from the code ``intercom web add`` prints."""
    from intercom.hub.pairing import PhoneBook  # the pairing helper's: there once issue 18 is merged

    storage = Storage(data_dir)
    try:
        book = PhoneBook(storage)
        return book.pair(book.invite(RESIDENT, name="bench phone").code, device="bench Chromium").credential
    finally:
        storage.close()


async def sdk_client(identity: str, port: int, key: AccessKey, transport: Transport, outgoing: str | None) -> Client:
    capabilities: list[IncomingCapability | OutgoingCapability] = [IncomingCapability(identity)]
    if outgoing is not None:
        capabilities.append(OutgoingCapability(outgoing, identity))
    token = mint_token(key, capabilities, ttl=3600)
    audio = CallAudio(source=lambda: ToneSource(440.0), sink=RecordingSink, policy=LOOPBACK, tones=None)
    client = Client(
        host=f"{HOST}:{port}", refresh_token=lambda: token, secure=True, ssl_context=transport.client_context,
        audio=audio,
    )  # fmt: skip
    await asyncio.wait_for(client.setup(jwt=token), STEP_TIMEOUT)
    return client


async def measure_loads(page: Page, url: str, credential: str, loads: int) -> dict[str, object]:
    cold = [await page.do("load", url=url, credential=credential, identity=RESIDENT, fresh=True) for _ in range(loads)]
    warm = [(await page.do("load", url=url, credential=credential, identity=RESIDENT, fresh=False))["ms"]
            for _ in range(loads)]  # fmt: skip
    marks = {name: round(statistics.median(load["marks"][name] or 0 for load in cold), 1) for name in cold[0]["marks"]}
    return {
        "loads": loads,
        "cold_ms": ms_summary(sorted(load["ms"] for load in cold)),
        "cold_marks_p50_ms": marks,  # where the time went, from the navigation's start
        "warm_reload_ms": ms_summary(sorted(warm)),
    }


async def measure_rings(page: Page, port: int, key: AccessKey, transport: Transport, rings: int) -> dict[str, object]:
    desk = await sdk_client(DESK, port, key, transport, None)
    door = await sdk_client(DOOR, port, key, transport, "door")
    offered, canceled = asyncio.Event(), asyncio.Event()
    offered_at: list[float] = []
    desk.on("incoming", lambda incoming: (offered_at.append(time.time()), offered.set()))
    desk.on("canceled", lambda incoming: canceled.set())
    python_ms: list[float] = []
    page_ms: list[float] = []
    try:
        for _ in range(rings):
            offered.clear()
            canceled.clear()
            started = time.time()
            call = door.start_call()
            await asyncio.wait_for(offered.wait(), STEP_TIMEOUT)
            rang = await page.do("ringing")
            python_ms.append((offered_at[-1] - started) * 1000)
            page_ms.append(rang["at"] - started * 1000)
            await asyncio.wait_for(call.disconnect(), STEP_TIMEOUT)
            await asyncio.wait_for(call_ended(call), STEP_TIMEOUT)
            await asyncio.wait_for(canceled.wait(), STEP_TIMEOUT)
            await page.do("idle")
    finally:
        for client in (door, desk):
            await asyncio.wait_for(client.destroy(), STEP_TIMEOUT)
    return {
        "rings": rings,
        "python_desk_ms": ms_summary(sorted(python_ms)),
        "page_ms": ms_summary(sorted(page_ms)),
        "ratio_p50": round(statistics.median(page_ms) / statistics.median(python_ms), 2),
    }


async def run(workdir: Path, quick: bool) -> dict[str, object]:
    data_dir = workdir / "hub"
    key = create_key(data_dir)
    storage = Storage(data_dir)
    steps = [{"action": "transfer", "options": {"destination": f"client:{DESK},client:{RESIDENT}", "timeout": 30}}]
    storage.create_call_flow(CallFlow.model_validate({"id": "door", "title": "door", "steps": steps}))
    storage.close()
    credential = paired_credential(data_dir)
    transport = tls_transport(workdir)
    assert transport.cert is not None
    hub = fresh_hub(data_dir, workdir, "web", transport=transport)
    async with hub as (port, _), page_driver(transport.cert.parent / CA_CERT_NAME) as page:
        url = transport.url(port, "/desk/", web=True)
        loads = QUICK_LOADS if quick else LOADS
        load = await wait_phase("load", measure_loads(page, url, credential, loads), PHASE_TIMEOUT)
        rings = QUICK_RINGS if quick else RINGS
        ring = await wait_phase("ring", measure_rings(page, port, key, transport, rings), PHASE_TIMEOUT)
    return {"load": load, "ring": ring}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "3 loads and 5 rings instead of 10 and 20")

    def verdict(figures: dict[str, Any]) -> dict[str, bool]:
        checks = {
            "load_p50": figures["load"]["cold_ms"]["p50"] <= TARGET_LOAD_P50_MS,
            "ring_ratio": figures["ring"]["ratio_p50"] <= TARGET_RING_RATIO,
        }
        return {**checks, "all": all(checks.values())}

    def summary_line(figures: dict[str, Any]) -> str:
        load, ring = figures["load"], figures["ring"]
        return (
            f"web: load to connected p50 {load['cold_ms']['p50']} ms cold, {load['warm_reload_ms']['p50']} ms "
            f"reloaded (target <= {TARGET_LOAD_P50_MS:.0f}); door to ringing p50 page {ring['page_ms']['p50']} ms, "
            f"Python desk {ring['python_desk_ms']['p50']} ms, ratio {ring['ratio_p50']} (target <= {TARGET_RING_RATIO})"
        )

    def environment() -> dict[str, object]:
        return {
            **host_environment(),
            "load_average": os.getloadavg(),  # a busy machine makes the page's figures pessimistic
            "packages": package_versions(["aiortc", "uvicorn", "websockets"]),
        }

    targets = {"load_p50_ms": TARGET_LOAD_P50_MS, "ring_ratio_p50": TARGET_RING_RATIO}
    return run_and_report(args, lambda workdir: run(workdir, args.quick), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    raise SystemExit(main())
