"""Cluster benchmark: REGISTERs and calls per second, Kamailio to 1 and 2 hubs, beside the hub alone and Kamailio alone.

Run from the repository root::

    .venv/bin/python bench/cluster.py            # full run (about 3 min 15 s)
    .venv/bin/python bench/cluster.py --quick    # smoke test (about 50 s)
    .venv/bin/python bench/cluster.py --json-out result.json

What it does, all on 127.0.0.1, every server a process of its own, all of them up for the whole run:

1. a throwaway PostgreSQL (bench/postgres.py: ``initdb``, ``pg_ctl``), an ECDSA P-256 certificate
   (the kind a hub makes itself) that the hubs and the edges serve and the clients trust, keys
   (``intercom keys create``) and call flows (``intercom callflows create``: door{i} rings
   ``client:desk{i}``) in each setup's own database; then four setups:

   - ``hub``: the embedded hub alone, as today: ``intercom hub --cert --key`` on SQLite, units
     straight to its WSS;
   - ``edge_1hub``: one Kamailio edge (deploy/kamailio/kamailio.cfg as it ships, bench/kamailio.py;
     only pike's density raised, as every client comes from 127.0.0.1) in front of one ``intercom
     hub --sip-proxy-listen ... --sip-proxy 127.0.0.1 --database postgresql://... --hub-id ...``;
   - ``edge_2hubs``: the same with two hubs on one database, the edge's dispatcher taking them in
     turn (round robin, its default);
   - ``edge_alone``: the edge's floor: the same cfg, changed here (not in deploy/) to answer 200 to
     a REGISTER itself where it would add its Path and relay it: every check, pike and the flow
     header done, no hub;

2. REGISTER: N connections per setup, each re-registering as soon as its answer comes (one
   outstanding request each; bench/register.py's client: the published REGISTER, one Call-ID per
   connection, CSeq counting up), the setups in turn in windows (order a b c d d c b a) so that the
   machine's drift hits them alike; the CPU of every process (Kamailio's and PostgreSQL's with
   all their workers) over the windows;
3. calls: K pairs per setup (not ``edge_alone``) of SDK clients (intercom.sdk, aiortc: ICE, DTLS,
   SRTP with the hub, which bridges the media), each pair's door calling its desk, the desk
   answering once it rings, both waiting for the other's audio, the door hanging up, the next call
   at once; the setups in turn in windows as above. Each call's set-up is ``start_call()`` to
   audio at both ends. The load generator's CPU is shown: near a core, the figure is its own.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every REGISTER got 200 and every call completed, 1 when not, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calls import (
    DESK_HZ,
    DOOR_HZ,
    HUB_ARGS,
    CountingSink,
    Endpoint,
    OpusLoopSource,
    connect_all,
    create_flows,
    destroy_all,
    hang_up,
    place_call,
    tone_packets,
    wait_for,
)
from harness import (
    GENERATOR_BOUND_CPU,
    HOST,
    OTHER_LOAD_CPU,
    PLAIN,
    Transport,
    cpu_seconds,
    create_key,
    free_port,
    fresh_hub,
    host_environment,
    hub_metric,
    machine_busy_seconds,
    ms_summary,
    package_versions,
    parse_args,
    run_and_report,
    tls_transport,
    tree_cpu_seconds,
    wait_phase,
)
from kamailio import CONFIG, Edge, kamailio_program, register_answering_config
from postgres import Cluster
from register import LoadResult, client_token, close_all, connect_many, raise_nofile_limit, reregister_until

from intercom.auth import AccessKey

PHASE_TIMEOUT = 240.0  # one phase; a server that stops answering fails the run instead of hanging it
RUN_TIMEOUT = 480.0
HUB, EDGE_1HUB, EDGE_2HUBS, EDGE_ALONE = "hub", "edge_1hub", "edge_2hubs", "edge_alone"
CALL_SETUPS = (HUB, EDGE_1HUB, EDGE_2HUBS)  # the edge alone answers REGISTER only
# Every client comes from 127.0.0.1: with the cfg's pike density (80 requests per 2 s per address)
# the edge would ban the bench after a few hundred REGISTERs.
EDGE_SETTINGS: dict[str, str | int | None] = {"PIKE_DENSITY": 10**9}
# Kamailio's default 64 MB of shared memory is nearly all taken by 200 TLS WebSockets (~150 kB each)
# and the transactions tm keeps for 5 s after their answer at a few hundred REGISTERs a second;
# under 2.6 MB left, its TLS module drops connections (bench/README.md, "Cluster").
EDGE_SHARED_MEMORY_MB = 256


@dataclass
class Settings:
    """How much each phase does: the full run, or a quick smoke test."""

    register_clients: int
    register_seconds: float  # per setup, in two windows
    call_pairs: int
    call_seconds: float  # per setup, in two windows

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(50, 2.0, 2, 3.0) if quick else cls(200, 16.0, 4, 30.0)


# --- CPU of every process ----------------------------------------------------------------------


@dataclass
class Usage:
    """CPU time of a setup's processes (each with everything it forked), of this process (the load
    generator) and of everything else, added up over the setup's windows."""

    processes: dict[str, int]  # name -> pid
    elapsed: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        before, started = self._read(), time.monotonic()
        yield
        after = self._read()
        self.elapsed += time.monotonic() - started
        for name, value in after.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value - before[name]

    def _read(self) -> dict[str, float]:
        now = {name: tree_cpu_seconds(pid) for name, pid in self.processes.items()}
        now["bench"] = cpu_seconds(os.getpid())
        # everything else: the machine's busy time less what is counted above
        now["other"] = machine_busy_seconds() - sum(now.values())
        return now

    def share(self, name: str) -> float:
        return max(0.0, self.seconds[name] / self.elapsed)

    def figures(self, per: int, unit: str, scale: float) -> dict[str, Any]:
        """Each process's share of a core, and its CPU per ``per`` events in ``unit`` (``scale`` per second)."""
        names = [*self.processes, "bench", "other"]
        notes = [
            "the load generator used most of a core: the rate may be limited by it"
            if self.share("bench") >= GENERATOR_BOUND_CPU
            else "the load generator had CPU to spare"
        ]
        if self.share("other") >= OTHER_LOAD_CPU:
            other = self.share("other")
            notes.append(f"other processes used {other:.2f} of a core meanwhile: the figures are pessimistic")
        return {
            "cpu_core_share": {name: round(self.share(name), 3) for name in names},
            f"cpu_{unit}": {name: round(self.seconds[name] * scale / max(1, per), 1) for name in self.processes},
            "generator_bound": self.share("bench") >= GENERATOR_BOUND_CPU,
            "notes": notes,
        }


