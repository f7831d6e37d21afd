"""REGISTER benchmark: latency against a WebSocket echo and over TLS against plain, throughput, memory per client.

Run from the repository root::

    .venv/bin/python bench/register.py            # full run (about 75 s)
    .venv/bin/python bench/register.py --quick    # smoke test
    .venv/bin/python bench/register.py --json-out result.json

What it does, all on 127.0.0.1:

1. makes an ECDSA P-256 certificate (the kind a hub makes itself, issued by its own CA), starts a
   ``websockets`` echo server plain and another over TLS, and for each phase fresh ``intercom
   hub`` processes through the CLI, one plain (ws://) and one over TLS (``--cert``, ``--key``;
   wss://), with a temporary data directory and a key made by ``intercom keys create``, so that
   no phase runs on a hub another phase has warmed or grown. TLS clients trust exactly that
   certificate;
2. latency: N round trips of a REGISTER-sized text frame through each echo server and N
   REGISTER / 200 OK round trips through each hub (re-registers on one kept connection: same
   Call-ID, CSeq counting up, as the browser client does), the four alternating in blocks so
   that the machine's drift hits them alike; TLS against plain, and each against its own echo;
3. throughput: 200 connections per hub re-registering as fast as answers come back (one
   outstanding request each), plain and TLS in turn (plain, TLS, TLS, plain), with the CPU time
   of hub and load generator, so a result limited by the generator rather than the hub is visible;
4. memory (plain only): hub RSS at start-up idle, then with 1,000 clients each registered on
   its own connection.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line
summary. Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    PLAIN,
    START_TIMEOUT,
    CpuWindow,
    Transport,
    create_key,
    free_port,
    fresh_hub,
    fresh_hubs,
    host_environment,
    hub_metric,
    package_versions,
    parse_args,
    percentile,
    rss_mb,
    run_and_report,
    server_process,
    tls_cipher,
    tls_transport,
    wait_phase,
    wait_until,
)
from websockets.asyncio.client import ClientConnection, connect

from intercom.auth import AccessKey, IncomingCapability, mint_token
from intercom.sdk.registration import RegistrationState
from intercom.sip import Response, parse_message

PHASE_TIMEOUT = 120.0  # one phase; a hub that stops answering fails the run instead of hanging it

TARGET_LATENCY_RATIO = 2.0  # register p50 at most this many times the echo p50 (plain)
TARGET_TLS_RATIO = 1.3  # register p50 over TLS at most this many times the plain one, in the same run
TARGET_REGISTER_PER_S = 500.0
TARGET_RSS_GROWTH_MB = 40.0

THROUGHPUT_CLIENTS = 200
MEMORY_CLIENTS = 1000
CONNECT_CONCURRENCY = 50  # connections opened at once, well under the listen backlog
LATENCY_BLOCKS = 20  # echo and REGISTER, plain and TLS, alternate in this many blocks each
THROUGHPUT_ORDER = ("plain", "tls", "tls", "plain")  # windows of equal length: linear drift hits both alike

# The floor: the same WebSocket library and settings as the hub (no permessage-deflate, which
# the hub declines), doing nothing but sending each frame back. Given a certificate and key, it
# serves TLS with the context uvicorn makes from them (``uvicorn.config.create_ssl_context``).
ECHO_SERVER = """
import asyncio, ssl, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main(port, cert_and_key):
    context = None
    if cert_and_key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert_and_key)
    async with serve(
        echo, "127.0.0.1", port, subprotocols=["sip"], max_size=256 * 1024, compression=None, ssl=context
    ):
        await asyncio.Future()

asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
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


@contextlib.asynccontextmanager
async def echo_server(workdir: Path, transport: Transport) -> AsyncIterator[int]:
    """The echo server, plain or over TLS, for the ``async with`` block: yields its port."""
    port = free_port()
    argv = [sys.executable, "-c", ECHO_SERVER, str(port)]
    if transport.secure:
        argv += [str(transport.cert), str(transport.key)]
    with server_process(argv, workdir / f"echo-{transport.name}.log", workdir) as echo:
        await wait_until(lambda: accepts_tcp(port), echo, f"echo server ({transport.name})", START_TIMEOUT)
        yield port


# --- HTTP and readiness ------------------------------------------------------------------------


