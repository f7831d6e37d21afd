"""deploy/install.sh and deploy/intercom.service agree on where things go, and the script refuses bad
arguments before it touches anything. (It was run for real on a throwaway Debian 12; running it
here would install on the machine running the tests.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from intercom.appliance.settings import PREFIX, Settings
from intercom.appliance.waiting import SETTINGS_CHANGED

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPT = DEPLOY / "install.sh"


def script_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", SCRIPT.read_text(), re.MULTILINE)
    assert match, name
    return match[1].replace("$ENV_DIR", script_value("ENV_DIR")) if name == "ENV_FILE" else match[1]


def unit_value(key: str) -> str:
    match = re.search(rf"^{key}=(.+)$", (DEPLOY / "intercom.service").read_text(), re.MULTILINE)
    assert match, key
    return match[1]


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_the_service_runs_what_the_script_installs_where_it_installs_it():
    assert (
        unit_value("ExecStart")
        == f"{script_value('VENV')}/bin/intercom appliance --env-file {script_value('ENV_FILE')} --wait-for-settings"
    )
    assert unit_value("WorkingDirectory") == script_value("DATA_DIR") == f"/var/lib/{unit_value('StateDirectory')}"
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
    ],
)
def test_bad_arguments_are_refused_with_one_line(args, message):
    result = install("--no-start", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"install: {message}") and result.stderr.count("\n") == 1


def test_help_says_how_to_run_it():
    result = install("--help")
    assert result.returncode == 0 and "sudo deploy/install.sh [--source DIR]" in result.stdout


def test_the_service_restarts_when_the_waiting_unit_exits_for_new_settings():
    assert unit_value("Restart") == "always"
    assert unit_value("SuccessExitStatus") == str(SETTINGS_CHANGED)  # planned: not logged as a failure
