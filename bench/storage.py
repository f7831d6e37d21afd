"""Start-up benchmark: hub start time and RSS with a long-lived unit's database against an empty one.

Run from the repository root::

    .venv/bin/python bench/storage.py            # 100,000 calls and deliveries, 5 starts each (about 40 s)
    .venv/bin/python bench/storage.py --quick    # smoke test: 10,000 rows, 2 starts each
    .venv/bin/python bench/storage.py --json-out result.json

What it does, all on 127.0.0.1:

1. makes two data directories, each with an admin key made by ``intercom keys create``: one
   empty, one holding N calls (each with one leg), N webhook deliveries (100 of them still
   pending, to a closed loopback port) and one webhook, spread over the last 300 days (calls)
   and 25 days (deliveries), written straight into SQLite as the hub writes them;
2. starts ``intercom hub`` through the CLI on each in turn (empty, full, empty, full, ...), so
   that the machine's drift hits both alike, with limits above N (``--calls-max-rows``,
   ``--deliveries-max-rows``) so that the rows stay for every start; times spawn to the first
   200 from ``/healthz``, then reads the hub's RSS from /proc once it has settled (1 s).

Targets (issue 16): start <= 1 s and RSS <= 120 MB with 100,000 calls and 100,000 deliveries;
the start target applies to what the rows add to an empty database's start (the same run), since
importing the hub alone takes seconds on a busy 2-core machine.
It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from harness import (
    Figures,
    create_key,
    fresh_hub,
    host_environment,
    package_versions,
    parse_args,
    rss_mb,
    run_and_report,
)

# The start target is the database's share: what the full database adds to an empty one's start
# (importing the hub alone takes 2-4 s on a busy 2-core machine, whatever the database holds).
TARGETS = {"start_overhead_s": 1.0, "rss_mb": 120.0}
PENDING = 100  # deliveries a stopped hub left to send
SETTLE_SECONDS = 1.0  # after /healthz answers, before RSS is read: the start-up's own work done


def fill(data_dir: Path, rows: int) -> float:
    """``rows`` calls with a leg each and ``rows`` deliveries, as the hub writes them; seconds taken."""
    from intercom.hub import Storage, blocking
    from intercom.hub.records import CallRecord, LegRecord, Webhook, WebhookDelivery
    from intercom.hub.storage import DATABASE_NAME

    started = time.monotonic()
    storage = Storage(data_dir)
    webhook = blocking(storage.put(Webhook(url="http://127.0.0.1:9/hook", token="bench-token")))
    storage.close()
    now = time.time()
    calls, legs, deliveries = [], [], []
    for number in range(rows):
        made = now - 300 * 86_400 * (1 - number / rows)
        call = CallRecord(
            source="client:door", destination="ring_desks", status="ended", created_at=made, ended_at=made + 30
        )
        leg = LegRecord(call_id=call.id, source="client:door", destination="ring_desks", direction="incoming",
                        status="hangup", created_at=made, answered_at=made + 5, ended_at=made + 30)  # fmt: skip
        sent = now - 25 * 86_400 * (1 - number / rows)
        status = "pending" if number >= rows - PENDING else "delivered"
        delivery = WebhookDelivery(url=webhook.url, token=webhook.token, webhook_id=webhook.id, event="callUpdated",
                                   payload='{"items": []}' * 20, status=status, created_at=sent)  # fmt: skip
        calls.append((call.id, None, made, call.model_dump_json()))
        legs.append((leg.id, call.id, made, leg.model_dump_json()))
        deliveries.append((delivery.id, webhook.id, sent, delivery.model_dump_json()))
    with sqlite3.connect(data_dir / DATABASE_NAME) as db:
        for table, values in (("calls", calls), ("legs", legs), ("webhook_deliveries", deliveries)):
            db.executemany(f"INSERT INTO {table} (id, parent, created_at, body) VALUES (?, ?, ?, ?)", values)
    db.close()
    return time.monotonic() - started


async def one_start(data_dir: Path, workdir: Path, phase: str, rows: int) -> tuple[float, float]:
    """Seconds from spawning the hub to its first healthy answer, and its RSS (MB) once settled."""
    limits = ["--calls-max-rows", str(rows * 2), "--deliveries-max-rows", str(rows * 2)]
    started = time.monotonic()
    async with fresh_hub(data_dir, workdir, phase, limits) as (_, pid):
        ready = time.monotonic() - started
        await asyncio.sleep(SETTLE_SECONDS)
        return ready, rss_mb(pid)


async def run(workdir: Path, rows: int, starts: int) -> Figures:
    dirs = {"empty": workdir / "empty", "full": workdir / "full"}
    for data_dir in dirs.values():
        create_key(data_dir)
    fill_seconds = await asyncio.to_thread(fill, dirs["full"], rows)
    size_mb = sum(path.stat().st_size for path in dirs["full"].iterdir() if path.is_file()) / (1 << 20)
    times: dict[str, list[float]] = {name: [] for name in dirs}
    rss: dict[str, list[float]] = {name: [] for name in dirs}
    for number in range(starts):
        for name, data_dir in dirs.items():
            ready, resident = await one_start(data_dir, workdir, f"{name}-{number}", rows)
            times[name].append(ready)
            rss[name].append(resident)
    figures: Figures = {
        name: {
            "calls": rows if name == "full" else 0,
            "deliveries": rows if name == "full" else 0,
            "start_s_median": round(statistics.median(times[name]), 3),
            "start_s_max": round(max(times[name]), 3),
            "rss_mb_median": round(statistics.median(rss[name]), 1),
            "starts": [round(value, 3) for value in times[name]],
        }
        for name in dirs
    }
    figures["full"]["database_mb"] = round(size_mb, 1)
    figures["full"]["fill_s"] = round(fill_seconds, 1)
    figures["overhead"] = {
        "start_s": round(figures["full"]["start_s_median"] - figures["empty"]["start_s_median"], 3),
        "rss_mb": round(figures["full"]["rss_mb_median"] - figures["empty"]["rss_mb_median"], 1),
    }
    return figures


def verdict(figures: Figures) -> dict[str, bool]:
    full = figures["full"]
    checks = {
        "start_overhead_s": figures["overhead"]["start_s"] <= TARGETS["start_overhead_s"],
        "rss_mb": full["rss_mb_median"] <= TARGETS["rss_mb"],
    }
    return {**checks, "all": all(checks.values())}


def summary(figures: Figures) -> str:
    full, empty = figures["full"], figures["empty"]
    return (
        f"storage: with {full['calls']:,} calls and {full['deliveries']:,} deliveries the hub starts in "
        f"{full['start_s_median']:.2f} s against {empty['start_s_median']:.2f} s empty "
        f"(+{figures['overhead']['start_s']:.2f} s; target <= +{TARGETS['start_overhead_s']:g} s), "
        f"RSS {full['rss_mb_median']:.0f} MB against {empty['rss_mb_median']:.0f} MB "
        f"(target <= {TARGETS['rss_mb']:g} MB)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "10,000 rows and 2 starts each instead of 100,000 and 5")
    rows, starts = (10_000, 2) if args.quick else (100_000, 5)
    return run_and_report(
        args,
        lambda workdir: run(workdir, rows, starts),
        TARGETS,
        lambda: {**host_environment(), "packages": package_versions(["fastapi", "uvicorn", "pydantic"])},
        verdict,
        summary,
    )


if __name__ == "__main__":
    sys.exit(main())