# --- the setups --------------------------------------------------------------------------------


@dataclass
class Setup:
    """Where the units connect (``port``, TLS trusting the run's certificate), with which key, and
    the processes whose CPU counts; ``hubs``: each hub's HTTP port, for its /metrics (served over
    ``hub_transport``)."""

    name: str
    port: int
    transport: Transport
    key: AccessKey
    processes: dict[str, int]
    hubs: dict[str, int] = field(default_factory=dict)
    hub_transport: Transport = PLAIN
    usage: dict[str, Usage] = field(default_factory=dict)  # per phase

    def window(self, phase: str) -> contextlib.AbstractContextManager[None]:
        return self.usage.setdefault(phase, Usage(self.processes)).window()


def flows(pairs: int) -> dict[str, str]:
    return {f"door{i}": f"desk{i}" for i in range(pairs)}


@dataclass
class Shared:
    """What the setups share: the run's folder, certificate, PostgreSQL and process stack."""

    workdir: Path
    tls: Transport
    cluster: Cluster
    stack: contextlib.AsyncExitStack
    settings: Settings
    edges: dict[str, Edge] = field(default_factory=dict)

    def database(self, name: str) -> tuple[Path, list[str]]:
        """A fresh database for one setup: its data directory, and the flags that name it."""
        data_dir = self.workdir / name
        data_dir.mkdir()
        password = data_dir / "database-password"
        password.write_text(self.cluster.password)
        password.chmod(0o600)
        url = self.cluster.url(self.cluster.new_database())
        return data_dir, ["--database", url, "--database-password-file", str(password)]

    async def edge(self, name: str, hubs: list[str], config: Path = CONFIG) -> Edge:
        settings = self.tls.cert, self.tls.key
        assert settings[0] is not None and settings[1] is not None
        edge = Edge(
            self.workdir / f"kamailio-{name}", hubs, settings, dict(EDGE_SETTINGS),
            config=config, shared_memory_mb=EDGE_SHARED_MEMORY_MB,
        )  # fmt: skip
        await edge.start()
        self.stack.push_async_callback(edge.stop)
        self.edges[name] = edge
        return edge

    async def embedded(self) -> Setup:
        data_dir = self.workdir / HUB
        key = create_key(data_dir)
        create_flows(data_dir, self.workdir, flows(self.settings.call_pairs))
        hub = fresh_hub(data_dir, self.workdir, HUB, HUB_ARGS, transport=self.tls)
        port, pid = await self.stack.enter_async_context(hub)
        return Setup(HUB, port, self.tls, key, {"hub": pid}, {"hub": port}, self.tls)

    async def behind_edge(self, name: str, hub_count: int) -> Setup:
        data_dir, database = self.database(name)
        key = create_key(data_dir, database)
        create_flows(data_dir, self.workdir, flows(self.settings.call_pairs), database)
        processes, ports, addresses = {}, {}, []
        for index in range(1, hub_count + 1):
            hub_id, address = f"{name}-hub{index}", f"{HOST}:{free_port()}"
            args = [*HUB_ARGS, "--sip-proxy-listen", address, "--sip-proxy", HOST, *database, "--hub-id", hub_id]
            hub = fresh_hub(data_dir / f"hub{index}", self.workdir, hub_id, args)
            ports[f"hub{index}"], processes[f"hub{index}"] = await self.stack.enter_async_context(hub)
            addresses.append(address)
        edge = await self.edge(name, addresses)
        assert edge.process is not None
        processes["kamailio"] = edge.process.pid
        processes["postgres"] = self.cluster.postmaster_pid()
        return Setup(name, edge.wss_port, self.edge_transport, key, processes, ports)

    async def edge_alone(self, key: AccessKey) -> Setup:
        edge = await self.edge(EDGE_ALONE, [], register_answering_config(self.workdir))
        assert edge.process is not None
        return Setup(EDGE_ALONE, edge.wss_port, self.edge_transport, key, {"kamailio": edge.process.pid})

    @property
    def edge_transport(self) -> Transport:
        return Transport("edge", self.tls.cert, self.tls.key)


