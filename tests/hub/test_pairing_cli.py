"""``intercom web add | list | revoke`` on a hub's data directory: the link and its QR code, the list, revocation."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import segno

from intercom.appliance.embedded_hub import EmbeddedHub
from intercom.appliance.settings import load_settings
from intercom.cli import main
from intercom.hub import HubConfig, Storage
from intercom.hub.pairing import PhoneBook
from intercom.hub.tls import authority_fingerprint, served_certificate
from intercom.hub_flags import PAIRING

from ..appliance.test_attacker_on_the_cable import install_desk
from ..appliance.test_settings import REQUIRED

ORIGIN = "https://desk.local:8443"


def web(data_dir: Path, *args: str) -> int:
    return main(["web", *args, "--data-dir", str(data_dir)])


async def test_add_prints_a_link_with_a_one_time_code_and_its_qr_code(tmp_path: Path, capsys) -> None:
    assert web(tmp_path, "add", "--identity", "anna_phone", "--name", "Anna's phone", "--hub-url", ORIGIN) == 0
    out = capsys.readouterr().out
    (link,) = re.findall(r"https://\S+", out)
    assert link.startswith(f"{ORIGIN}/desk/pair#code=")
    qr = io.StringIO()
    segno.make(link, error="m").terminal(out=qr, compact=True)
    assert qr.getvalue() in out  # the QR code holds exactly the link
    storage = Storage(tmp_path)
    try:
        paired = await PhoneBook(storage).pair(link.partition("#code=")[2], "Pixel")
    finally:
        storage.close()
    assert paired.identity == "anna_phone"
    assert "Hub CA fingerprint" not in out  # this hub made no CA of its own yet


def test_add_names_the_hubs_ca_for_the_phone_to_check(tmp_path: Path, capsys) -> None:
    served_certificate(tmp_path, None, None)  # the hub's first start: its CA and the leaf it serves
    web(tmp_path, "add", "--identity", "anna_phone", "--hub-url", ORIGIN, "--no-qr")
    fingerprint = authority_fingerprint(tmp_path)
    assert fingerprint and f"Hub CA fingerprint (compare on the phone before trusting it): {fingerprint}" in (
        capsys.readouterr().out
    )


def test_list_and_revoke(tmp_path: Path, capsys) -> None:
    web(tmp_path, "add", "--identity", "anna_phone", "--hub-url", ORIGIN, "--no-qr")
    web(tmp_path, "add", "--identity", "ben_phone", "--hub-url", ORIGIN, "--no-qr")
    capsys.readouterr()
    assert web(tmp_path, "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in listed] == ["anna_phone", "ben_phone"]
    assert all("not paired" in line and "active" in line for line in listed)
    assert web(tmp_path, "revoke", "anna_phone") == 0
    assert "revoked" in capsys.readouterr().out
    web(tmp_path, "list")
    assert [("revoked 2" in line) for line in capsys.readouterr().out.splitlines()] == [True, False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--identity", "anna phone", "--hub-url", ORIGIN], "not 1-30 characters"),
        (["add", "--identity", "anna_phone", "--hub-url", "http://desk.local"], "must be https://"),
        (["add", "--identity", "anna_phone"], "--data-dir needs --hub-url"),
        (["revoke", "nobody"], "no phone 'nobody'"),
    ],
)
async def test_bad_input_is_one_line_and_changes_nothing(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert web(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    storage = Storage(tmp_path)
    try:
        assert await PhoneBook(storage).phones() == [] and await storage.list_keys() == []
    finally:
        storage.close()


async def test_add_on_a_desk_whose_hub_is_embedded_reads_its_env_file(tmp_path: Path, capsys) -> None:
    desk = install_desk(tmp_path)
    assert main(["web", "add", "--identity", "anna_phone", "--env-file", str(desk), "--no-qr"]) == 0
    (link,) = re.findall(r"https://\S+", capsys.readouterr().out)
    assert link.startswith("https://127.0.0.1:0/desk/pair#code=")  # the env file's listen address and port
    storage = Storage(tmp_path / "hub")
    try:
        assert [phone.identity for phone in await PhoneBook(storage).phones()] == ["anna_phone"]
    finally:
        storage.close()
    door = tmp_path / "door.env"
    door.write_text("".join(f"{name}={value}\n" for name, value in REQUIRED.items()))
    door.chmod(0o600)
    assert main(["web", "add", "--identity", "ben_phone", "--env-file", str(door)]) == 2
    assert "this unit runs no hub" in capsys.readouterr().err


def test_the_hubs_pairing_limits_are_flags_with_the_hubs_defaults(tmp_path: Path, monkeypatch) -> None:
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))
    argv = ["hub", "--data-dir", str(tmp_path), "--pairing-max-bad-codes", "2", "--desk-token-seconds", "120"]
    assert main(argv) == 0
    (config,) = started
    defaults = HubConfig(data_dir=tmp_path)
    assert (config.pairing_max_bad_codes, config.desk_token_seconds) == (2, 120)
    assert config.pairing_bad_code_window == defaults.pairing_bad_code_window
    for limit in PAIRING:  # --help tells the defaults the hub uses
        assert limit.help.endswith(f"(default {getattr(defaults, limit.name):g})"), limit.name


def test_the_embedded_hub_takes_the_pairing_limits_from_the_env_file(tmp_path: Path) -> None:
    desk = install_desk(tmp_path)
    desk.write_text(desk.read_text() + "INTERCOM_HUB_PAIRING_MAX_BAD_CODES=2\nINTERCOM_HUB_DOORS=front,back\n")
    settings, _ = load_settings(desk)
    hub = EmbeddedHub(settings)
    try:
        assert (hub.config.pairing_max_bad_codes, hub.config.doors) == (2, ("front", "back"))
        assert hub.config.desk_token_seconds == HubConfig(data_dir=tmp_path).desk_token_seconds
    finally:
        hub.socket.close()
