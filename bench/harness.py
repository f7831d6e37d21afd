"""What the benchmarks in this folder share: hub processes started through the CLI, plain or over TLS,
the hub's HTTP endpoints read in one place, CPU and memory read from /proc, and the run-and-report
frame, so that every benchmark starts, measures and reports alike.

The benchmarks run as ``.venv/bin/python bench/NAME.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intercom.auth import AccessKey

# intercom is imported where it is used, not here: bench/aec_compare.py runs in a virtualenv of its
# own, without intercom, and shares only the run frame at the end of this module.

HOST = "127.0.0.1"
RUN_TIMEOUT = 300.0  # the whole run, start-up to clean-up
START_TIMEOUT = 20.0  # a server must answer within this after spawning
GENERATOR_BOUND_CPU = 0.9  # the load generator using this share of a core is the likely bottleneck
OTHER_LOAD_CPU = 0.2  # CPU used by unrelated processes during a load phase worth a warning

Figures = dict[str, dict[str, Any]]

# Every bench client comes from 127.0.0.1, and most send as fast as answers come back: with the
# hub's per-source connection limit and message rate, a bench would measure those (bench/flood.py
# does, on purpose) instead of what it is about.
ONE_SOURCE_LIMITS = (
    "--max-connections-per-source", "100000", "--sip-messages-per-second", "1000000", "--sip-message-burst", "1000000",
)  # fmt: skip


# --- transports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transport:
    """How the bench reaches a hub: plain ws/http, or wss/https with the hub's certificate and key.

    A TLS client trusts exactly that certificate, whatever names it holds: as strict as a unit that
    pins its hub's fingerprint, and the same record layer once connected, which is what is timed.
    """

    name: str
    cert: Path | None = None
    key: Path | None = None

    @property
    def secure(self) -> bool:
        return self.cert is not None

    @property
    def hub_args(self) -> tuple[str, ...]:
        """What ``intercom hub`` needs to serve this transport."""
        return ("--cert", str(self.cert), "--key", str(self.key)) if self.secure else ()

    @cached_property
    def client_context(self) -> ssl.SSLContext | None:
        """For clients: the certificate itself as the only trust anchor (partial chain), no name check
        (the bench connects to 127.0.0.1, which the certificate need not name)."""
        if self.cert is None:
            return None
        context = ssl.create_default_context(cafile=self.cert)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.check_hostname = False
        return context

    def url(self, port: int, path: str = "/", web: bool = False) -> str:
        """The hub's SIP WebSocket URL, or with ``web`` its HTTP one."""
        scheme = ("https" if web else "wss") if self.secure else ("http" if web else "ws")
        return f"{scheme}://{HOST}:{port}{path}"


PLAIN = Transport("plain")


def tls_transport(workdir: Path) -> Transport:
    """A transport whose hub serves the certificate a hub makes itself: ECDSA P-256, issued by its own CA."""
    from intercom.auth.certificates import own_certificate

    cert, key = own_certificate(workdir / "tls")
    return Transport("tls", cert, key)


def tls_cipher(transport: object) -> str | None:
    """The negotiated protocol and cipher of a client connection's asyncio transport, as evidence in the JSON."""
    ssl_object = transport.get_extra_info("ssl_object") if isinstance(transport, asyncio.BaseTransport) else None
    if ssl_object is None:
        return None
    name, version, _bits = ssl_object.cipher()
    return f"{version} {name}"


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now (the CLI takes a port number, not a socket)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server_process(argv: list[str], log_path: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server subprocess for the ``with`` block and always stop it, however the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )  # inherits the caller's descriptor limit, so no preexec_fn (unsafe once threads exist)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.asynccontextmanager
async def fresh_hub(
    data_dir: Path,
    workdir: Path,
    phase: str,
    hub_args: Iterable[str] = (),
    entry: Iterable[str] = ("-m", "intercom.cli"),
    transport: Transport = PLAIN,
    default_limits: bool = False,
) -> AsyncIterator[tuple[int, int]]:
    """A hub process started through the CLI for one phase, so that no phase runs on a hub another
    phase has warmed or grown: yields its port and pid. ``transport``: plain, or TLS (``--cert``, ``--key``).
    The per-source limits are lifted (:data:`ONE_SOURCE_LIMITS`) unless ``default_limits``.

    ``entry``: what the interpreter runs, given the CLI's arguments after it; a benchmark may pass
    ``("-c", script, ...)`` whose script wraps hub methods to time them, then calls ``intercom.cli.main``.
    """
    port = free_port()
    argv = [sys.executable, *entry, "--log-level", "warning", "hub"]
    argv += ["--data-dir", str(data_dir), "--host", HOST, "--port", str(port), *hub_args, *transport.hub_args]
    argv += () if default_limits else ONE_SOURCE_LIMITS
    log = workdir / f"hub-{phase}.log"
    with server_process(argv, log, workdir) as hub:
        try:
            await wait_until(lambda: hub_healthy(port, transport), hub, "hub", START_TIMEOUT)
            yield port, hub.pid
        except BaseException:
            print(f"--- hub log tail ({phase}) ---\n{tail(log)}", file=sys.stderr)
            raise