@contextlib.asynccontextmanager
async def setups(workdir: Path, settings: Settings) -> AsyncIterator[dict[str, Setup]]:
    """Every setup's servers, up for the block and stopped after it however it ends."""
    async with contextlib.AsyncExitStack() as stack:
        cluster = Cluster()
        await asyncio.to_thread(cluster.start)
        stack.callback(cluster.stop)
        shared = Shared(workdir, tls_transport(workdir), cluster, stack, settings)
        embedded = await shared.embedded()
        ready = {
            HUB: embedded,
            EDGE_1HUB: await shared.behind_edge(EDGE_1HUB, 1),
            EDGE_2HUBS: await shared.behind_edge(EDGE_2HUBS, 2),
            EDGE_ALONE: await shared.edge_alone(embedded.key),
        }
        try:
            yield ready
        except Exception as exc:
            # the clients see only connections reset: say which edge died, and how, before its log goes
            for name, edge in shared.edges.items():
                if edge.crashed():
                    alert = next(line for line in edge.log().splitlines() if "exited by a signal" in line)
                    raise RuntimeError(f"Kamailio ({name}) crashed: {alert.strip()}") from exc
            raise


def in_turn(names: list[str]) -> list[str]:
    """Two windows each, mirrored (a b c d d c b a): a drift that grows steadily hits all alike."""
    return [*names, *reversed(names)]


# --- REGISTER ----------------------------------------------------------------------------------


async def measure_registers(setups: dict[str, Setup], settings: Settings) -> dict[str, object]:
    """Every setup's clients re-registering flat out, the setups in turn; CPU of every process."""
    results = {name: LoadResult() for name in setups}
    clients = {}
    window_seconds = settings.register_seconds / 2
    try:
        for name, setup in setups.items():
            tokens = [client_token(setup.key, f"r{i}") for i in range(settings.register_clients)]
            clients[name] = await connect_many(setup.port, tokens, setup.transport)
        for name in in_turn(list(setups)):
            with setups[name].window("register"):
                deadline = time.monotonic() + window_seconds
                await asyncio.gather(*(reregister_until(client, deadline, results[name]) for client in clients[name]))
    finally:
        await asyncio.gather(*(close_all(each) for each in clients.values()))
    figures = {name: register_figures(results[name], setups[name].usage["register"]) for name in setups}
    hub_rate = figures[HUB]["register_per_s"]
    return {
        "clients_per_setup": settings.register_clients,
        "seconds_per_setup": settings.register_seconds,
        "order": in_turn(list(setups)),
        **figures,
        "rate_over_hub": {name: round(figures[name]["register_per_s"] / hub_rate, 2) for name in setups},
    }


