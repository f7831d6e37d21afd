"""Growing the root filesystem to the card, once: ``firstboot.sh`` with fake ``findmnt``, ``lsblk``,
``partx`` and ``resize2fs`` first on PATH (``FIRSTBOOT_TEST_EXPAND=yes``), and the real ``sfdisk``
working on a disk image in place of the card. The machine's own disks are never named."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .firstboot_tree import Tree

SECTOR = 512
IMAGE_MIB, CARD_MIB = 32, 64  # the image as built, and the card it was written to
ROOT_START = 18432  # sectors: a 8 MiB boot partition at 1 MiB, as the image has (bigger)
MARKER = "var/lib/intercom-firstboot/expanded"
SFDISK = shutil.which("sfdisk") or "/usr/sbin/sfdisk"
TYPES = {  # FAT and Linux
    "dos": ("c", "83"),
    "gpt": ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
}


def fake(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    yield Tree(tmp_path / "root")  # root only: no `intercom config check` here


def card(tmp_path: Path, label: str, data: bool = False) -> Path:
    """An image's partition table (boot, then root, then with ``data`` the data partition) on a
    card twice its size."""
    disk = tmp_path / "card.img"
    with disk.open("wb") as file:
        file.truncate(IMAGE_MIB << 20)
    boot_type, root_type = TYPES[label]
    table = (
        f"label: {label}\nstart=2048, size=16384, type={boot_type}\nstart={ROOT_START}, size=20480, type={root_type}\n"
    )
    if data:
        table += f"start={ROOT_START + 20480}, size=16384, type={root_type}\n"
    subprocess.run([SFDISK, "--quiet", str(disk)], input=table, text=True, check=True, timeout=30)
    with disk.open("r+b") as file:
        file.truncate(CARD_MIB << 20)
    return disk


def partitions(disk: Path) -> dict:
    dump = subprocess.run([SFDISK, "--json", str(disk)], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(dump.stdout)["partitiontable"]


def fake_disk_tools(tree: Tree, tmp_path: Path, disk: Path, parent: str = "mmcblk0", fstype: str = "ext4") -> Path:
    """Root on /dev/mmcblk0p2; sfdisk is the real one on ``disk``; the rest note their arguments in calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    fake(bin_dir, "findmnt", f'case "$*" in *SOURCE*) echo /dev/mmcblk0p2 ;; *FSTYPE*) echo {fstype} ;; esac')
    fake(bin_dir, "lsblk", f'echo "lsblk $*" >>"{calls}"; echo "{parent}"')
    fake(bin_dir, "partx", f'echo "partx $*" >>"{calls}"')
    fake(bin_dir, "resize2fs", f'echo "resize2fs $*" >>"{calls}"; echo "resize2fs 1.47.0"')
    fake(
        bin_dir,
        "sfdisk",
        f'echo "sfdisk $*" >>"{calls}"; args=(); for a; do [ "$a" = /dev/mmcblk0 ] && a="{disk}"; args+=("$a"); done\n'
        f'exec "{SFDISK}" "${{args[@]}}"',
    )
    tree.write("sys/class/block/mmcblk0p2/partition", "2\n")
    return bin_dir


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(shutil.which("growpart") is not None, reason="growpart is installed: the script would use it")
@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_the_root_partition_and_filesystem_grow_to_the_end_of_the_card_once(tree, tmp_path, label):
    disk = card(tmp_path, label)
    bin_dir = fake_disk_tools(tree, tmp_path, disk)
    run = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes")
    assert (
        "root filesystem: grew partition 2 of /dev/mmcblk0 to the end of the card, and /dev/mmcblk0p2 to fill it"
        in run.lines
    )
    table = partitions(disk)
    root = table["partitions"][1]
    sectors = (CARD_MIB << 20) // SECTOR
    last = sectors - 34 if label == "gpt" else sectors - 1  # a GPT's backup table and header: at the very end
    assert root["start"] == ROOT_START and root["start"] + root["size"] - 1 == last, table
    assert table["partitions"][0]["size"] == 16384  # the boot partition as it was
    assert calls(tmp_path)[-2:] == ["partx -u --nr 2 /dev/mmcblk0", "resize2fs /dev/mmcblk0p2"]
    assert tree.path(MARKER).exists() and run.returncode == 0

    (tmp_path / "calls.log").unlink()
    again = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes")
    assert calls(tmp_path) == [] and not any(line.startswith("root filesystem") for line in again.lines)


