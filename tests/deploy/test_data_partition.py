"""deploy/image/data-partition.sh splits an installed tree into a read-only root and the unit's data
partition, and assemble.sh --data makes that partition: p3, ext4, INTERCOMDATA. The tree is shaped
like the image's (fstab and cmdline.txt as customize-rootfs.sh and raspi-firmware write them, the
intercom user's data dir); the image is read back without mounting it, as in test_image_assembly.

Owners other than root: these tests run as root, like the build."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .test_image_assembly import ENV, SECTOR, assemble, make_firmware, run, snapshot

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "image" / "data-partition.sh"
UID = GID = 999  # the intercom user
FSTAB = (
    "# The card's two partitions, by the labels deploy/image/assemble.sh gives them.\n"
    "LABEL=RASPIROOT  /               ext4  rw,noatime      0 1\n"
    "LABEL=RASPIFIRM  /boot/firmware  vfat  rw,noatime,umask=077  0 2\n"
)
CMDLINE = "console=tty0 console=ttyS1,115200 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait\n"
MOVED = {  # name on the data partition: where it is bound back
    "intercom": "/var/lib/intercom",
    "etc-intercom": "/etc/intercom",
    "log": "/var/log",
    "systemd": "/var/lib/systemd",
    "private": "/var/lib/private",
    "firstboot": "/var/lib/intercom-firstboot",
}


def split(root: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(root), str(data)], capture_output=True, text=True, timeout=30)


def make_installed_tree(root: Path) -> None:
    """What the build has after deploy/install.sh: the unit's data dir and env file, a journal."""
    make_firmware(root, {"config.txt": b"arm_64bit=1\n", "cmdline.txt": CMDLINE.encode()})
    (root / "etc").mkdir()
    (root / "etc" / "fstab").write_text(FSTAB)
    for directory, mode in (("var/lib/intercom", 0o700), ("etc/intercom", 0o755), ("var/log/journal", 0o2755)):
        (root / directory).mkdir(parents=True)
        (root / directory).chmod(mode)
    (root / "var/lib/systemd/timesync").mkdir(parents=True)
    (root / "var/lib/private").mkdir(mode=0o700)
    (root / "var/lib/dbus").mkdir()
    (root / "var/lib/intercom" / "intercom.sqlite3").write_bytes(b"SQLite format 3\x00")
    env = root / "etc/intercom/intercom.env"
    env.write_text("INTERCOM_ROLE=door\n")
    env.chmod(0o600)
    for path in (root / "var/lib/intercom", root / "var/lib/intercom" / "intercom.sqlite3", env):
        os.chown(path, UID, GID)


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    root, data = tmp_path / "root", tmp_path / "data"
    make_installed_tree(root)
    return root, data


def test_what_the_unit_writes_moves_to_the_data_tree_keeping_owners_modes_and_contents(trees):
    root, data = trees
    result = split(root, data)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in data.iterdir()) == sorted(MOVED)
    database = data / "intercom" / "intercom.sqlite3"
    assert database.read_bytes() == b"SQLite format 3\x00" and (database.stat().st_uid, database.stat().st_gid) == (
        UID,
        GID,
    )
    env = data / "etc-intercom" / "intercom.env"
    assert env.read_text() == "INTERCOM_ROLE=door\n" and env.stat().st_mode & 0o777 == 0o600
    assert (data / "log" / "journal").stat().st_mode & 0o7777 == 0o2755
    assert (data / "systemd" / "timesync").is_dir()
    assert (data / "firstboot").stat().st_mode & 0o777 == 0o700  # none in the tree: made, private
    for name, path in MOVED.items():  # an empty mount point with the moved directory's owner and mode
        point, moved = (root / path.lstrip("/")).stat(), (data / name).stat()
        assert list((root / path.lstrip("/")).iterdir()) == [], path
        assert (point.st_mode, point.st_uid, point.st_gid) == (moved.st_mode, moved.st_uid, moved.st_gid), path