async def accepts_tcp(port: int) -> bool:
    _, writer = await asyncio.open_connection(HOST, port)
    writer.close()
    await writer.wait_closed()
    return True


async def wait_for_metric(port: int, key: AccessKey, name: str, value: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := await hub_metric(port, name, key)) != value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} is {current}, expected {value}")
        await asyncio.sleep(0.1)


# --- clients -----------------------------------------------------------------------------------


async def open_websocket(port: int, transport: Transport) -> ClientConnection:
    """A connection as the SDK opens it: subprotocol ``sip``, default compression offer."""
    websocket = await connect(
        transport.url(port),
        subprotocols=["sip"],  # type: ignore[list-item]
        max_size=256 * 1024,
        open_timeout=10,
        ssl=transport.client_context,
    )
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
    async def connect(cls, port: int, token: str, transport: Transport) -> SipClient:
        return cls(await open_websocket(port, transport), RegistrationState(f"{HOST}:{port}"), token)

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


async def connect_many(port: int, tokens: list[str], transport: Transport = PLAIN) -> list[SipClient]:
    """Connect and register one client per token, a bounded number at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(token: str) -> SipClient:
        async with gate:
            client = await SipClient.connect(port, token, transport)
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


@dataclass
class TransportRoundTrips:
    """One transport's two series: REGISTERs through its hub, and the same frames through its echo server."""

    transport: Transport
    echo: RoundTrips
    register: RoundTrips

    @classmethod
    async def open(cls, transport: Transport, echo_port: int, hub_port: int, token: str) -> TransportRoundTrips:
        """The echo frames are real REGISTERs: same size and same compressibility. The REGISTERs
        re-register on one connection as the SDK does: same Call-ID, CSeq counting up, a new From tag each."""
        echo_state = RegistrationState(f"{HOST}:{hub_port}")

        def check_echo(sent: str, answer: str | bytes) -> None:
            if answer != sent:
                raise RuntimeError(f"echo server ({transport.name}) answered something else")

        client = await SipClient.connect(hub_port, token, transport)

        def check_register(sent: str, answer: str | bytes) -> None:
            status = check_answer(answer, client.state.cseq).status_code
            if status != 200:
                raise RuntimeError(f"REGISTER ({transport.name}) answered {status}")

        echo_websocket = await open_websocket(echo_port, transport)
        echo = RoundTrips(echo_websocket, lambda: echo_state.build(token).text(), check_echo)
        return cls(
            transport, echo, RoundTrips(client.websocket, lambda: client.state.build(token).text(), check_register)
        )

    @property
    def series(self) -> tuple[RoundTrips, RoundTrips]:
        return self.echo, self.register

    async def close(self) -> None:
        await asyncio.gather(*(series.websocket.close() for series in self.series), return_exceptions=True)

    def figures(self) -> dict[str, object]:
        return {
            "echo": {**summarise_us(self.echo.samples), "extensions": self.echo.extensions},
            "register": {**summarise_us(self.register.samples), "extensions": self.register.extensions},
            "ratio_p50": ratio_at(self.register, self.echo, 0.5),
            # Each REGISTER block against the echo block just before it: steadier while the machine drifts.
            "ratio_p50_paired_blocks": paired_ratios(self.register, self.echo),
            "cipher": tls_cipher(self.register.websocket.transport),  # None: plain
        }


def ratio_at(numerator: RoundTrips, denominator: RoundTrips, fraction: float) -> float:
    return round(percentile(sorted(numerator.samples), fraction) / percentile(sorted(denominator.samples), fraction), 2)


def paired_ratios(numerator: RoundTrips, denominator: RoundTrips) -> dict[str, float]:
    """Block p50 over block p50, blocks of the same round: their median and range."""
    ratios = sorted(n / d for n, d in zip(numerator.block_p50s, denominator.block_p50s, strict=True))
    return {"median": round(percentile(ratios, 0.5), 2), "min": round(ratios[0], 2), "max": round(ratios[-1], 2)}


