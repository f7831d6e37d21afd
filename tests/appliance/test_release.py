"""deploy/release.sh, for real: releases side by side, the switch, the health check and the rollback.

Every release here is a real virtual environment, built by the script from a wheel of a stand-in
``intercom`` package: its ``intercom config check`` accepts or refuses the settings, and its
``intercom appliance`` prints the states systemd would show once it has started it, as this file's
behaviour book says for each version. A fake ``systemctl`` first on PATH loads the unit file on
``daemon-reload``, runs its ExecStart on ``restart`` (so a rollback that left the wrong unit file or
release in place shows) and answers ``show`` from those states at once, one a call. Building a
release takes a few seconds (the virtual environment's own pip), so the states the tests start from
are built once, in order, and copied back before each test to the same place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PYTHON = Path("/usr/bin/python3")  # what the script makes the virtual environments with

pytestmark = pytest.mark.skipif(not PYTHON.exists(), reason="needs /usr/bin/python3, as on Debian")

HEALTHY = {"ActiveState": "active", "SubState": "running", "NRestarts": 0, "StatusText": "door door: connecting"}

STAND_IN = '''\
import json, os, sys
from importlib.metadata import version

def main():
    """What the test's behaviour book says this version does."""
    book = json.loads(open(os.environ["FAKE_INTERCOM"]).read())
    does = {"refuses": False, "states": [HEALTHY], "knows": ["--env-file", "--wait-for-settings"]}
    does.update(book.get(version("intercom"), {}))
    args = sys.argv[1:]
    if args[:2] == ["config", "check"]:
        if does["refuses"]:
            print("intercom config: INTERCOM_HUB_URL: not a ws:// or wss:// address", file=sys.stderr)
            return 2
        print(f"# {args[-1]}: valid")
        return 0
    if args[:1] == ["appliance"]:
        unknown = [arg for arg in args if arg.startswith("--") and arg not in does["knows"]]
        if unknown:
            print(f"intercom: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
            return 2
        for state in does["states"]:
            print(json.dumps(state))
        return 0
    return 2
'''

# systemd as far as release.sh sees it. `restart` runs ExecStart and takes the states it prints;
# the first is the one `restart` returns on, and `show` answers with each in turn (the last stays).
FAKE_SYSTEMCTL = """\
import json, os, re, shlex, subprocess, sys
from pathlib import Path

FAILED = {"ActiveState": "failed", "SubState": "failed", "NRestarts": 0, "StatusText": ""}
book = Path(os.environ["FAKE_SYSTEMD"])
unit = Path(os.environ["FAKE_SYSTEMD_UNIT"])
state = json.loads(book.read_text()) if book.exists() else {"loaded": None, "states": [], "calls": []}
args = sys.argv[1:]
state["calls"].append(shlex.join(args))
code = 0
now = state["states"][0] if state["states"] else {"ActiveState": "inactive", "SubState": "dead"}
if args == ["daemon-reload"]:
    state["loaded"] = unit.read_text()
elif args == ["restart", "intercom.service"]:
    state["loaded"] = state["loaded"] or unit.read_text()  # a unit systemd never loaded: read now
    command = re.search(r"^ExecStart=(.+)$", state["loaded"], re.MULTILINE)[1]
    try:
        run = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
    except OSError:
        run = subprocess.CompletedProcess(command, 203, "", "")
    state["ran"] = command
    state["states"] = [json.loads(line) for line in run.stdout.splitlines()] if run.returncode == 0 else [FAILED]
    # A start that never ends: the `timeout` around this would end it, with its status.
    code = {"active": 0, "activating": 124}.get(state["states"][0]["ActiveState"], 1)
elif args[:1] == ["show"] and args[-1] == "intercom.service":
    for name in sorted(args[2:-1:2]):  # in an order of its own, as systemctl does
        print(f"{name}={now.get(name, '')}")
    state["states"][1:] and state["states"].pop(0)
elif args == ["is-active", "--quiet", "intercom.service"]:
    code = 0 if now["ActiveState"] == "active" else 3
else:
    code = 64
book.with_suffix(".new").write_text(json.dumps(state))
os.replace(book.with_suffix(".new"), book)  # a new file: History.restore links the old one
sys.exit(code)
"""


def stand_in_wheel(directory: Path, version: str, *, built: tuple[int, ...] = (2024, 1, 1, 0, 0, 0)) -> Path:
    """A wheel of the stand-in package (``built``: the time stamped on its files)."""
    info = f"intercom-{version}.dist-info"
    files = {
        "intercom/__init__.py": "",
        "intercom/cli.py": f"HEALTHY = {HEALTHY!r}\n{STAND_IN}",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: intercom\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nintercom = intercom.cli:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"intercom-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, built), text)
    return wheel


@dataclass
class Unit:
    """A unit's files under one directory, the way deploy/install.sh lays them out under /."""

    root: Path

    @property
    def prefix(self) -> Path:
        return self.root / "opt/intercom"

    @property
    def env_file(self) -> Path:
        return self.root / "etc/intercom/intercom.env"

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system/intercom.service"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    def set_up(self) -> None:
        bin_dir = self.root / "bin"
        bin_dir.mkdir(parents=True)
        systemctl = bin_dir / "systemctl"
        systemctl.write_text(f"#!{sys.executable}\n{FAKE_SYSTEMCTL}")
        systemctl.chmod(0o755)
        self.env_file.parent.mkdir(parents=True)
        self.env_file.write_text("INTERCOM_ROLE=door\nINTERCOM_IDENTITY=door\n")
        self.env_file.chmod(0o640)
        self.behave({})

    def service(self, *, flag: str = "", old_layout: bool = False) -> Path:
        """deploy/intercom.service with this unit's paths (and a flag for appliance)."""
        text = (DEPLOY / "intercom.service").read_text()
        if old_layout:
            text = text.replace("/opt/intercom/current/bin/", "/opt/intercom/bin/")
        text = text.replace("/opt/intercom", str(self.prefix)).replace("/etc/intercom", str(self.env_file.parent))
        path = self.root / f"intercom{flag}{'-old' if old_layout else ''}.service"
        if not path.exists():
            path.write_text(text.replace(" --env-file", f"{flag and ' ' + flag} --env-file"))
        return path

    def behave(self, book: dict[str, dict[str, object]]) -> None:
        """What each version of the stand-in does, by version ("0.2.0": {"refuses": True})."""
        (self.root / "behaviour.new").write_text(json.dumps(book))
        (self.root / "behaviour.new").replace(self.root / "behaviour.json")

    def release(
        self, wheel: Path, *options: str, service: Path | None = None, systemd: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["bash", str(DEPLOY / "release.sh"), *(["--systemd"] if systemd else [])]
        command += ["--prefix", str(self.prefix), "--wheel", str(wheel), "--wheelhouse", str(wheel.parent)]
        command += ["--env-file", str(self.env_file), "--unit-file", str(service or self.service())]
        command += ["--unit", str(self.unit), "--user", pwd.getpwuid(os.getuid()).pw_name]
        command += ["--health-timeout", "5", "--settle", "0", "--poll", "0", *options]
        env = {
            **os.environ,
            "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
            "FAKE_SYSTEMD": str(self.root / "systemd.json"),
            "FAKE_SYSTEMD_UNIT": str(self.unit),
            "FAKE_INTERCOM": str(self.root / "behaviour.json"),
        }
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    def link(self, name: str) -> str | None:
        """The release current or previous points to."""
        path = self.prefix / name
        return os.readlink(path).removeprefix("releases/") if path.is_symlink() else None

    def releases(self) -> set[str]:
        return {path.name for path in (self.prefix / "releases").iterdir()}

    @property
    def systemd(self) -> dict:
        path = self.root / "systemd.json"
        return json.loads(path.read_text()) if path.exists() else {"calls": [], "states": []}

    def calls(self, since: int = 0) -> list[str]:
        return self.systemd["calls"][since:]

    def running(self) -> str:
        """What systemd last started (the ExecStart of the unit file it had loaded)."""
        return self.systemd["ran"]


SHOW = "show -p ActiveState -p SubState -p NRestarts -p StatusText intercom.service"
RESTART = "restart intercom.service"


def settings_of(unit: Unit) -> tuple[bytes, int]:
    return unit.env_file.read_bytes(), unit.env_file.stat().st_mtime_ns


@dataclass
class History:
    """A unit's files after each step, copied aside; a test puts a step's copy back in the unit's place
    (the releases' scripts name their python by path) and goes on from there. The copy put back is
    made of hard links, a few seconds faster, since nothing here writes into a file it did not make:
    the script and pip make new ones, and the fakes replace theirs."""

    root: Path
    copies: dict[str, Path]
    results: dict[str, subprocess.CompletedProcess[str]]

    def restore(self, step: str) -> Unit:
        shutil.rmtree(self.root)
        subprocess.run(["cp", "-al", self.copies[step], self.root], check=True, timeout=60)
        return Unit(self.root)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """The first install of 0.1.0, the upgrade to 0.2.0, and back to 0.1.0 by installing its wheel again."""
    unit = Unit(tmp_path_factory.mktemp("unit"))
    unit.set_up()
    steps = History(unit.root, {}, {})
    for step, version in [("first", "0.1.0"), ("upgrade", "0.2.0"), ("back", "0.1.0")]:
        steps.results[step] = unit.release(stand_in_wheel(unit.wheels / version, version))
        assert steps.results[step].returncode == 0, steps.results[step].stderr
        steps.copies[step] = tmp_path_factory.mktemp(step) / "unit"
        shutil.copytree(unit.root, steps.copies[step], symlinks=True)
    return steps


def test_a_first_install_builds_a_release_switches_to_it_and_starts_it(history):
    unit = history.restore("first")
    (first,) = unit.releases()
    assert first.startswith("0.1.0-") and unit.link("current") == first and unit.link("previous") is None
    assert (unit.prefix / "current/bin/intercom").exists() and unit.unit.read_text() == unit.service().read_text()
    assert unit.calls() == ["daemon-reload", RESTART, SHOW]
    assert (
        unit.running() == f"{unit.prefix}/current/bin/intercom appliance --env-file {unit.env_file} --wait-for-settings"
    )
    lines = history.results["first"].stdout.splitlines()
    assert (
        lines[0]
        == f"install: building the release {first} in {unit.prefix}/releases/{first} (pip; a few minutes on a Pi)"
    )
    assert lines[1:] == [
        f"install: built the release {first} (intercom 0.1.0) in {unit.prefix}/releases/{first}",
        f"install: installed {unit.unit}",
        f"install: switched {unit.prefix}/current to {first}",
        'install: restarted intercom.service: active for 0 s, "door door: connecting"',
    ]


def test_an_upgrade_switches_restarts_and_keeps_the_old_release(history):
    first = history.restore("first").link("current")
    unit = history.restore("upgrade")
    new = unit.link("current")
    assert new.startswith("0.2.0-") and unit.link("previous") == first and unit.releases() == {first, new}
    assert unit.calls() == ["daemon-reload", RESTART, SHOW, RESTART, SHOW]  # the unit file did not change
    assert history.results["upgrade"].stdout.splitlines()[2:] == [
        f"install: switched {unit.prefix}/current to {new} (from {first})",
        'install: restarted intercom.service: active for 0 s, "door door: connecting"',
    ]


def test_installing_a_kept_release_again_switches_without_building(history):
    unit = history.restore("back")
    assert unit.link("current").startswith("0.1.0-") and unit.link("previous").startswith("0.2.0-")
    assert "building" not in history.results["back"].stdout and len(unit.releases()) == 2


def test_the_same_package_again_changes_nothing(history):
    """Even from a wheel built again (its files stamped with another time: the wheel's bytes differ)."""
    unit = history.restore("back")
    before = unit.releases(), unit.link("current"), unit.link("previous")
    calls = len(unit.calls())
    result = unit.release(stand_in_wheel(unit.root / "again", "0.1.0", built=(2025, 6, 1, 12, 0, 0)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (unit.releases(), unit.link("current"), unit.link("previous")) == before
    assert unit.calls(calls) == ["is-active --quiet intercom.service"]


FAILED = {"ActiveState": "failed", "SubState": "failed", "NRestarts": 0, "StatusText": ""}
STARTING = {"ActiveState": "activating", "SubState": "start", "NRestarts": 0, "StatusText": ""}
STOPPING = {**HEALTHY, "ActiveState": "deactivating", "SubState": "stop-sigterm"}
REFUSED = {**HEALTHY, "StatusText": "door door: error 403 not on the hub's list; trying again in 60 s"}


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ([FAILED], "it did not start: failed/failed"),
        ([STARTING], "not active after 5 s: activating/start"),
        ([HEALTHY, STOPPING], 'it stopped within 3 s of starting: deactivating/stop-sigterm, "door door: connecting"'),
        (
            [HEALTHY, HEALTHY, {**HEALTHY, "NRestarts": 1}],
            'systemd restarted it within 3 s of starting, "door door: connecting"',
        ),
        ([HEALTHY, REFUSED], f"its status: {REFUSED['StatusText']}"),
    ],
    ids=["fails-to-start", "never-ready", "stops", "restarts", "hub-refuses"],
)
def test_a_release_that_fails_its_health_check_is_rolled_back(history, states, reason):
    """Within the settle time: each state is one poll, and the fake answers at once."""
    unit = history.restore("back")
    old, new = unit.link("current"), unit.link("previous")
    unit.behave({"0.2.0": {"states": states}})
    settings = settings_of(unit)
    calls = len(unit.calls())
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"), "--settle", "3")
    assert result.returncode == 1
    assert result.stderr == f"install: the new version failed its health check ({reason}); rolled back to {old}\n"
    assert result.stdout == f"install: switched {unit.prefix}/current to {new} (from {old})\n"
    assert (unit.link("current"), unit.link("previous")) == (old, new)
    assert unit.calls(calls)[0] == RESTART and unit.calls(calls).count(RESTART) == 2
    assert unit.systemd["states"] == [HEALTHY] and settings_of(unit) == settings


def test_a_failed_upgrade_brings_back_the_old_release_and_unit_file(history):
    """The new unit file passes appliance an option only the new version knows: the old version would
    not start with it."""
    unit = history.restore("first")
    old = unit.link("current")
    knows = ["--env-file", "--wait-for-settings", "--new-in-0.2"]
    unit.behave({"0.2.0": {"knows": knows, "states": [{**HEALTHY, "NRestarts": 2}, {**HEALTHY, "NRestarts": 3}]}})
    old_unit = unit.unit.read_text()
    settings = settings_of(unit)
    calls = len(unit.calls())
    wheel = stand_in_wheel(unit.wheels / "0.2.0", "0.2.0")
    result = unit.release(wheel, "--settle", "3", service=unit.service(flag="--new-in-0.2"))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        'install: the new version failed its health check (systemd restarted it within 3 s of starting, "door door:'
        f' connecting"); rolled back to {old}\n'
    )
    new = result.stdout.split("install: built the release ")[1].split()[0]
    assert result.stdout.splitlines()[-1] == f"install: removed the release {new}"
    assert unit.releases() == {old} and unit.link("current") == old and unit.link("previous") is None
    assert unit.unit.read_text() == old_unit and "--new-in-0.2" not in unit.running()
    assert unit.calls(calls) == ["daemon-reload", RESTART, SHOW, SHOW, "daemon-reload", RESTART, SHOW]
    assert unit.systemd["states"] == [HEALTHY] and settings_of(unit) == settings


def test_a_version_that_refuses_the_settings_does_not_go_live(history):
    unit = history.restore("back")
    old = unit.link("current")
    unit.behave({"0.2.0": {"refuses": True}})
    calls = len(unit.calls())
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"install: intercom 0.2.0 refuses the settings in {unit.env_file} that {old} accepts (intercom config:"
        f" INTERCOM_HUB_URL: not a ws:// or wss:// address); {old} stays current\n"
    )
    assert unit.link("current") == old and unit.calls(calls) == []


def test_when_no_version_accepts_the_settings_it_switches_without_a_restart(history):
    """A unit not set up yet (an image's, say): the new release goes in, and nothing starts."""
    unit = history.restore("back")
    unit.behave({"0.1.0": {"refuses": True}, "0.2.0": {"refuses": True}})
    calls = len(unit.calls())
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"))
    assert result.returncode == 0, result.stderr
    assert unit.link("current").startswith("0.2.0-") and unit.calls(calls) == []


def test_without_systemd_it_switches_and_starts_nothing(history):
    """An SD-card image's chroot: no --systemd."""
    unit = history.restore("back")
    calls = len(unit.calls())
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"), systemd=False)
    assert result.returncode == 0 and unit.link("current").startswith("0.2.0-")
    assert unit.calls(calls) == []


def test_only_the_current_and_the_previous_release_are_kept(history):
    unit = history.restore("back")
    current, previous = unit.link("current"), unit.link("previous")
    result = unit.release(stand_in_wheel(unit.wheels / "0.3.0", "0.3.0"))
    assert result.returncode == 0, result.stderr
    assert unit.link("previous") == current and unit.link("current").startswith("0.3.0-")
    assert unit.releases() == {current, unit.link("current")}
    assert result.stdout.splitlines()[-1] == f"install: removed the release {previous}"


def test_a_unit_of_the_layout_before_releases_moves_to_releases(tmp_path):
    """The old layout: one virtual environment at the prefix, and a unit file that runs it. It stays the
    previous release until the next upgrade, and goes then."""
    unit = Unit(tmp_path / "unit")
    unit.set_up()
    wheel = stand_in_wheel(unit.wheels / "0.1.0", "0.1.0")
    subprocess.run(
        [PYTHON, "-m", "venv", "--system-site-packages", "--without-pip", unit.prefix], check=True, timeout=60
    )
    pip = [sys.executable, "-m", "pip", "--python", unit.prefix / "bin/python"]  # as good as its own pip, faster
    subprocess.run([*pip, "install", "--quiet", "--no-index", wheel], check=True, timeout=120)
    (unit.prefix / ".intercom-source").write_text("0123456789abcdef\n")
    unit.unit.parent.mkdir(parents=True)
    shutil.copy(unit.service(old_layout=True), unit.unit)
    unit.behave({"0.2.0": {"states": [{**HEALTHY, "StatusText": "door door: error 400 bad request"}]}})
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"install: made the virtual environment at {unit.prefix} the release legacy")
    assert result.stderr.endswith("(its status: door door: error 400 bad request); rolled back to legacy\n")
    assert unit.link("current") == "legacy" and unit.releases() == {"legacy"}
    assert (unit.prefix / "releases/legacy/bin").resolve() == unit.prefix / "bin"
    assert unit.unit.read_text() == unit.service(old_layout=True).read_text()
    assert unit.running() == f"{unit.prefix}/bin/intercom appliance --env-file {unit.env_file} --wait-for-settings"

    unit.behave({})
    result = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"))
    assert result.returncode == 0, result.stderr
    assert unit.link("previous") == "legacy" and (unit.prefix / "bin/intercom").exists()
    assert (
        unit.running() == f"{unit.prefix}/current/bin/intercom appliance --env-file {unit.env_file} --wait-for-settings"
    )

    result = unit.release(stand_in_wheel(unit.wheels / "0.3.0", "0.3.0"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "install: removed the release legacy"
    assert sorted(path.name for path in unit.prefix.iterdir()) == ["current", "previous", "releases"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wheel", "/nonexistent/intercom-1-py3-none-any.whl"], "no wheel /nonexistent/intercom-1-py3-none-any.whl"),
        (["--settle", "soon"], "--settle takes seconds, not 'soon'"),
        (["--source", "."], "give one of --wheel and --source"),
        (["--prefix"], "--prefix needs a value"),
        (["--constraints", "/nonexistent/constraints.txt"], "no constraints file /nonexistent/constraints.txt"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, args, message):
    wheel = stand_in_wheel(tmp_path, "0.1.0")
    command = ["bash", str(DEPLOY / "release.sh"), "--prefix", str(tmp_path / "p"), "--wheel", str(wheel)]
    command += ["--env-file", "e", "--unit-file", str(DEPLOY / "intercom.service"), "--unit", "u", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"install: {message}\n")
    assert not (tmp_path / "p").exists()


def test_pip_installs_within_the_constraints_file(tmp_path):
    """deploy/install.sh hands release.sh the checkout's deploy/constraints.txt: pip keeps to it, and a
    release outside it is not built, nor made current."""
    unit = Unit(tmp_path / "unit")
    unit.set_up()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("intercom==0.1.0\n")
    refused = unit.release(stand_in_wheel(unit.wheels / "0.2.0", "0.2.0"), "--constraints", str(constraints))
    assert refused.returncode == 1
    assert "pip could not install intercom 0.2.0" in refused.stderr
    assert unit.link("current") is None and unit.releases() == set()