def test_the_root_is_read_only_and_fstab_mounts_the_data_and_binds_it_back(trees):
    root, data = trees
    assert split(root, data).returncode == 0
    lines = [line.split() for line in (root / "etc" / "fstab").read_text().splitlines() if line and line[0] != "#"]
    by_point = {fields[1]: fields for fields in lines}
    assert by_point["/"] == ["LABEL=RASPIROOT", "/", "ext4", "ro,noatime", "0", "1"]
    assert by_point["/boot/firmware"][3] == "rw,noatime,umask=077"
    label, _, fstype, options, _, passno = by_point["/data"]
    assert (label, fstype, passno) == ("LABEL=INTERCOMDATA", "ext4", "2")  # checked at boot, after the root
    assert {"noatime", "nofail", "errors=remount-ro"} <= set(options.split(","))
    for name, path in MOVED.items():
        assert by_point[path] == [f"/data/{name}", path, "none", "bind,nofail", "0", "0"]
    assert lines.index(by_point["/data"]) < min(lines.index(by_point[path]) for path in MOVED.values())
    assert by_point["/tmp"][:3] == ["tmpfs", "/tmp", "tmpfs"] and by_point["/var/tmp"][2] == "tmpfs"
    assert (root / "data").is_dir()
    assert os.readlink(root / "var/lib/dbus/machine-id") == "/etc/machine-id"  # not made at boot: read-only
    cmdline = (root / "boot/firmware/cmdline.txt").read_text().split()
    assert "ro" in cmdline and "rw" not in cmdline and "fsck.repair=yes" in cmdline
    journald = (root / "etc/systemd/journald.conf.d/intercom.conf").read_text()
    assert "Storage=persistent" in journald and re.search(r"^SystemMaxUse=\d+M$", journald, re.M)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("split twice", "mounts /data already: split once"),
        ("a data dir that is not empty", "is not empty"),
        ("no fstab", "fstab is missing: not a root filesystem tree"),
        ("no root line to make read-only", "no 'LABEL=RASPIROOT / ext4 rw,...' line"),
        ("one argument", "usage: data-partition.sh ROOT DATA"),
    ],
)
def test_what_cannot_be_split_is_refused_in_one_line_and_left_as_it_was(trees, case, message):
    root, data = trees
    if case == "split twice":
        assert split(root, data).returncode == 0
        data = data.with_name("data2")
    elif case == "a data dir that is not empty":
        data.mkdir()
        (data / "left-over").write_text("x")
    elif case == "no fstab":
        (root / "etc" / "fstab").unlink()
    elif case == "no root line to make read-only":
        (root / "etc" / "fstab").write_text(FSTAB.replace("LABEL=RASPIROOT", "/dev/sda2"))
    before = snapshot(root)
    args = [str(root)] if case == "one argument" else [str(root), str(data)]
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("data-partition: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert snapshot(root) == before


def test_assemble_makes_the_data_tree_partition_three_ext4_intercomdata(trees, tmp_path):
    root, data = trees
    assert split(root, data).returncode == 0
    image = tmp_path / "unit.img"
    result = assemble("--boot-size", 64, "--root-extra", 8, "--data", data, "--data-extra", 16, root, image)
    assert result.returncode == 0, result.stderr
    partitions = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, timeout=30, env=ENV, check=True
    ).stdout
    _, system, data_part = json.loads(partitions)["partitiontable"]["partitions"]
    assert data_part["type"] == "83" and data_part["start"] == system["start"] + system["size"]
    assert image.stat().st_size == (data_part["start"] + data_part["size"]) * SECTOR  # the last: it grows
    assert "data  p3 ext4  INTERCOMDATA" in result.stdout
    offset = data_part["start"] * SECTOR
    probe = run("blkid", "--probe", "--offset", offset, "--output", "export", image).stdout.decode()
    assert "TYPE=ext4" in probe.splitlines() and "LABEL=INTERCOMDATA" in probe.splitlines()
    ext4 = f"{image}?offset={offset}"
    assert run("e2fsck", "-f", "-n", ext4).returncode == 0
    assert run("debugfs", "-R", "cat /etc-intercom/intercom.env", ext4).stdout == b"INTERCOM_ROLE=door\n"
    stat = run("debugfs", "-R", "stat /intercom/intercom.sqlite3", ext4).stdout.decode()
    assert re.search(rf"User:\s+{UID}\s+Group:\s+{GID}", stat)
    header = run("dumpe2fs", "-h", ext4).stdout.decode()
    assert int(re.search(r"Free blocks:\s+(\d+)", header)[1]) * 4096 >= 16 << 20
    in_root = run("debugfs", "-R", "ls /var/lib/intercom", f"{image}?offset={system['start'] * SECTOR}")
    assert in_root.returncode == 0 and b"intercom.sqlite3" not in in_root.stdout  # only the mount point


def test_assemble_refuses_a_missing_data_tree(trees, tmp_path):
    root, _ = trees
    result = assemble("--data", tmp_path / "missing", root, tmp_path / "unit.img")
    assert result.returncode == 2 and "--data" in result.stderr and "is not a directory" in result.stderr
    assert not (tmp_path / "unit.img").exists()