async def measure_latency(
    echo_ports: dict[Transport, int], hubs: dict[Transport, tuple[int, int]], token: str, settings: Settings
) -> dict[str, object]:
    """Echo and REGISTER round trips, plain and over TLS, one kept connection each, alternating in blocks.

    Interleaving makes every series see the same machine (a shared VM's speed drifts by tens of
    per cent over seconds), so their ratios are steadier than back-to-back runs. Within a block,
    each transport's echo series runs just before its REGISTER series; which transport goes first
    swaps from block to block. Connections are kept, as a unit keeps its own: the TLS handshake
    is not in any round trip, only the per-frame cost of the encrypted record layer.
    """
    pairs: list[TransportRoundTrips] = []
    try:
        for transport, (hub_port, _) in hubs.items():
            pairs.append(await TransportRoundTrips.open(transport, echo_ports[transport], hub_port, token))
        for pair in pairs:
            for series in pair.series:
                await series.run(settings.warmup, keep=False)
        block = max(1, settings.round_trips // LATENCY_BLOCKS)
        while len(pairs[0].register.samples) < settings.round_trips:
            for pair in pairs:
                for series in pair.series:
                    await series.run(min(block, settings.round_trips - len(series.samples)))
            pairs.reverse()
    finally:
        await asyncio.gather(*(pair.close() for pair in pairs), return_exceptions=True)
    by_name = {pair.transport.name: pair for pair in pairs}
    plain, tls = by_name["plain"], by_name["tls"]
    return {
        "round_trips": settings.round_trips,
        "warmup": settings.warmup,
        "blocks": LATENCY_BLOCKS,
        "frame_bytes": len(plain.echo.make_frame().encode()),
        **{name: pair.figures() for name, pair in by_name.items()},
        "tls_over_plain": {
            "register_p50": ratio_at(tls.register, plain.register, 0.5),
            "register_p99": ratio_at(tls.register, plain.register, 0.99),
            "register_p50_paired_blocks": paired_ratios(tls.register, plain.register),
            "echo_p50": ratio_at(tls.echo, plain.echo, 0.5),
            "echo_p99": ratio_at(tls.echo, plain.echo, 0.99),
        },
    }


@dataclass
class LoadResult:
    completed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # each non-200's status and reason phrase
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
        if response.status_code != 200:
            result.refusals[f"{response.status_code} {response.reason}"] += 1
        if response.status_code == 200:
            result.completed += 1


async def measure_throughput(
    hubs: dict[Transport, tuple[int, int]], key: AccessKey, settings: Settings
) -> dict[str, object]:
    """200 clients per hub re-registering flat out, the hubs in turn (plain, TLS, TLS, plain: drift
    that grows steadily over the run hits both alike); CPU of both processes tells who limits the rate."""
    tokens = [client_token(key, f"t{i}") for i in range(THROUGHPUT_CLIENTS)]
    by_name = {transport.name: (transport, port, pid) for transport, (port, pid) in hubs.items()}
    clients: dict[str, list[SipClient]] = {}
    results = {name: LoadResult() for name in by_name}
    windows: dict[str, list[CpuWindow]] = {name: [] for name in by_name}
    window_seconds = settings.throughput_seconds / THROUGHPUT_ORDER.count("plain")
    try:
        for name, (transport, port, _) in by_name.items():
            clients[name] = await connect_many(port, tokens, transport)
        for name in THROUGHPUT_ORDER:
            cpu = CpuWindow(by_name[name][2])
            deadline = cpu.started + window_seconds
            await asyncio.gather(*(reregister_until(client, deadline, results[name]) for client in clients[name]))
            cpu.stop()
            windows[name].append(cpu)
    finally:
        await asyncio.gather(*(close_all(each) for each in clients.values()))
    figures = {name: throughput_figures(results[name], CpuWindow.merged(windows[name])) for name in by_name}
    return {
        "clients": THROUGHPUT_CLIENTS,
        "seconds_per_transport": settings.throughput_seconds,
        "order": list(THROUGHPUT_ORDER),
        **figures,
        "tls_over_plain_rate": round(figures["tls"]["register_per_s"] / figures["plain"]["register_per_s"], 2),
    }


def throughput_figures(result: LoadResult, cpu: CpuWindow) -> dict[str, Any]:
    non_200 = sum(count for status, count in result.statuses.items() if status != 200)
    notes = [
        "the load generator used most of a core: the rate may be limited by it, not by the hub"
        if cpu.generator_bound
        else "the load generator had CPU to spare: the rate is the hub's",
        *cpu.other_load_notes(),
    ]
    return {
        "elapsed_s": round(cpu.elapsed, 3),
        "completed_200": result.completed,
        "non_200": non_200,
        "statuses": {str(status): count for status, count in sorted(result.statuses.items())},
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "register_per_s": round(result.completed / cpu.elapsed, 1),
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
        await wait_for_metric(hub_port, key, "intercom_registrations", MEMORY_CLIENTS)
        await asyncio.sleep(0.5)
        loaded = rss_mb(hub_pid)
    finally:
        await close_all(clients)
    await wait_for_metric(hub_port, key, "intercom_sip_connections", 0)
    await wait_for_metric(hub_port, key, "intercom_registrations", 0)
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
    """Run every phase, each against hub processes of its own, and return the figures.

    Fresh hubs per phase keep the phases from colouring each other: the latency of one client
    is not measured on a heap just grown by 1,000, nor the memory of 1,000 clients on a hub
    already warmed by a load test. Servers stop on any exit.
    """
    data_dir = workdir / "data"
    key = create_key(data_dir)
    token = client_token(key, "bench")
    transports = (PLAIN, tls_transport(workdir))
    async with contextlib.AsyncExitStack() as echoes:
        echo_ports = {
            transport: await echoes.enter_async_context(echo_server(workdir, transport)) for transport in transports
        }
        async with fresh_hubs(data_dir, workdir, "latency", transports) as hubs:
            latency = await wait_phase("latency", measure_latency(echo_ports, hubs, token, settings), PHASE_TIMEOUT)
    async with fresh_hubs(data_dir, workdir, "throughput", transports) as hubs:
        throughput = await wait_phase("throughput", measure_throughput(hubs, key, settings), PHASE_TIMEOUT)
    async with fresh_hub(data_dir, workdir, "memory") as (hub_port, hub_pid):
        memory = await wait_phase("memory", measure_memory(hub_port, hub_pid, key), PHASE_TIMEOUT)
    return {"latency": latency, "throughput": throughput, "memory": memory}


def verdict(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    latency, throughput, memory = figures["latency"], figures["throughput"], figures["memory"]
    passed = {
        "latency": latency["plain"]["ratio_p50"] <= TARGET_LATENCY_RATIO,
        "tls_latency": latency["tls_over_plain"]["register_p50"] <= TARGET_TLS_RATIO,
        "throughput": all(
            throughput[name]["register_per_s"] >= TARGET_REGISTER_PER_S
            and throughput[name]["non_200"] == 0
            and throughput[name]["errors"] == 0
            for name in ("plain", "tls")
        ),
        "memory": memory["growth_mb"] < TARGET_RSS_GROWTH_MB,
    }
    return {**passed, "all": all(passed.values())}


def summary_line(figures: dict[str, dict[str, Any]]) -> str:
    latency, throughput, memory = figures["latency"], figures["throughput"], figures["memory"]
    plain, tls, over = latency["plain"], latency["tls"], latency["tls_over_plain"]
    return (
        f"register: p50 {plain['register']['p50_us']:.0f}us "
        f"({plain['ratio_p50']}x echo {plain['echo']['p50_us']:.0f}us) "
        f"p99 {plain['register']['p99_us']:.0f}us; "
        f"TLS p50 {tls['register']['p50_us']:.0f}us ({over['register_p50']}x plain, "
        f"{tls['ratio_p50']}x TLS echo {tls['echo']['p50_us']:.0f}us) p99 {tls['register']['p99_us']:.0f}us "
        f"({over['register_p99']}x); "
        f"{throughput['plain']['register_per_s']:.0f} / TLS {throughput['tls']['register_per_s']:.0f} REGISTER/s "
        f"@{throughput['clients']} clients "
        f"({throughput['plain']['non_200'] + throughput['tls']['non_200']} non-200); "
        f"+{memory['growth_mb']:.1f} MB RSS @{memory['clients']} clients"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "fewer round trips and a 3 s throughput run per transport")
    raise_nofile_limit()
    settings = Settings.for_mode(args.quick)
    targets = {
        "register_p50_max_x_echo": TARGET_LATENCY_RATIO,
        "register_p50_tls_max_x_plain": TARGET_TLS_RATIO,
        "register_per_s_min_each_transport": TARGET_REGISTER_PER_S,
        "non_200_max": 0,
        "rss_growth_mb_max_at_1000_clients": TARGET_RSS_GROWTH_MB,
    }
    return run_and_report(args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
