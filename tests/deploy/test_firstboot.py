"""``deploy/image/firstboot.sh`` on a root filesystem in a directory: what the user drops on the boot
partition is installed with safe permissions and deleted from there, and what cannot work is said."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .firstboot_tree import AUDIO_GID, GID, GPIO_GID, SCRIPT, UID, Tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs files owned by another user: needs root")

VALID_ENV = {
    "INTERCOM_ROLE": "door",
    "INTERCOM_IDENTITY": "front_door",
    "INTERCOM_HUB_URL": "ws://desk.local:8443",
    "INTERCOM_ACCESS_KEY_ID": "511f5c63d6db9cc19aa3274d",
    "INTERCOM_ACCESS_KEY": "LU-secret-value",
    "INTERCOM_UNLOCK_CODE": "4711#",
}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbF1ERwZ0uDtWbg0VMA8ow9qDzBQBjXnUyJ6xqh3Ajh installer@laptop"


def env_text(newline: str = "\n", **values: str) -> str:
    return "".join(f"{name}={value}{newline}" for name, value in {**VALID_ENV, **values}.items())


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)


@pytest.fixture
def tree() -> Iterator[Tree]:
    """Outside pytest's own temporary directory, which only root may enter: `intercom config check`
    runs as the intercom user, and has to reach the env file as the unit would."""
    root = Path(tempfile.mkdtemp(prefix="firstboot-"))
    root.chmod(0o755)
    try:
        yield Tree(root)
    finally:
        shutil.rmtree(root)


def test_the_script_is_valid_bash():  # and shellcheck-clean: tests/appliance/test_deploy.py checks every script
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, timeout=10).returncode == 0


# -- intercom.env ---------------------------------------------------------------------------------


def test_an_env_file_from_windows_is_installed_for_the_service_user_only_and_checked_as_it(tree):
    tree.drop("intercom.env", env_text("\r\n"))
    run = tree.run()
    installed = tree.path("etc/intercom/intercom.env")
    assert owner_and_mode(installed) == (UID, GID, 0o600)
    assert installed.read_text() == env_text()
    assert not (tree.boot / "intercom.env").exists()
    assert run.line("intercom.env: installed as /etc/intercom/intercom.env (600, owner intercom)").endswith(
        "(Windows line endings made LF)"
    )
    assert run.line("intercom.env: valid") == "intercom.env: valid (intercom config check): door unit 'front_door'"
    assert tree.checked_as() == (UID, {GID, GPIO_GID, AUDIO_GID})  # as the unit reads it
    assert run.returncode == 0 and run.lines[-1] == "done", run.lines
    assert not tree.path("etc/intercom/intercom.env.previous").exists()


def test_an_invalid_env_file_is_installed_and_the_log_names_the_variable(tree):
    tree.drop("intercom.env", env_text(INTERCOM_RELAY_PULSE_S="forever"))
    run = tree.run()
    assert tree.path("etc/intercom/intercom.env").read_text() == env_text(INTERCOM_RELAY_PULSE_S="forever")
    assert not (tree.boot / "intercom.env").exists()
    line = run.line("intercom.env: installed, but not valid: ")
    assert line.startswith("intercom.env: installed, but not valid: INTERCOM_RELAY_PULSE_S: Input should be a valid")
    assert "forever" in line and "status light blinking fast" in line
    assert run.returncode == 1 and run.lines[-1] == "done, 1 problem(s): see above"


def test_without_an_env_file_the_installed_one_is_left_alone(tree):
    existing = tree.write("etc/intercom/intercom.env", env_text(), mode=0o640)
    os.chown(existing, 0, GID)
    run = tree.run()
    assert owner_and_mode(existing) == (0, GID, 0o640) and existing.read_text() == env_text()
    assert "intercom.env: none on the boot partition, /etc/intercom/intercom.env left as it is" in run.lines
    assert not tree.path("tmp/checked-as").exists()  # nothing to check
    assert run.returncode == 0
    assert not (tree.boot / "intercom-firstboot.txt").exists()  # nothing found: the card is not written


def test_a_new_env_file_keeps_the_one_before_as_previous(tree):
    existing = tree.write("etc/intercom/intercom.env", env_text(INTERCOM_IDENTITY="old"), mode=0o640)
    os.chown(existing, 0, GID)
    tree.drop("intercom.env", env_text(INTERCOM_IDENTITY="new"))
    run = tree.run()
    previous = tree.path("etc/intercom/intercom.env.previous")
    assert previous.read_text() == env_text(INTERCOM_IDENTITY="old")
    assert owner_and_mode(previous) == (0, GID, 0o600)
    assert tree.path("etc/intercom/intercom.env").read_text() == env_text(INTERCOM_IDENTITY="new")
    assert run.line("intercom.env: installed").endswith("; the one before is /etc/intercom/intercom.env.previous")
    assert run.line("intercom.env: valid").endswith("door unit 'new'")


def test_the_boot_partition_gets_a_report_when_it_had_files(tree):
    tree.drop("intercom.env", env_text(INTERCOM_ROLE="porch"))
    run = tree.run()
    report = (tree.boot / "intercom-firstboot.txt").read_bytes().decode()  # CRLF: Notepad reads it too
    assert report.startswith("intercom-firstboot, ")
    assert run.line("intercom.env: installed, but not valid: INTERCOM_ROLE") + "\r\n" in report
    assert "LU-secret-value" not in report


def test_a_file_saved_with_txt_is_pointed_out_and_left(tree):
    tree.drop("intercom.env.txt", env_text())
    run = tree.run()
    assert (tree.boot / "intercom.env.txt").exists() and not tree.path("etc/intercom/intercom.env").exists()
    assert "intercom.env: found intercom.env.txt instead, left as it is: rename it to intercom.env" in run.line(
        "intercom.env: found"
    )
    assert run.returncode == 1


# -- authorized_keys ------------------------------------------------------------------------------


def test_authorized_keys_turn_on_ssh_with_keys_only(tree):
    tree.drop("authorized_keys", f"# the installer's laptop\r\n{KEY}\r\n")
    run = tree.run()
    ssh_dir = tree.path("root/.ssh")
    assert owner_and_mode(ssh_dir) == (0, 0, 0o700)
    assert owner_and_mode(ssh_dir / "authorized_keys") == (0, 0, 0o600)
    assert (ssh_dir / "authorized_keys").read_text() == f"# the installer's laptop\n{KEY}\n"
    assert not (tree.boot / "authorized_keys").exists()
    drop_in = tree.path("etc/ssh/sshd_config.d/intercom.conf")
    assert owner_and_mode(drop_in) == (0, 0, 0o644)
    settings = [line for line in drop_in.read_text().splitlines() if not line.startswith("#")]
    assert settings == [
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
    ]
    assert run.line("authorized_keys: installed").startswith(
        "authorized_keys: installed as /root/.ssh/authorized_keys (1 key(s))"
    )
    host_keys = sorted(path.name for path in tree.path("etc/ssh").glob("ssh_host_*_key"))
    assert host_keys == ["ssh_host_ecdsa_key", "ssh_host_ed25519_key", "ssh_host_rsa_key"]  # this card's own
    assert "not running under systemd: skipped systemctl enable --now --no-block ssh.service" in run.lines
    assert run.returncode == 0


def test_authorized_keys_without_a_key_are_refused(tree):
    tree.drop("authorized_keys", "# put your public key here\n\n")
    run = tree.run()
    assert not tree.path("root/.ssh/authorized_keys").exists() and not tree.path("etc/ssh").exists()
    assert not (tree.boot / "authorized_keys").exists()
    assert run.line("authorized_keys: refused and deleted: it holds no key").startswith("authorized_keys: refused")
    assert run.returncode == 1


# -- wifi -----------------------------------------------------------------------------------------

WPA_HEADER = "# From wifi.conf on the boot partition (intercom-firstboot).\nctrl_interface=/run/wpa_supplicant\n"


@pytest.mark.parametrize(
    ("wifi_conf", "wpa_conf"),
    [
        (
            'ssid = My "home" net\r\npsk=pa"ss #word\r\ncountry=nl\r\n',
            WPA_HEADER + 'country=NL\nnetwork={\n\tssid="My "home" net"\n\tscan_ssid=1\n\tpsk="pa"ss #word"\n}\n',
        ),
        (
            '# the café\'s\nSSID="Café 5G"\n',
            WPA_HEADER + 'network={\n\tssid="Café 5G"\n\tscan_ssid=1\n\tkey_mgmt=NONE\n}\n',
        ),
        (
            f"ssid=lab\npsk={'ab' * 32}",
            WPA_HEADER + f'network={{\n\tssid="lab"\n\tscan_ssid=1\n\tpsk={"ab" * 32}\n}}\n',
        ),
    ],
    ids=["quoted", "open", "raw-key"],
)
def test_wifi_conf_becomes_a_private_wpa_supplicant_conf_and_wlan0_uses_dhcp(tree, wifi_conf, wpa_conf):
    """wpa_supplicant reads a quoted value up to the line's last quote, and a # inside the quotes is no comment."""
    tree.drop("wifi.conf", wifi_conf)
    run = tree.run()
    wpa = tree.path("etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
    assert wpa.read_text() == wpa_conf
    assert owner_and_mode(wpa) == (0, 0, 0o600)
    assert not (tree.boot / "wifi.conf").exists()
    network = tree.path("etc/systemd/network/30-wlan0.network").read_text()
    assert "[Match]\nName=wlan0\n" in network and "[Network]\nDHCP=yes\n" in network
    assert run.line("wifi.conf (network").endswith(
        "installed as /etc/wpa_supplicant/wpa_supplicant-wlan0.conf (600); "
        "wlan0 by DHCP (/etc/systemd/network/30-wlan0.network)"
    )
    assert (
        "not running under systemd: skipped systemctl enable wpa_supplicant@wlan0.service systemd-networkd.service"
        in run.lines
    )
    assert run.returncode == 0


def test_a_wpa_supplicant_conf_is_taken_as_it_is_and_wins_over_wifi_conf(tree):
    text = 'country=DE\nnetwork={\n\tssid="office"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n}\n'
    tree.drop("wpa_supplicant.conf", text.replace("\n", "\r\n"))
    tree.drop("wifi.conf", "ssid=home\npsk=12345678\n")
    run = tree.run()
    assert tree.path("etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text() == text
    assert not (tree.boot / "wpa_supplicant.conf").exists() and not (tree.boot / "wifi.conf").exists()
    assert "wifi.conf: ignored and deleted: wpa_supplicant.conf is there too, and wins" in run.lines
    assert run.line("wpa_supplicant.conf: installed").startswith("wpa_supplicant.conf: installed as")


@pytest.mark.parametrize(
    ("wifi_conf", "why"),
    [
        ("psk=12345678\ncountry=NL\n", "no ssid= line (wifi.conf takes ssid=, psk= and country=)"),
        ("ssid=\npsk=12345678\n", "no ssid= line"),
        ("ssid=home\npsk=short\n", "the psk must be 8-63 printable ASCII characters, or 64 hex digits"),
        ("ssid=home\ncountry=Netherlands\n", "country must be two letters (ISO 3166), not 'NETHERLANDS'"),
        ("ssid=home\nhome network\n", "line 2 is not name=value"),
        (f"ssid={'x' * 33}\n", "the ssid must be 1-32 bytes"),
    ],
)
def test_a_bad_wifi_conf_is_refused_with_one_line_and_deleted(tree, wifi_conf, why):
    tree.drop("wifi.conf", wifi_conf)
    run = tree.run()
    assert run.line("wifi.conf: refused and deleted: ").startswith(f"wifi.conf: refused and deleted: {why}")
    assert not (tree.boot / "wifi.conf").exists()  # a password does not stay on the card
    assert not tree.path("etc/wpa_supplicant/wpa_supplicant-wlan0.conf").exists()
    assert not tree.path("etc/systemd/network/30-wlan0.network").exists()
    assert "12345678" not in "\n".join(run.lines)
    assert run.returncode == 1


def test_unknown_wifi_settings_are_ignored_with_a_word(tree):
    tree.drop("wifi.conf", "ssid=home\npsk=12345678\nhidden=yes\n")
    run = tree.run()
    assert "wifi.conf: line 3: 'hidden' ignored (it takes ssid, psk and country)" in run.lines
    assert tree.path("etc/wpa_supplicant/wpa_supplicant-wlan0.conf").exists() and run.returncode == 0


# -- hostname -------------------------------------------------------------------------------------


def test_a_hostname_is_set_in_hostname_and_hosts(tree):
    tree.drop("hostname", "\r\n  Front-Door \r\n")
    run = tree.run()
    assert tree.path("etc/hostname").read_text() == "front-door\n"
    assert (
        tree.path("etc/hosts").read_text()
        == "127.0.0.1\tlocalhost\n127.0.1.1\tfront-door\n::1\tlocalhost ip6-localhost\n"
    )
    assert not (tree.boot / "hostname").exists()
    assert "hostname: now front-door (/etc/hostname, /etc/hosts)" in run.lines and run.returncode == 0


def test_hosts_without_a_127_0_1_1_line_gets_one(tree):
    tree.write("etc/hosts", "127.0.0.1\tlocalhost\n")
    tree.drop("hostname", "desk")
    tree.run()
    assert tree.path("etc/hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tdesk\n"


@pytest.mark.parametrize("name", ["-door", "door-", "front_door", "front door", "x" * 64, "tür", ""])
def test_a_bad_hostname_is_refused(tree, name):
    tree.drop("hostname", f"{name}\n")
    run = tree.run()
    assert tree.path("etc/hostname").read_text() == "intercom\n"
    assert "127.0.1.1\tintercom\n" in tree.path("etc/hosts").read_text()
    assert run.line("hostname: refused and deleted: ").endswith("is not 1-63 of a-z, 0-9 and - (not first or last)")
    assert not (tree.boot / "hostname").exists() and run.returncode == 1


# -- the relay's line in config.txt ---------------------------------------------------------------

CUSTOM = "/etc/default/raspi-firmware-custom"
CONFIG_TXT = "boot/firmware/config.txt"


def image_boot_files(tree: Tree) -> tuple[Path, Path]:
    """raspi-firmware-custom as deploy/image/customize-rootfs.sh writes it, and the config.txt
    raspi-firmware makes of it: its own lines, then those."""
    script = (SCRIPT.parent / "customize-rootfs.sh").read_text()
    custom = script.split(f"\"$root{CUSTOM}\" <<'CUSTOM'\n")[1].split("CUSTOM\n")[0]
    generated = "# Do not modify this file!\narm_64bit=1\n[pi4]\ndtoverlay=vc4-kms-v3d\n"
    return tree.write(CUSTOM.lstrip("/"), custom), tree.write(CONFIG_TXT, generated + custom)


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({"INTERCOM_RELAY_PIN": "16", "INTERCOM_RELAY_ACTIVE_LOW": "true"}, "gpio=16=op,dh"),
        ({"INTERCOM_RELAY_PIN": ""}, None),  # no relay: no line
    ],
)
def test_the_relay_line_of_config_txt_follows_the_env_file(tree, settings, line):
    custom, config = image_boot_files(tree)
    assert "[all]\n# The door strike's relay off from power-on" in custom.read_text()  # after any [pi4]
    tree.drop("intercom.env", env_text(**settings))
    run = tree.run()
    for path in (custom, config):
        text = path.read_text()
        assert "gpio=26=op,dl" not in text and (
            line is None or f"off from power-on (intercom-firstboot keeps the next line in step)\n{line}\n" in text
        )
    assert config.read_text().startswith("# Do not modify this file!\narm_64bit=1\n[pi4]\n")
    assert run.line("relay: ") == (
        f"relay: {CUSTOM} /{CONFIG_TXT} now say '{line or 'no relay line'}' (the firmware reads it at the next boot)"
    )
    assert run.returncode == 0, "\n".join(run.lines)


def test_the_relay_line_is_left_alone_when_it_is_right_or_the_file_is_not_the_images(tree):
    custom, config = image_boot_files(tree)
    own = tree.write("boot/firmware/cmdline.txt", "gpio=26=op,dh\n")
    before = {path: (path.read_text(), path.stat().st_mtime_ns) for path in (custom, config, own)}
    tree.drop("intercom.env", env_text(INTERCOM_RELAY_PIN="26"))
    run = tree.run()
    assert {path: (path.read_text(), path.stat().st_mtime_ns) for path in before} == before
    assert not [line for line in run.lines if line.startswith("relay: ")]


def test_a_bad_relay_setting_leaves_the_line_as_it_is_and_says_why(tree):
    custom, config = image_boot_files(tree)
    before = config.read_text()
    tree.drop("intercom.env", env_text(INTERCOM_RELAY_ACTIVE_LOW="sometimes"))
    run = tree.run()
    assert config.read_text() == before and "gpio=26=op,dl" in custom.read_text()
    assert run.line("relay: ") == (
        "relay: the boot line left as it is: INTERCOM_RELAY_ACTIVE_LOW is 'sometimes', not true or false "
        f"(in {tree.root}/etc/intercom/intercom.env): no pin driven"
    )


def test_nothing_on_the_boot_partition_changes_nothing(tree):
    before = sorted(str(path.relative_to(tree.root)) for path in tree.root.rglob("*"))
    run = tree.run()
    assert sorted(str(path.relative_to(tree.root)) for path in tree.root.rglob("*")) == before
    assert run.returncode == 0 and run.lines[-1] == "done"
    assert not tree.path("var/lib/intercom-firstboot").exists()  # a root prefix is never grown