def test_growpart_is_used_where_it_is_installed_and_no_change_is_fine(tree, tmp_path):
    bin_dir = fake_disk_tools(tree, tmp_path, card(tmp_path, "dos"))
    fake(
        bin_dir,
        "growpart",
        f'echo "growpart $*" >>"{tmp_path}/calls.log"; echo "NOCHANGE: partition 2 is size 20480"; exit 1',
    )
    run = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes")
    assert calls(tmp_path)[-3:] == [
        "growpart /dev/mmcblk0 2",
        "partx -u --nr 2 /dev/mmcblk0",
        "resize2fs /dev/mmcblk0p2",
    ]
    assert not any(call.startswith("sfdisk") for call in calls(tmp_path))
    assert run.returncode == 0 and tree.path(MARKER).exists()


def test_a_failing_growpart_is_reported_and_tried_again_next_boot(tree, tmp_path):
    bin_dir = fake_disk_tools(tree, tmp_path, card(tmp_path, "dos"))
    fake(bin_dir, "growpart", 'echo "FAILED: sfdisk said no"; exit 2')
    run = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes")
    assert "root filesystem: could not grow partition 2 of /dev/mmcblk0: FAILED: sfdisk said no" in run.lines
    assert not any(call.startswith("resize2fs") for call in calls(tmp_path))
    assert run.returncode == 1 and not tree.path(MARKER).exists()


@pytest.mark.parametrize(
    ("parent", "fstype", "said"),
    [
        ("", "ext4", "root filesystem: /dev/mmcblk0p2 is not a partition of a disk: nothing to grow"),
        ("mmcblk0", "btrfs", "root filesystem: btrfs on /dev/mmcblk0p2, not ext4: not grown"),
    ],
    ids=["whole-disk", "not-ext4"],
)
def test_a_root_that_cannot_grow_is_skipped_for_good(tree, tmp_path, parent, fstype, said):
    disk = card(tmp_path, "dos")
    before = disk.read_bytes()
    bin_dir = fake_disk_tools(tree, tmp_path, disk, parent=parent, fstype=fstype)
    run = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes")
    assert said in run.lines and run.returncode == 0
    assert disk.read_bytes() == before and not any(call.startswith(("sfdisk", "resize2fs")) for call in calls(tmp_path))
    assert tree.path(MARKER).exists()


@pytest.mark.skipif(shutil.which("growpart") is not None, reason="growpart is installed: the script would use it")
def test_the_image_grows_its_data_partition_the_last_one_not_the_read_only_root(tree, tmp_path):
    disk = card(tmp_path, "dos", data=True)
    bin_dir = fake_disk_tools(tree, tmp_path, disk)
    # the root is /dev/mmcblk0p2, the data partition (mounted on /data) /dev/mmcblk0p3
    fake(bin_dir, "findmnt", 'case "$*" in *"SOURCE /data") echo /dev/mmcblk0p3 ;; *"FSTYPE /data") echo ext4 ;; esac')
    tree.write("sys/class/block/mmcblk0p3/partition", "3\n")
    run = tree.run(bin_dir, FIRSTBOOT_TEST_EXPAND="yes", FIRSTBOOT_GROW="/data")
    assert (
        "data filesystem: grew partition 3 of /dev/mmcblk0 to the end of the card, and /dev/mmcblk0p3 to fill it"
        in run.lines
    ), run.lines
    root, data = partitions(disk)["partitions"][1:]
    assert (root["start"], root["size"]) == (ROOT_START, 20480)  # the root as it was
    assert data["start"] + data["size"] == (CARD_MIB << 20) // SECTOR
    assert calls(tmp_path)[-1] == "resize2fs /dev/mmcblk0p3" and run.returncode == 0
