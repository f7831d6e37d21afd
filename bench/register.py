"""REGISTER benchmark: latency against a plain WebSocket echo, throughput, and memory per client.

Run from the repository root::

    .venv/bin/python bench/register.py            # full run (about 30 s)
    .venv/bin/python bench/register.py --quick    # smoke test
    .venv/bin/python bench/register.py --json-out result.json

What it does, all on 127.0.0.1:

1. starts a plain ``websockets`` echo server, and for each phase a fresh ``intercom hub``
   process through the CLI (a temporary data directory, a key made by ``intercom keys
   create``), so that no phase runs on a hub another phase has warmed or grown;
2. latency: N round trips of a REGISTER-sized text frame through the echo server and N
   REGISTER / 200 OK round trips through the hub (re-registers on one connection: same
   Call-ID, CSeq counting up, as the browser client does), alternating in blocks;
3. throughput: 200 connections re-registering as fast as answers come back (one outstanding
   request each) for a fixed time, with the CPU time of hub and load generator, so a result
   limited by the generator rather than the hub is visible;
4. memory: hub RSS at start-up idle, then with 1,000 clients each registered on its own
   connection.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line
summary. Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    HOST,
    START_TIMEOUT,
    CpuWindow,
    create_key,
    free_port,
    fresh_hub,
    host_environment,
    http_get,
    package_versions,
    parse_args,
    percentile,
    rss_mb,
    run_and_report,
    server_process,
    wait_phase,
    wait_until,
)
from websockets.asyncio.client import ClientConnection, connect

from intercom.auth import AccessKey, IncomingCapability, mint_token
from intercom.sdk.registration import RegistrationState
from intercom.sip import Response, parse_message

PHASE_TIMEOUT = 120.0  # one phase; a hub that stops answering fails the run instead of hanging it

TARGET_LATENCY_RATIO = 2.0  # register p50 at most this many times the echo p50
TARGET_REGISTER_PER_S = 500.0
TARGET_RSS_GROWTH_MB = 40.0

THROUGHPUT_CLIENTS = 200
MEMORY_CLIENTS = 1000
CONNECT_CONCURRENCY = 50  # connections opened at once, well under the listen backlog
LATENCY_BLOCKS = 20  # echo and REGISTER alternate in this many blocks each

# The floor: the same WebSocket library and settings as the hub (no permessage-deflate, which
# the hub declines), doing nothing but sending each frame back.
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main(port):
    async with serve(echo, "127.0.0.1", port, subprotocols=["sip"], max_size=256 * 1024, compression=None):
        await asyncio.Future()

asyncio.run(main(int(sys.argv[1])))
"""


@dataclass
class Settings:
    """How long each phase runs: the full run, or a quick smoke test."""

    round_trips: int
    warmup: int
    throughput_seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(300, 50, 3.0) if quick else cls(6000, 300, 10.0)


# --- processes ---------------------------------------------------------------------------------


def raise_nofile_limit() -> None:
    """1,000 clients need 1,000+ descriptors in the bench and in the hub; the default soft limit may be 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def client_token(key: AccessKey, identity: str) -> str:
    return mint_token(key, [IncomingCapability(identity)], ttl=3600)


# --- HTTP and readiness ------------------------------------------------------------------------


async def accepts_tcp(port: int) -> bool:
    _, writer = await asyncio.open_connection(HOST, port)
    writer.close()
    await writer.wait_closed()
    return True


async def hub_metric(port: int, name: str, key: AccessKey) -> int:
    for line in (await http_get(port, "/metrics", key)).splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    raise RuntimeError(f"/metrics has no {name}")


async def wait_for_metric(port: int, name: str, value: int, key: AccessKey, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := await hub_metric(port, name, key)) != value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} is {current}, expected {value}")
        await asyncio.sleep(0.1)


# --- clients -----------------------------------------------------------------------------------


async def open_websocket(port: int) -> ClientConnection:
    """A connection as the SDK opens it: subprotocol ``sip``, default compression offer."""
    websocket = await connect(f"ws://{HOST}:{port}/", subprotocols=["sip"], max_size=256 * 1024, open_timeout=10)  # type: ignore[list-item]
    if websocket.subprotocol != "sip":
        await websocket.close()
        raise RuntimeError(f"port {port} did not accept subprotocol 'sip'")
    return websocket


@dataclass
class SipClient:
    """One registered client: its WebSocket, REGISTER state and token. No transaction layer,
    so the client side of a round trip costs as little as the echo client's."""

    websocket: ClientConnection
    state: RegistrationState
    token: str

    @classmethod
    async def connect(cls, port: int, token: str) -> SipClient:
        return cls(await open_websocket(port), RegistrationState(f"{HOST}:{port}"), token)

    async def register(self) -> Response:
        """Send the next REGISTER and return the answer to it."""
        request = self.state.build(self.token)
        await self.websocket.send(request.text())
        return check_answer(await self.websocket.recv(), self.state.cseq)