@contextlib.asynccontextmanager
async def fresh_hubs(
    data_dir: Path, workdir: Path, phase: str, transports: Iterable[Transport], hub_args: Iterable[str] = ()
) -> AsyncIterator[dict[Transport, tuple[int, int]]]:
    """A fresh hub per transport, all running for the block, for a phase that alternates between
    them so that the machine's drift hits each alike: yields each one's port and pid."""
    async with contextlib.AsyncExitStack() as stack:
        hubs = {}
        for transport in transports:
            hub = fresh_hub(data_dir, workdir, f"{phase}-{transport.name}", hub_args, transport=transport)
            hubs[transport] = await stack.enter_async_context(hub)
        yield hubs


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def create_key(data_dir: Path, database: Iterable[str] = ()) -> AccessKey:
    """A key made the way an operator makes one: ``intercom keys create``. ``database``: the
    ``--database`` flags of a PostgreSQL shared by several hubs (else SQLite in ``data_dir``)."""
    from intercom.auth import AccessKey

    argv = [
        sys.executable,
        "-m",
        "intercom.cli",
        "keys",
        "create",
        "--data-dir",
        str(data_dir),
        *database,
        "--name",
        "bench",
        "--admin",
    ]
    output = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout
    created = json.loads(output)
    return AccessKey(created["id"], created["key"], name="bench", created_at=time.time())


# --- HTTP and readiness ------------------------------------------------------------------------


async def http_get(port: int, path: str, transport: Transport = PLAIN, key: AccessKey | None = None) -> str:
    """GET on the hub, in a thread: urllib is enough for its plain-text endpoints. ``key``: sent as
    the Voice API takes it, for endpoints that need one."""
    headers = {"Authorization": f"AccessKey {key.secret}"} if key else {}
    request = urllib.request.Request(transport.url(port, path, web=True), headers=headers)

    def get() -> str:
        with urllib.request.urlopen(request, timeout=5, context=transport.client_context) as response:
            return response.read().decode()

    return await asyncio.to_thread(get)


async def hub_metric(port: int, name: str, key: AccessKey, transport: Transport = PLAIN) -> int:
    """One gauge or counter from the hub's ``/metrics``. Always with the key: a hub that lets
    ``/metrics`` answer without one ignores it, one that wants an admin key gets it."""
    for line in (await http_get(port, "/metrics", transport, key)).splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    raise RuntimeError(f"/metrics has no {name}")