def register_figures(result: LoadResult, usage: Usage) -> dict[str, Any]:
    return {
        "elapsed_s": round(usage.elapsed, 3),
        "completed_200": result.completed,
        "non_200": sum(count for status, count in result.statuses.items() if status != 200),
        "statuses": {str(status): count for status, count in sorted(result.statuses.items())},
        "refusals": dict(result.refusals),
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "register_per_s": round(result.completed / usage.elapsed, 1),
        **usage.figures(result.completed, "us_per_register", 1e6),
    }


# --- calls -------------------------------------------------------------------------------------


@dataclass
class CallResults:
    setups_ms: list[float] = field(default_factory=list)  # start_call() to audio at both ends
    errors: list[str] = field(default_factory=list)


async def call_once(door: Endpoint, desk: Endpoint) -> float:
    """Door calls desk, the desk answers once it rings, both hear the other, the door hangs up:
    the seconds from ``start_call()`` to audio at both ends."""
    placed = await place_call(door, desk)
    sinks = (placed.call.sink, placed.answered.sink)
    assert all(isinstance(sink, CountingSink) for sink in sinks)
    await wait_for(lambda: all(sink.frames > 0 for sink in sinks), "audio at both ends")  # type: ignore[union-attr]
    heard = time.monotonic() - placed.started_at
    await hang_up(placed)
    return heard


async def call_until(door: Endpoint, desk: Endpoint, deadline: float, results: CallResults) -> None:
    """Calls one after the other until the deadline; the last one started before it is finished."""
    while time.monotonic() < deadline:
        try:
            results.setups_ms.append(await call_once(door, desk) * 1000)
        except Exception as exc:
            results.errors.append(f"{type(exc).__name__}: {exc}")
            return


def pairs_of(setup: Setup, count: int) -> list[tuple[Endpoint, Endpoint]]:
    door_audio, desk_audio = tone_packets(DOOR_HZ), tone_packets(DESK_HZ)
    return [
        (
            Endpoint(
                f"door{i}", setup.port, setup.key, lambda: OpusLoopSource(door_audio), CountingSink,
                outgoing=f"door{i}", transport=setup.transport,
            ),
            Endpoint(
                f"desk{i}", setup.port, setup.key, lambda: OpusLoopSource(desk_audio), CountingSink,
                transport=setup.transport,
            ),
        )
        for i in range(count)
    ]  # fmt: skip


async def answered_per_hub(setup: Setup) -> dict[str, int]:
    """Each hub's count of answered calls so far (/metrics)."""
    return {
        name: await hub_metric(port, "intercom_calls_answered_total", setup.key, setup.hub_transport)
        for name, port in setup.hubs.items()
    }


async def measure_calls(setups: dict[str, Setup], settings: Settings) -> dict[str, object]:
    """K door/desk pairs per setup calling flat out, the setups in turn; CPU of every process per call."""
    pairs = {name: pairs_of(setups[name], settings.call_pairs) for name in CALL_SETUPS}
    results = {name: CallResults() for name in CALL_SETUPS}
    carried: dict[str, dict[str, int]] = {name: {} for name in CALL_SETUPS}
    window_seconds = settings.call_seconds / 2
    endpoints = [endpoint for each in pairs.values() for pair in each for endpoint in pair]
    try:
        await connect_all(endpoints)
        # one call per pair first, not counted: the first call's imports and caches, in each hub
        await asyncio.gather(*(call_once(*pair) for each in pairs.values() for pair in each))
        for name in in_turn(list(CALL_SETUPS)):
            before = await answered_per_hub(setups[name])
            with setups[name].window("calls"):
                deadline = time.monotonic() + window_seconds
                await asyncio.gather(*(call_until(*pair, deadline, results[name]) for pair in pairs[name]))
            after = await answered_per_hub(setups[name])
            for hub, count in after.items():
                carried[name][hub] = carried[name].get(hub, 0) + count - before[hub]
    finally:
        await destroy_all(endpoints)
    figures = {name: call_figures(results[name], setups[name].usage["calls"], carried[name]) for name in CALL_SETUPS}
    hub_rate = figures[HUB]["calls_per_s"]
    return {
        "pairs_per_setup": settings.call_pairs,
        "seconds_per_setup": settings.call_seconds,
        "order": in_turn(list(CALL_SETUPS)),
        "client": "intercom.sdk (aiortc: ICE, DTLS, SRTP; pre-encoded Opus, frames counted)",
        **figures,
        "rate_over_hub": {name: round(figures[name]["calls_per_s"] / hub_rate, 2) for name in CALL_SETUPS},
    }


