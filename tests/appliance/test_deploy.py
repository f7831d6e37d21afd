"""deploy/install.sh and deploy/intercom.service agree on where things go, and the script refuses bad
arguments before it touches anything. (It was run for real on a throwaway Debian 12; running it
here would install on the machine running the tests.)"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from intercom.appliance.settings import PREFIX, Settings
from intercom.appliance.waiting import SETTINGS_CHANGED

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPT = DEPLOY / "install.sh"
CHECKOUT_VERSION = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["version"]


def script_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", SCRIPT.read_text(), re.MULTILINE)
    assert match, name
    return re.sub(r"\$(\w+)", lambda variable: script_value(variable[1]), match[1])


def unit_value(key: str) -> str:
    match = re.search(rf"^{key}=(.+)$", (DEPLOY / "intercom.service").read_text(), re.MULTILINE)
    assert match, key
    return match[1]


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("script", ["install.sh", "release.sh"])
def test_the_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, timeout=30).returncode == 0


SHELL_SCRIPTS = sorted([*DEPLOY.glob("*.sh"), *DEPLOY.glob("image/*.sh"), DEPLOY.parent / "scripts/setup.sh"])


def test_the_scripts_pass_shellcheck():
    """scripts/setup.sh installs shellcheck for the tests."""
    result = subprocess.run(["shellcheck", *SHELL_SCRIPTS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert {path.name for path in SHELL_SCRIPTS} >= {"install.sh", "release.sh", "build.sh", "firstboot.sh"}


def test_the_service_runs_what_the_script_installs_where_it_installs_it():
    assert (
        unit_value("ExecStart")
        == f"{script_value('VENV')}/bin/intercom appliance --env-file {script_value('ENV_FILE')} --wait-for-settings"
    )
    assert unit_value("WorkingDirectory") == script_value("DATA_DIR") == f"/var/lib/{unit_value('StateDirectory')}"
    firstboot = (DEPLOY / "image/firstboot.sh").read_text()  # checks the env file with that same command
    assert f"INTERCOM_BIN=${{INTERCOM_BIN:-{script_value('VENV')}/bin/intercom}}" in firstboot
    assert unit_value("User") == "intercom" and set(unit_value("SupplementaryGroups").split()) == {"gpio", "audio"}


def test_the_example_marks_exactly_the_required_settings():
    """The script fills in role and identity, and lists the "(required)" variables still empty."""
    example = (DEPLOY / "intercom.env.example").read_text()
    marked = set(re.findall(r"\(required\)\n(\w+)=\n", example))
    required = {f"{PREFIX}{name.upper()}" for name, field in Settings.model_fields.items() if field.is_required()}
    assert marked == required
    assert {"INTERCOM_ROLE", "INTERCOM_IDENTITY"} <= marked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "porch"], "--role must be door or desk, not 'porch'"),
        (["--identity", "front door"], "--identity must be 1-30 of A-Z, a-z, 0-9 and _, not 'front door'"),
        (["--source", "/"], "/ is not an intercom checkout"),
        (["--source"], "--source needs a directory"),
        (["--reboot"], "unknown option --reboot"),
        (["--wheel", "/nonexistent.whl"], "no wheel /nonexistent.whl"),
        (["--wheel", "{tmp}/intercom_tools-1.0-py3-none-any.whl"], "{tmp}/intercom_tools-1.0-py3-none-any.whl is not"),
        (["--wheel", "{tmp}/intercom-9.9-py3-none-any.whl"], "the wheel is intercom 9.9 and {checkout} is {version}"),
        (["--wheelhouse", "/nonexistent"], "--wheelhouse /nonexistent is not a directory"),
        (["--health-timeout", "1m"], "--health-timeout takes seconds, not '1m'"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(args, message, tmp_path):
    """Before anything is touched: these run as root here."""
    for name in ["intercom_tools-1.0-py3-none-any.whl", "intercom-9.9-py3-none-any.whl"]:
        (tmp_path / name).write_bytes(b"")
    names = {"tmp": tmp_path, "checkout": DEPLOY.parent, "version": CHECKOUT_VERSION}
    args = [arg.format(**names) for arg in args]
    message = message.format(**names)
    result = install("--no-start", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"install: {message}") and result.stderr.count("\n") == 1


def test_help_says_how_to_run_it():
    result = install("--help")
    assert result.returncode == 0 and "sudo deploy/install.sh [--source DIR]" in result.stdout
    assert "--wheel FILE" in result.stdout and "--health-timeout S" in result.stdout


def test_the_service_restarts_when_the_waiting_unit_exits_for_new_settings():
    assert unit_value("Restart") == "always"
    assert unit_value("SuccessExitStatus") == str(SETTINGS_CHANGED)  # planned: not logged as a failure