async def wait_until(
    ready: Callable[[], Awaitable[bool]], process: subprocess.Popen[bytes], what: str, timeout: float
) -> None:
    """Poll ``ready`` until true; fail early if the process died, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} during start-up")
        with contextlib.suppress(OSError, ValueError):  # not listening yet, or not answering JSON yet
            if await ready():
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


async def hub_healthy(port: int, transport: Transport = PLAIN) -> bool:
    """A 200 from ``/healthz`` (urllib raises on any other status): its body is not relied on, so
    what it says besides healthy (a version, or nothing) does not matter here."""
    await http_get(port, "/healthz", transport)
    return True


async def wait_phase(what: str, phase: Awaitable[dict[str, object]], timeout: float) -> dict[str, object]:
    """A phase that stops making progress fails the run instead of hanging it."""
    try:
        return await asyncio.wait_for(phase, timeout)
    except TimeoutError:
        raise TimeoutError(f"{what} took over {timeout:.0f} s") from None


# --- CPU and memory ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc (our children and ourselves)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of a process and of every process below it now (Kamailio's workers,
    PostgreSQL's backends): a child that exited meanwhile is not counted."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            children.setdefault(int(text[text.rindex(")") + 2 :].split()[1]), []).append(int(stat.parent.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):  # gone meanwhile
            total += cpu_seconds(current)
        pending += children.get(current, [])
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle, from /proc/stat: with the two processes' own times it
    shows how much CPU something else took during a phase (a shared VM, a test run...)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuWindow:
    """CPU time of the hub, of this process (the load generator) and of everything else over one
    timed stretch, from construction to :meth:`stop`: a generator near a full core may be what
    limits the rate, and other processes' CPU makes the figures pessimistic."""

    def __init__(self, hub_pid: int) -> None:
        self.hub_pid = hub_pid
        self._hub, self._bench, self._busy = cpu_seconds(hub_pid), cpu_seconds(os.getpid()), machine_busy_seconds()
        self.started = time.monotonic()
        self.elapsed = self.hub_seconds = self.bench_seconds = self.other_seconds = 0.0

    def stop(self) -> None:
        self.elapsed = time.monotonic() - self.started
        self.hub_seconds = cpu_seconds(self.hub_pid) - self._hub
        self.bench_seconds = cpu_seconds(os.getpid()) - self._bench
        self.other_seconds = machine_busy_seconds() - self._busy - self.hub_seconds - self.bench_seconds

    @classmethod
    def merged(cls, windows: list[CpuWindow]) -> CpuWindow:
        """The windows' times added up: one hub's stretches, measured in turn with another hub's."""
        total = copy.copy(windows[0])
        for name in ("elapsed", "hub_seconds", "bench_seconds", "other_seconds"):
            setattr(total, name, sum(getattr(window, name) for window in windows))
        return total

    @property
    def hub_share(self) -> float:
        return self.hub_seconds / self.elapsed

    @property
    def bench_share(self) -> float:
        return self.bench_seconds / self.elapsed

    @property
    def other_share(self) -> float:
        return max(0.0, self.other_seconds / self.elapsed)

    @property
    def generator_bound(self) -> bool:
        return self.bench_share >= GENERATOR_BOUND_CPU

    def other_load_notes(self) -> list[str]:
        if self.other_share < OTHER_LOAD_CPU:
            return []
        return [f"other processes used {self.other_share:.2f} of a core meanwhile: the figures are pessimistic"]


# --- statistics --------------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def ms_summary(sorted_ms: list[float]) -> dict[str, float]:
    """p50, p90 and max of sorted milliseconds, to a tenth."""
    return {
        "p50": round(statistics.median(sorted_ms), 1),
        "p90": round(percentile(sorted_ms, 0.9), 1),
        "max": round(sorted_ms[-1], 1),
    }


async def call_ended(call: Any) -> None:
    """Until an SDK call is over (ended or failed): polled, as a call has no event for both."""
    from intercom.sdk import CallStatus

    while call.status not in (CallStatus.ENDED, CallStatus.FAILED):
        await asyncio.sleep(0.01)


# --- the run -----------------------------------------------------------------------------------


def host_environment() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def parse_args(argv: list[str] | None, description: str, quick_help: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    return parser.parse_args(argv)


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[Path], Awaitable[Figures]],
    targets: dict[str, float],
    environment: Callable[[], dict[str, object]],
    verdict: Callable[[Figures], dict[str, bool]],
    summary_line: Callable[[Figures], str],
    timeout: float = RUN_TIMEOUT,
) -> int:
    """Run the phases in a scratch directory, print the JSON result, then the one-line summary.
    ``timeout``: for the whole run.

    Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
    """
    # SIGTERM raises SystemExit instead of ending the process at once, so the ``finally``
    # blocks that stop the servers still run.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="intercom-bench-") as workdir:
            figures = asyncio.run(asyncio.wait_for(run(Path(workdir)), timeout))
    except TimeoutError as exc:
        print(f"bench failed: {str(exc) or f'run over {timeout:.0f} s'}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    passed = verdict(figures)
    result = {
        "mode": "quick" if args.quick else "full",
        "environment": environment(),
        **figures,
        "targets": targets,
        "pass": passed,
        "run_seconds": round(time.monotonic() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(summary_line(figures))
    return 0 if passed["all"] else 1