def call_figures(results: CallResults, usage: Usage, carried: dict[str, int]) -> dict[str, Any]:
    calls = len(results.setups_ms)
    hubs_ms = sum(usage.seconds[hub] for hub in carried) * 1000
    return {
        "elapsed_s": round(usage.elapsed, 3),
        "calls": calls,
        "failed": len(results.errors),
        "first_errors": results.errors[:5],
        "calls_per_s": round(calls / usage.elapsed, 2),
        "start_to_audio_both_ends_ms": ms_summary(sorted(results.setups_ms)) if calls else None,
        "answered_per_hub": carried,
        # every hub's CPU over the calls it answered: what one more call costs the hub that takes it
        "hub_cpu_ms_per_call_per_hub": {
            hub: round(usage.seconds[hub] * 1000 / count, 1) if count else None for hub, count in carried.items()
        },
        "hubs_cpu_ms_per_call": round(hubs_ms / max(1, calls), 1),
        **usage.figures(calls, "ms_per_call", 1e3),
    }


# --- the run -----------------------------------------------------------------------------------


def environment() -> dict[str, object]:
    return {
        **host_environment(),
        "loadavg_at_end": os.getloadavg(),
        "kamailio": kamailio_program(),
        "edge_settings": EDGE_SETTINGS,
        "edge_shared_memory_mb": EDGE_SHARED_MEMORY_MB,
        "hub_launch": " ".join(("intercom hub", *HUB_ARGS)),
        **package_versions(("intercom", "aiortc", "websockets", "uvicorn", "psycopg", "psycopg-pool")),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, object]:
    async with setups(workdir, settings) as ready:
        register = await wait_phase("register", measure_registers(ready, settings), PHASE_TIMEOUT)
        calls = await wait_phase("calls", measure_calls(ready, settings), PHASE_TIMEOUT)
    return {"register": register, "calls": calls}


def verdict(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    register, calls = figures["register"], figures["calls"]
    passed = {
        "register": all(register[name]["non_200"] == 0 and register[name]["errors"] == 0 for name in register["order"]),
        "calls": all(calls[name]["failed"] == 0 and calls[name]["calls"] > 0 for name in CALL_SETUPS),
    }
    return {**passed, "all": all(passed.values())}


def summary_line(figures: dict[str, dict[str, Any]]) -> str:
    register, calls = figures["register"], figures["calls"]
    rates = ", ".join(f"{name} {register[name]['register_per_s']:.0f}" for name in register["order"][:4])
    call_rates = ", ".join(
        f"{name} {calls[name]['calls_per_s']:.1f} ({calls[name]['hubs_cpu_ms_per_call']:.0f} ms hub CPU/call)"
        for name in CALL_SETUPS
    )
    bench = max(register[name]["cpu_core_share"]["bench"] for name in register["order"])
    return (
        f"cluster: REGISTER/s {rates} @{register['clients_per_setup']} clients; "
        f"calls/s {call_rates} @{calls['pairs_per_setup']} pairs; "
        f"generator up to {bench:.2f} core"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "50 clients, 2 pairs, a few seconds per setup")
    if kamailio_program() is None:
        print("bench failed: kamailio is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 2
    raise_nofile_limit()
    settings = Settings.for_mode(args.quick)
    targets = {"non_200_max": 0, "failed_calls_max": 0}
    return run_and_report(
        args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line, RUN_TIMEOUT
    )


if __name__ == "__main__":
    sys.exit(main())