def check_answer(frame: str | bytes, cseq: int) -> Response:
    """The frame parsed as the response to REGISTER number ``cseq``; anything else is a bench failure."""
    message = parse_message(frame)
    if not isinstance(message, Response) or message.headers.get("CSeq") != f"{cseq} REGISTER":
        raise RuntimeError(f"expected the answer to REGISTER {cseq}, got {str(frame)[:80]!r}")
    return message


async def connect_many(port: int, tokens: list[str]) -> list[SipClient]:
    """Connect and register one client per token, a bounded number at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(token: str) -> SipClient:
        async with gate:
            client = await SipClient.connect(port, token)
            response = await client.register()
            if response.status_code != 200:
                raise RuntimeError(f"first REGISTER answered {response.status_code} {response.reason}")
            return client

    return list(await asyncio.gather(*(one(token) for token in tokens)))


async def close_all(clients: list[SipClient]) -> None:
    await asyncio.gather(*(client.websocket.close() for client in clients), return_exceptions=True)


# --- statistics --------------------------------------------------------------------------------


def summarise_us(samples_ns: list[int]) -> dict[str, float]:
    values = sorted(sample / 1000 for sample in samples_ns)
    return {
        "p50_us": round(percentile(values, 0.50), 1),
        "p90_us": round(percentile(values, 0.90), 1),
        "p99_us": round(percentile(values, 0.99), 1),
        "min_us": round(values[0], 1),
        "max_us": round(values[-1], 1),
        "mean_us": round(sum(values) / len(values), 1),
    }


# --- phases ------------------------------------------------------------------------------------


@dataclass
class RoundTrips:
    """One connection and how to make and check its frames, for timed round trips."""

    websocket: ClientConnection
    make_frame: Callable[[], str]
    check: Callable[[str, str | bytes], None]
    samples: list[int] = field(default_factory=list)
    block_p50s: list[float] = field(default_factory=list)

    async def run(self, count: int, keep: bool = True) -> None:
        """Time send-to-receive only: building and checking frames happen outside the clock,
        so both servers are compared on the wire round trip alone."""
        block: list[int] = []
        for _ in range(count):
            frame = self.make_frame()
            start = time.perf_counter_ns()
            await self.websocket.send(frame)
            answer = await self.websocket.recv()
            block.append(time.perf_counter_ns() - start)
            self.check(frame, answer)
        if keep and block:
            self.samples.extend(block)
            self.block_p50s.append(percentile(sorted(block), 0.5))

    @property
    def extensions(self) -> str | None:
        response = self.websocket.response
        return response.headers.get("Sec-WebSocket-Extensions") if response else None


async def measure_latency(echo_port: int, hub_port: int, token: str, settings: Settings) -> dict[str, object]:
    """Echo and REGISTER round trips, one connection each, alternating in blocks.

    Interleaving makes both series see the same machine (a shared VM's speed drifts by tens of
    per cent over seconds), so their ratio is steadier than two back-to-back runs. The echo
    frames are real REGISTERs: same size and same compressibility. The REGISTERs re-register
    on one connection as the SDK does: same Call-ID, CSeq counting up, a new From tag each.
    """
    echo_state = RegistrationState(f"{HOST}:{hub_port}")

    def check_echo(sent: str, answer: str | bytes) -> None:
        if answer != sent:
            raise RuntimeError("echo server answered something else")

    client = await SipClient.connect(hub_port, token)

    def check_register(sent: str, answer: str | bytes) -> None:
        status = check_answer(answer, client.state.cseq).status_code
        if status != 200:
            raise RuntimeError(f"REGISTER answered {status}")

    echo = RoundTrips(await open_websocket(echo_port), lambda: echo_state.build(token).text(), check_echo)
    register = RoundTrips(client.websocket, lambda: client.state.build(token).text(), check_register)
    try:
        for series in (echo, register):
            await series.run(settings.warmup, keep=False)
        block = max(1, settings.round_trips // LATENCY_BLOCKS)
        while len(register.samples) < settings.round_trips:
            for series in (echo, register):
                await series.run(min(block, settings.round_trips - len(series.samples)))
    finally:
        await asyncio.gather(echo.websocket.close(), register.websocket.close(), return_exceptions=True)
    ratio = percentile(sorted(register.samples), 0.5) / percentile(sorted(echo.samples), 0.5)
    # Each REGISTER block against the echo block just before it: steadier while the machine drifts.
    paired = sorted(r / e for r, e in zip(register.block_p50s, echo.block_p50s, strict=True))
    return {
        "round_trips": settings.round_trips,
        "warmup": settings.warmup,
        "blocks": LATENCY_BLOCKS,
        "frame_bytes": len(echo_state.build(token).text().encode()),
        "echo": {**summarise_us(echo.samples), "extensions": echo.extensions},
        "register": {**summarise_us(register.samples), "extensions": register.extensions},
        "ratio_p50": round(ratio, 2),
        "ratio_p50_paired_blocks": {
            "median": round(percentile(paired, 0.5), 2),
            "min": round(paired[0], 2),
            "max": round(paired[-1], 2),
        },
    }


@dataclass
class LoadResult:
    completed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


async def reregister_until(client: SipClient, deadline: float, result: LoadResult) -> None:
    """One outstanding REGISTER at a time, the next one sent as soon as the answer arrives."""
    while time.monotonic() < deadline:
        try:
            response = await client.register()
        except Exception as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        result.statuses[response.status_code] += 1
        if response.status_code == 200:
            result.completed += 1


async def measure_throughput(hub_port: int, hub_pid: int, key: AccessKey, settings: Settings) -> dict[str, object]:
    """200 clients re-registering flat out; CPU of both processes tells who limits the rate."""
    tokens = [client_token(key, f"t{i}") for i in range(THROUGHPUT_CLIENTS)]
    clients = await connect_many(hub_port, tokens)
    result = LoadResult()
    try:
        cpu = CpuWindow(hub_pid)
        deadline = cpu.started + settings.throughput_seconds
        await asyncio.gather(*(reregister_until(client, deadline, result) for client in clients))
        cpu.stop()
    finally:
        await close_all(clients)
    non_200 = sum(count for status, count in result.statuses.items() if status != 200)
    elapsed = cpu.elapsed
    notes = [
        "the load generator used most of a core: the rate may be limited by it, not by the hub"
        if cpu.generator_bound
        else "the load generator had CPU to spare: the rate is the hub's",
        *cpu.other_load_notes(),
    ]
    return {
        "clients": THROUGHPUT_CLIENTS,
        "duration_s": settings.throughput_seconds,
        "elapsed_s": round(elapsed, 3),
        "completed_200": result.completed,
        "non_200": non_200,
        "statuses": {str(status): count for status, count in sorted(result.statuses.items())},
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "register_per_s": round(result.completed / elapsed, 1),
        "hub_cpu_core_share": round(cpu.hub_share, 3),
        "hub_cpu_us_per_register": round(cpu.hub_seconds * 1e6 / max(1, result.completed), 1),
        "bench_cpu_core_share": round(cpu.bench_share, 3),
        "other_cpu_core_share": round(cpu.other_share, 3),
        "generator_bound": cpu.generator_bound,
        "notes": notes,
    }


async def measure_memory(hub_port: int, hub_pid: int, key: AccessKey) -> dict[str, object]:
    """Hub RSS idle, then with 1,000 registered clients, then after they all leave."""
    await asyncio.sleep(1.0)  # let start-up settle
    idle = rss_mb(hub_pid)
    tokens = [client_token(key, f"u{i}") for i in range(MEMORY_CLIENTS)]
    start = time.monotonic()
    clients = await connect_many(hub_port, tokens)
    try:
        connect_seconds = time.monotonic() - start
        await wait_for_metric(hub_port, "intercom_registrations", MEMORY_CLIENTS, key)
        await asyncio.sleep(0.5)
        loaded = rss_mb(hub_pid)
    finally:
        await close_all(clients)
    await wait_for_metric(hub_port, "intercom_sip_connections", 0, key)
    await wait_for_metric(hub_port, "intercom_registrations", 0, key)
    return {
        "clients": MEMORY_CLIENTS,
        "rss_idle_mb": round(idle, 1),
        "rss_1000_mb": round(loaded, 1),
        "growth_mb": round(loaded - idle, 1),
        "per_client_kb": round((loaded - idle) * 1024 / MEMORY_CLIENTS, 1),
        "rss_after_close_mb": round(rss_mb(hub_pid), 1),
        "connect_and_register_s": round(connect_seconds, 2),
    }


# --- the run -----------------------------------------------------------------------------------


def environment() -> dict[str, object]:
    return {
        **host_environment(),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "loadavg_at_end": os.getloadavg(),
        **package_versions(("intercom", "websockets", "uvicorn", "fastapi", "starlette", "PyJWT")),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, object]:
    """Run every phase, each against a hub process of its own, and return the figures.

    A fresh hub per phase keeps the phases from colouring each other: the latency of one client
    is not measured on a heap just grown by 1,000, nor the memory of 1,000 clients on a hub
    already warmed by a load test. Servers stop on any exit.
    """
    data_dir = workdir / "data"
    key = create_key(data_dir)
    token = client_token(key, "bench")
    echo_port = free_port()
    echo_argv = [sys.executable, "-c", ECHO_SERVER, str(echo_port)]
    with server_process(echo_argv, workdir / "echo.log", workdir) as echo:
        await wait_until(lambda: accepts_tcp(echo_port), echo, "echo server", START_TIMEOUT)
        async with fresh_hub(data_dir, workdir, "latency") as (hub_port, _):
            latency = await wait_phase("latency", measure_latency(echo_port, hub_port, token, settings), PHASE_TIMEOUT)
    async with fresh_hub(data_dir, workdir, "throughput") as (hub_port, hub_pid):
        throughput = await wait_phase("throughput", measure_throughput(hub_port, hub_pid, key, settings), PHASE_TIMEOUT)
    async with fresh_hub(data_dir, workdir, "memory") as (hub_port, hub_pid):
        memory = await wait_phase("memory", measure_memory(hub_port, hub_pid, key), PHASE_TIMEOUT)
    return {"latency": latency, "throughput": throughput, "memory": memory}


def verdict(figures: dict[str, dict[str, object]]) -> dict[str, bool]:
    latency, throughput, memory = figures["latency"], figures["throughput"], figures["memory"]
    passed = {
        "latency": float(latency["ratio_p50"]) <= TARGET_LATENCY_RATIO,  # type: ignore[arg-type]
        "throughput": float(throughput["register_per_s"]) >= TARGET_REGISTER_PER_S  # type: ignore[arg-type]
        and throughput["non_200"] == 0
        and throughput["errors"] == 0,
        "memory": float(memory["growth_mb"]) < TARGET_RSS_GROWTH_MB,  # type: ignore[arg-type]
    }
    return {**passed, "all": all(passed.values())}


def summary_line(figures: dict[str, dict[str, object]]) -> str:
    latency, throughput, memory = figures["latency"], figures["throughput"], figures["memory"]
    register, echo = latency["register"], latency["echo"]
    return (
        f"register: p50 {register['p50_us']:.0f}us ({latency['ratio_p50']}x echo {echo['p50_us']:.0f}us) "  # type: ignore[index]
        f"p99 {register['p99_us']:.0f}us (echo {echo['p99_us']:.0f}us); "  # type: ignore[index]
        f"{throughput['register_per_s']:.0f} REGISTER/s @{throughput['clients']} clients "
        f"({throughput['non_200']} non-200); "
        f"+{memory['growth_mb']:.1f} MB RSS @{memory['clients']} clients"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "fewer round trips and a 3 s throughput run")
    raise_nofile_limit()
    settings = Settings.for_mode(args.quick)
    targets = {
        "register_p50_max_x_echo": TARGET_LATENCY_RATIO,
        "register_per_s_min": TARGET_REGISTER_PER_S,
        "non_200_max": 0,
        "rss_growth_mb_max_at_1000_clients": TARGET_RSS_GROWTH_MB,
    }
    return run_and_report(args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
