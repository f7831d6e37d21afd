"""The admin commands on a PostgreSQL database (several hubs share it): keys, call flows, phones
and units made with --database are the ones every hub on it reads; ``storage`` reports it; the
password comes from a file and never shows; a database that refuses is one line, nothing written."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

from intercom.auth import unit_scope
from intercom.auth.certificates import pin_of_file
from intercom.hub import HubConfig, running_hub
from intercom.hub.storage import DATABASE_NAME
from intercom.hub.tls import own_certificate

from ..conftest import HUB_LOOPBACK, STEP
from ..hub.api.call_log import door_call
from .test_cli import run

ORIGIN = "https://hubs.example.net"  # what a phone's browser opens; never reached here


def database_flags(postgres, folder: Path, password: str | None = None) -> tuple[str, list[str]]:
    """A fresh database's URL, and the flags that reach it: its password in a file of its own
    (``password``, else the right one) and the shared data directory in ``folder``."""
    url = postgres.url(postgres.new_database())
    password_file = folder / "db-password"
    password_file.write_text((password or postgres.password) + "\n")
    data_dir = folder / "shared"
    data_dir.mkdir(exist_ok=True)
    return url, ["--database", url, "--database-password-file", str(password_file), "--data-dir", str(data_dir)]


def test_keys_and_call_flows_on_a_shared_database(postgres, tmp_path, capsys):
    _, database = database_flags(postgres, tmp_path)
    flow_file = tmp_path / "ring.json"
    flow_file.write_text(
        json.dumps({"id": "ring_desk", "steps": [{"action": "transfer", "options": {"destination": "client:desk"}}]})
    )

    code, out, err = run(
        capsys, "keys", "create", "--name", "door", "--identity", "door", "--outgoing", "ring_desk", *database
    )
    assert code == 0, err
    created = json.loads(out)
    code, out, err = run(capsys, "callflows", "create", "--file", str(flow_file), *database)
    assert (code, out.strip()) == (0, "ring_desk"), err

    code, out, _ = run(capsys, "keys", "list", *database)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [created["id"]]
    code, out, _ = run(capsys, "callflows", "list", *database)
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["ring_desk"]
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(tmp_path))  # SQLite there: another database
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "keys", "revoke", created["id"], *database)
    assert code == 0 and json.loads(out) == {"id": created["id"], "revoked": True}


def test_a_wrong_database_password_is_one_clear_line_without_it(postgres, tmp_path, capsys):
    _, database = database_flags(postgres, tmp_path, password="not-the-password-42")
    code, _, err = run(capsys, "keys", "list", *database)
    assert (
        code == 2
        and "--database: cannot connect:" in err
        and 'password authentication failed for user "intercom"' in err
    )
    assert "not-the-password-42" not in err


def test_a_hub_whose_database_refuses_it_says_why_in_one_line(postgres, tmp_path, capsys):
    _, database = database_flags(postgres, tmp_path, password="not-the-password-42")
    code, _, err = run(capsys, "hub", *database)
    assert code == 2 and "--database: cannot connect:" in err and "not-the-password-42" not in err


async def test_a_phone_paired_with_web_add_is_seen_by_a_hub_on_the_same_database(postgres, tmp_path, capsys):
    url, database = database_flags(postgres, tmp_path)
    code, out, err = run(capsys, "web", "add", "--identity", "anna_phone", "--hub-url", ORIGIN, "--no-qr", *database)
    assert code == 0, err
    (link,) = re.findall(r"https://\S+", out)
    assert link.startswith(f"{ORIGIN}/desk/pair#code=")
    assert f"`intercom web revoke anna_phone --database {url}` ends it" in err
    config = HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=HUB_LOOPBACK, hub_id="hub-1",
        database=url, database_password=postgres.password,
    )  # fmt: skip
    async with asyncio.timeout(STEP), running_hub(config) as running, httpx.AsyncClient(timeout=STEP) as http:
        http.base_url = f"http://{running.address}"
        paired = await http.post("/desk/api/pair", json={"code": link.partition("#code=")[2], "device": "Pixel"})
        assert paired.status_code == 201 and paired.json()["identity"] == "anna_phone", paired.text
        bearer = {"Authorization": f"Bearer {paired.json()['credential']}"}
        assert (await http.post("/desk/api/token", headers=bearer)).status_code == 200

        code, out, _ = run(capsys, "web", "list", *database)
        (listed,) = out.splitlines()
        assert code == 0 and "anna_phone" in listed and "paired " in listed and "(Pixel)" in listed
        assert listed.endswith("active")
        code, out, _ = run(capsys, "web", "revoke", "anna_phone", *database)
        assert code == 0 and out.startswith("revoked ") and "anna_phone" in out
        assert (await http.post("/desk/api/token", headers=bearer)).status_code == 401  # at once, on every hub
    code, out, _ = run(capsys, "web", "list", "--data-dir", str(tmp_path / "shared"))  # SQLite: none of this
    assert (code, out) == (0, "")


def test_units_add_puts_the_units_key_in_the_shared_database(postgres, tmp_path, capsys):
    _, database = database_flags(postgres, tmp_path)
    code, out, err = run(
        capsys, "units", "add", "--role", "door", "--identity", "door", "--hub-url", "wss://edge.example.net",
        *database,
    )  # fmt: skip
    assert code == 0, err
    printed = dict(line.split("=", 1) for line in out.splitlines() if not line.startswith("#"))
    assert printed["INTERCOM_HUB_URL"] == "wss://edge.example.net"
    assert printed["INTERCOM_HUB_FINGERPRINT"] == pin_of_file(own_certificate(tmp_path / "shared")[0])
    code, out, _ = run(capsys, "keys", "list", *database)
    (key,) = [json.loads(line) for line in out.splitlines()]
    assert key["id"] == printed["INTERCOM_ACCESS_KEY_ID"] and key["name"] == "unit door (door)"
    assert key["scope"] == unit_scope("door", "door", "ring_desks").as_dict()
    assert not (tmp_path / "shared" / DATABASE_NAME).exists()  # nothing went to SQLite


async def test_storage_on_postgresql_reports_the_rows_the_database_size_and_what_does_not_apply(
    postgres, tmp_path, capsys
):
    from intercom.hub.storage_postgresql import PostgresStorage

    url, database = database_flags(postgres, tmp_path)
    shared = tmp_path / "shared"
    async with asyncio.timeout(STEP):
        storage = await PostgresStorage.open(url, shared, "hub-1", password=postgres.password)
    try:
        await door_call(storage)
    finally:
        await storage.aclose()
    size = sum(path.stat().st_size for path in (shared / "recordings").rglob("*.wav"))

    code, out, err = run(capsys, "storage", *database, "--recordings-quota-mb", "5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"recordings directory {shared} (every hub's): ") and " MB free of " in lines[0]
    name = url.rpartition("/")[2]
    assert re.fullmatch(rf"database {name} on PostgreSQL \d+\.\d MB: .*", lines[1])
    assert float(lines[1].split()[4]) > 1  # pg_database_size: a real figure, a few MB for an empty one
    assert "calls 1, legs 3, recordings 1, webhooks 0, webhook_deliveries 0, unlock_events 0" in lines[1]
    assert (
        lines[2] == f"recordings {size / (1 << 20):.1f} MB of 5.0 MB: transfer 1 ({size / (1 << 20):.1f} MB); 0 pruned"
    )
    assert lines[3].startswith("not on PostgreSQL: the SQLite file and its WAL")
    assert "limits:" in lines and not (shared / DATABASE_NAME).exists()


def test_storage_on_postgresql_needs_the_recordings_directory_there(postgres, tmp_path, capsys):
    _, database = database_flags(postgres, tmp_path)
    code, _, err = run(capsys, "storage", *database, "--data-dir", str(tmp_path / "elsewhere"))
    assert code == 2 and "no such directory" in err and not (tmp_path / "elsewhere").exists()


COMMANDS = {
    "web add": ["web", "add", "--identity", "anna_phone", "--hub-url", ORIGIN, "--no-qr"],
    "web list": ["web", "list"],
    "web revoke": ["web", "revoke", "anna_phone"],
    "units add": ["units", "add", "--role", "door", "--identity", "door", "--hub-url", "wss://edge.example.net"],
    "storage": ["storage"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_that_refuses_is_one_line_and_nothing_is_written(postgres, tmp_path, capsys, command):
    url, refused = database_flags(postgres, tmp_path, password="not-the-password-42")
    code, out, err = run(capsys, *COMMANDS[command], *refused)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--database: cannot connect:" in err and "not-the-password-42" not in err
    assert not (tmp_path / "shared" / DATABASE_NAME).exists()  # no SQLite instead
    (tmp_path / "db-password").write_text(postgres.password)  # the same database, now opened: empty
    right = ["--database", url, "--database-password-file", str(tmp_path / "db-password")]
    shared = ["--data-dir", str(tmp_path / "shared")]
    assert run(capsys, "keys", "list", *right, *shared)[:2] == (0, "")
    assert run(capsys, "web", "list", *right, *shared)[:2] == (0, "")


ELSEWHERE = ["--database", "postgresql://intercom@db.example.net/intercom"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web", "add", "--identity", "anna_phone", *ELSEWHERE], "--database needs --hub-url https"),
        (["units", "add", "--role", "door", "--identity", "door", *ELSEWHERE], "--database needs --hub-url wss"),
        (["web", "add", "--identity", "anna_phone", "--hub-url", ORIGIN, "--env-file", "x", *ELSEWHERE], "--env-file"),
        (["web", "list", "--database", "postgresql://intercom:hunter2-secret@db/x"], "holds a password"),
        (["storage", "--database", "mysql://intercom@db/x"], "give postgresql://"),
        (["web", "revoke", "anna_phone", "--database-password-file", "x"], "goes with --database"),
    ],
)
def test_bad_database_flags_are_one_line_before_anything_connects(tmp_path, capsys, args, message):
    code, out, err = run(capsys, *args, "--data-dir", str(tmp_path))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert "hunter2-secret" not in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_data_directory_that_cannot_be_made_is_one_line(postgres, tmp_path, capsys, backend):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    flags = database_flags(postgres, tmp_path)[1][:4] if backend == "postgresql" else []
    code, out, err = run(capsys, "keys", "list", *flags, "--data-dir", str(not_a_folder))
    assert (code, out) == (2, "") and f"--data-dir {not_a_folder}: cannot use it" in err and err.count("\n") == 1
