"""The ``intercom`` command: keys, tokens, and a real hub process over wss."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import ssl
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from intercom.auth import ADMIN, TokenForbidden, check_token, unit_scope
from intercom.auth.certificates import fingerprint_of_file
from intercom.cli import main
from intercom.hub import HubConfig, Storage
from intercom.hub_flags import CALL_LIMITS, DURABILITY
from intercom.media import MediaPolicy, ToneSource
from intercom.sdk import CallAudio, CallStatus, Client, ClientStatus, IncomingCall

from ..conftest import STEP


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def key_file(folder, secret: str) -> str:
    """The secret in a file of its own: what ``token --key-file`` reads (never ``--key SECRET``)."""
    path = folder / "key.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return str(path)


def test_keys_create_list_revoke(tmp_path, capsys):
    code, out, _ = run(capsys, "keys", "create", "--data-dir", str(tmp_path), "--name", "front", "--admin")
    assert code == 0
    created = json.loads(out)
    assert set(created) == {"id", "key", "scope"} and created["scope"]["admin"] is True
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(tmp_path))
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert listed["id"] == created["id"] and listed["name"] == "front" and listed["revokedAt"] is None
    assert listed["scope"] == created["scope"] and listed["access"].startswith("admin")
    assert created["key"] not in out  # the secret is shown once, at creation
    code, out, _ = run(capsys, "keys", "revoke", "--data-dir", str(tmp_path), created["id"])
    assert code == 0 and json.loads(out) == {"id": created["id"], "revoked": True}
    code, _, err = run(capsys, "keys", "revoke", "--data-dir", str(tmp_path), created["id"])
    assert code == 2 and "no active key" in err


def test_keys_create_a_unit_key_whose_tokens_stay_in_its_scope(tmp_path, capsys):
    code, out, _ = run(
        capsys, "keys", "create", "--data-dir", str(tmp_path), "--name", "door unit",
        "--identity", "door", "--incoming", "--outgoing", "ring_desks",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert created["scope"] == {
        "admin": False,
        "identities": ["door"],
        "incoming": True,
        "outgoingFlows": ["ring_desks"],
    }
    key = Storage(tmp_path).get_key(created["id"])
    assert key is not None and key.scope == unit_scope("door", "door", "ring_desks")
    code, out, _ = run(
        capsys, "token", "--key-id", key.id, "--key-file", key_file(tmp_path, key.secret),
        "--identity", "desk", "--incoming",
    )  # fmt: skip
    with pytest.raises(TokenForbidden, match="may mint tokens for door only, not desk"):
        check_token(out.strip(), Storage(tmp_path).get_key)
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(tmp_path))
    assert json.loads(out)["access"] == "unit door: incoming calls; outgoing calls running ring_desks"


async def test_keys_list_tells_how_to_split_a_legacy_key(tmp_path, capsys):
    await Storage(tmp_path).put_key("old", "oldsecret", "units", None)
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(tmp_path))
    listed = json.loads(out)
    assert code == 0 and listed["scope"] is None and "oldsecret" not in out
    assert listed["access"].startswith("legacy (unscoped): split it")
    assert "intercom units add --role door --identity door" in listed["access"]
    assert "intercom keys revoke old" in listed["access"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --admin, or --identity"),
        (["--admin", "--identity", "door"], "--admin may do anything already"),
        (["--identity", "door"], "needs --incoming, --outgoing"),
        (["--identity", "front door", "--incoming"], "1-30 characters"),
    ],
)
async def test_keys_create_bad_input_is_one_clear_line_and_makes_no_key(tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "keys", "create", "--data-dir", str(tmp_path), "--name", "k", *argv)
    assert code == 2 and out == ""
    assert err.startswith("intercom keys: ") and message in err and err.count("\n") == 1
    assert await Storage(tmp_path).list_keys() == []


async def test_token_is_accepted_by_the_hub_rules(tmp_path, capsys):
    key = await Storage(tmp_path).create_key("door", ADMIN)
    code, out, _ = run(
        capsys, "token", "--key-id", key.id, "--key-file", key_file(tmp_path, key.secret), "--identity", "door",
        "--outgoing", "flow1", "--variables", "floor=2&name=Front door", "--incoming", "--ttl", "120",
    )  # fmt: skip
    assert code == 0
    grant = check_token(out.strip(), Storage(tmp_path).get_key)
    assert grant.outgoing is not None and grant.outgoing.call_processor_id == "flow1"
    assert grant.outgoing.variables == {"floor": "2", "name": "Front door"}
    assert grant.incoming is not None and grant.incoming.identity == "door"
    assert grant.expires_at - grant.issued_at == 120


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--identity", "front door", "--incoming"], "1-30 characters"),
        (["--incoming"], "--incoming needs --identity"),
        (["--identity", "door"], "give --outgoing"),
        (["--outgoing", "f", "--ttl", "90000"], "--ttl"),
        (["--outgoing", "f", "--variables", "novalue"], "bad query field"),
    ],
)
def test_token_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "token", "--key-id", "k", "--key-file", key_file(tmp_path, "s"), *argv)
    assert code == 2 and out == ""
    assert err.startswith("intercom token: ") and message in err and err.count("\n") == 1


def test_token_refuses_a_secret_on_the_command_line(capsys):
    code, out, err = run(capsys, "token", "--key-id", "k", "--key", "hunter2-secret", "--identity", "d", "--incoming")
    assert code == 2 and out == "" and "hunter2-secret" not in err
    assert err.startswith("intercom token: --key SECRET would put the secret on the command line")
    assert "--key - (standard input), --key-file or --env-file" in err


async def test_token_reads_the_secret_from_standard_input(tmp_path, capsys, monkeypatch):
    key = await Storage(tmp_path).create_key("desk", ADMIN)
    monkeypatch.setattr(sys, "stdin", io.StringIO(key.secret + "\n"))
    code, out, _ = run(capsys, "token", "--key-id", key.id, "--key", "-", "--identity", "desk", "--incoming")
    assert code == 0 and check_token(out.strip(), Storage(tmp_path).get_key).incoming is not None


async def test_token_takes_the_key_from_a_units_env_file(tmp_path, capsys):
    key = await Storage(tmp_path).create_key("door", ADMIN)
    env = tmp_path / "intercom.env"
    env.write_text(f"INTERCOM_ROLE=door\nINTERCOM_ACCESS_KEY_ID={key.id}\nINTERCOM_ACCESS_KEY={key.secret}\n")
    env.chmod(0o640)
    code, out, _ = run(capsys, "token", "--env-file", str(env), "--identity", "door", "--incoming")
    assert code == 0 and check_token(out.strip(), Storage(tmp_path).get_key).incoming is not None
    env.chmod(0o644)  # the env file's own checks hold here too
    code, out, err = run(capsys, "token", "--env-file", str(env), "--identity", "door", "--incoming")
    assert code == 2 and out == "" and "readable by every user" in err and key.secret not in err
    env.chmod(0o600)
    env.write_text("INTERCOM_ROLE=door\n")
    code, _, err = run(capsys, "token", "--env-file", str(env), "--identity", "door", "--incoming")
    assert code == 2 and "INTERCOM_ACCESS_KEY_ID: required, and not set" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--key-file", "/nonexistent/key"], "--key-file /nonexistent/key: No such file"),
        (["--key", "-", "--key-file", "/k"], "not allowed with argument"),
        ([], "give --key-id, or --env-file of a unit"),
    ],
)
def test_token_secret_options_bad_input_is_one_clear_line(capsys, monkeypatch, argv, message):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    key_id = [] if not argv else ["--key-id", "k"]
    try:
        code = main(["token", *key_id, *argv, "--identity", "d", "--incoming"])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err


def test_token_with_an_empty_standard_input_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(capsys, "token", "--key-id", "k", "--key", "-", "--identity", "d", "--incoming")
    assert code == 2 and out == "" and "--key -: the secret must be one word" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--allow-origin", "page.example"], "--allow-origin page.example: give an origin such as"),
        (["--allow-origin", "https://page.example/desk"], "give an origin such as"),
        (["--metrics-token-file", "/nonexistent/token"], "--metrics-token-file /nonexistent/token: No such file"),
        (["--turn-secret", "s3cret"], "--turn-secret would put the secret on the command line"),
        (["--turn-url", "turn:t.example:3478"], "--turn-url needs --turn-secret-file"),
        (["--turn-secret-file", "/nonexistent/turn"], "--turn-secret-file /nonexistent/turn: No such file"),
        (["--max-flow-bytes", "10"], "--max-flow-bytes must be 1024 or more"),
        (["--max-redirects", "-1"], "--max-redirects must be 0 or more"),
        (["--database", "mysql://db.example/intercom"], "--database: give postgresql://user@host[:port]/database"),
        (["--database", "postgresql://intercom@db.example"], "--database: the URL names no database"),
        (["--database", "postgresql://intercom@db.example/hub", "--database-pool-size", "0"], "must be 1 or more"),
        (["--database-password-file", "/nonexistent/password"], "--database-password-file goes with --database"),
        (["--database", "postgresql://intercom@db.example/hub", "--database-pool-timeout", "0"], "more than 0"),
    ],
)
def test_hub_bad_options_are_one_clear_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), *argv)
    assert code == 2 and err.startswith("intercom hub: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "url", ["postgresql://intercom:s3cret-pw@db.example/hub", "postgresql://intercom@db.example/hub?password=s3cret-pw"]
)
def test_a_database_password_in_the_url_is_refused_and_not_repeated(tmp_path, capsys, url):
    code, out, err = run(capsys, "hub", "--data-dir", str(tmp_path), "--database", url)
    assert code == 2 and "the URL holds a password" in err and "--database-password-file" in err
    assert "s3cret-pw" not in err + out


def test_the_database_flags_reach_the_hubs_config(tmp_path, capsys, monkeypatch):
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))
    password = tmp_path / "password"
    password.write_text("the-password\n")
    url = "postgresql://intercom@db.example:5433/hub"
    flags = ["--database", url, "--database-password-file", str(password), "--database-pool-size", "4"]
    flags += ["--database-pool-timeout", "2.5", "--hub-id", "hub-2"]
    code, _, _ = run(capsys, "hub", "--data-dir", str(tmp_path), *flags)
    assert code == 0
    (config,) = started
    assert (config.database, config.database_password, config.database_pool_size, config.hub_id) == (
        url,
        "the-password",
        4,
        "hub-2",
    )
    code, _, _ = run(capsys, "hub", "--data-dir", str(tmp_path))
    assert started[-1].database is None  # SQLite in the data directory


def test_hub_call_limits_given_reach_its_config_and_the_rest_keep_their_defaults(tmp_path, capsys, monkeypatch):
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))
    code, _, _ = run(capsys, "hub", "--data-dir", str(tmp_path), "--max-calls", "3", "--media-timeout", "2.5")
    assert code == 0
    (config,) = started
    assert (config.max_calls, config.media_timeout) == (3, 2.5)
    defaults = HubConfig(data_dir=tmp_path)
    assert (config.max_calls_per_identity, config.max_call_duration, config.max_ring_legs) == (
        defaults.max_calls_per_identity,
        defaults.max_call_duration,
        defaults.max_ring_legs,
    )
    for limit in CALL_LIMITS + DURABILITY:  # --help tells the defaults the hub uses
        assert limit.help.endswith(f"(default {getattr(defaults, limit.name):g})"), limit.name


def test_hub_refuses_a_metrics_token_too_short_to_be_secret(tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), "--metrics-token-file", str(token_file))
    assert code == 2 and "at least 16 characters" in err and "short" not in err  # the secret is not echoed


def test_hub_refuses_half_tls_configuration(tmp_path, capsys, tls_files):
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), "--cert", str(tls_files[0]))
    assert code == 2 and "--cert and --key go together" in err
    cert, key = (str(path) for path in tls_files)
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), "--cert", cert, "--key", key, "--insecure-plain")
    assert code == 2 and "--insecure-plain serves without TLS: leave out --cert and --key" in err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_hub_process(*argv: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    """``intercom hub`` in a process of its own, and its log up to "Uvicorn running"."""
    hub = subprocess.Popen(
        [sys.executable, "-m", "intercom.cli", "hub", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert hub.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(20):
        while "Uvicorn running" not in (line := (await asyncio.to_thread(hub.stdout.readline)).decode()):
            assert hub.poll() is None, f"hub exited during start-up: {lines}"
            lines.append(line)
    return hub, lines


async def test_hub_on_loopback_stays_plain_and_makes_no_certificate(tmp_path):
    port = free_port()
    hub, log = await start_hub_process("--data-dir", str(tmp_path), "--host", "127.0.0.1", "--port", str(port))
    try:
        assert any(f"serving ws://127.0.0.1:{port} (loopback only: plain)" in line for line in log), log
        async with asyncio.timeout(STEP):
            websocket = await connect(f"ws://127.0.0.1:{port}/", subprotocols=["sip"])  # type: ignore[list-item]
            await websocket.close()
        assert not (tmp_path / "hub-cert.pem").exists()
    finally:
        hub.terminate()
        hub.wait(timeout=10)


async def test_hub_process_over_wss_carries_a_call_between_python_clients(tmp_path, tls_files, capsys):
    cert, key_file = tls_files
    key = await Storage(tmp_path).create_key("door", ADMIN)
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps({"id": "door", "steps": [{"action": "transfer", "options": {"destination": "client:desk"}}]})
    )
    assert main(["callflows", "create", "--data-dir", str(tmp_path), "--file", str(flow)]) == 0
    port = free_port()
    metrics_token_file = tmp_path / "metrics-token"
    metrics_token_file.write_text("t" * 32 + "\n")
    hub, log = await start_hub_process(
        "--data-dir", str(tmp_path), "--port", str(port), "--cert", str(cert), "--key", str(key_file),
        "--ice-host", "127.0.0.1", "--metrics-token-file", str(metrics_token_file),
        "--allow-origin", "https://Page.example:8080",
    )  # fmt: skip
    clients: list[Client] = []
    try:
        (started,) = [line for line in log if f"serving wss://127.0.0.1:{port}, certificate SHA-256" in line]
        pin = started.split()[-1]  # the fingerprint the units pin, as the hub's log tells it
        assert pin == fingerprint_of_file(cert)
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=STEP) as http:
            assert (await http.get("/metrics")).status_code == 401
            metrics = await http.get("/metrics", headers={"Authorization": "Bearer " + "t" * 32})
            assert metrics.status_code == 200 and "intercom_calls 0" in metrics.text
        for origin, allowed in (("https://page.example:8080", True), ("https://other.example", False)):
            headers = {"Origin": origin}
            try:
                async with asyncio.timeout(STEP):
                    async with connect(
                        f"wss://127.0.0.1:{port}/", subprotocols=["sip"], ssl=trust, additional_headers=headers
                    ):
                        assert allowed, origin
            except InvalidStatus as refused:
                assert not allowed and refused.response.status_code == 403, origin

        async def unit(frequency: float, *options: str) -> Client:
            token = subprocess.run(
                [sys.executable, "-m", "intercom.cli", "token", "--key-id", key.id, "--key", "-", *options],
                input=key.secret, check=True, capture_output=True, text=True, timeout=30,
            ).stdout.strip()  # fmt: skip
            audio = CallAudio(source=lambda: ToneSource(frequency), policy=MediaPolicy(host_addresses=("127.0.0.1",)))
            client = Client(host=f"127.0.0.1:{port}", refresh_token=lambda: token, tls_fingerprint=pin, audio=audio)
            clients.append(client)
            async with asyncio.timeout(STEP):
                await client.setup(jwt=token)
            assert client.status is ClientStatus.CONNECTED
            return client

        desk = await unit(880.0, "--identity", "desk", "--incoming")
        door = await unit(440.0, "--identity", "door", "--outgoing", "door")
        offered: asyncio.Future[IncomingCall] = asyncio.get_running_loop().create_future()
        desk.on("incoming", offered.set_result)
        call = door.start_call()
        confirmed = asyncio.Event()
        call.on("status", lambda status: status is CallStatus.CONFIRMED and confirmed.set())
        async with asyncio.timeout(STEP):
            answered = (await offered).accept()
            await confirmed.wait()
            await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(880, abs=15), STEP)
            await answered.sink.wait_until(
                lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(440, abs=15), STEP
            )
            await call.disconnect()
    finally:
        for client in clients:
            async with asyncio.timeout(STEP):
                await client.destroy()
        hub.terminate()
        hub.wait(timeout=10)


def test_demo_runs_two_units_on_mock_pins_and_prints_the_timeline():
    result = subprocess.run(
        [sys.executable, "-m", "intercom.cli", "--log-level", "error", "demo"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.split("s ", 1)[1] for line in result.stdout.splitlines()]  # without the times
    assert "[ desk] status connected" in lines and "[ door] light status: heartbeat" in lines
    assert any(line.startswith("[  bad] error 406") for line in lines)
    in_order = [
        "[ door] CALL pressed",
        "[ desk] light call: ring_blink",
        "[ desk] ANSWER pressed",
        "[ door] light call: on",
        "[ desk] UNLOCK pressed",
        "[ door] relay: door strike energised for 1.0 s",
        "[ door] relay released: the door is shut again",
        "[ desk] REJECT pressed",
        "[ door] light call: off",
        "[ demo] the visitor rings again; this time nobody answers for 5 s",
        "[  hub] no answer: the hub answers the door itself and speaks",
        "[ door] CALL held 1.2 s: the visitor hangs up",
        "[  hub] the call log, as `intercom calls list` shows it over SSH:",
    ]
    positions = [next(i for i, line in enumerate(lines) if line == wanted) for wanted in in_order]
    assert positions == sorted(positions), result.stdout
    assert any(line.startswith("[ door] hears 880 Hz") for line in lines)
    assert any(line.startswith("[ desk] hears 440 Hz") for line in lines)
    assert any(line.startswith("[ door] heard the hub's message") for line in lines)
    log = lines[positions[-1] + 1 :]
    assert "ring_desks  ended  (no answer)" in log[0] and "rang desk: no_answer" in log[1]
    assert "recording 0:0" in log[2] and log[2].endswith(".wav")
    assert "rang desk: answered" in log[4]
    assert result.stdout.rstrip().endswith("demo finished")
