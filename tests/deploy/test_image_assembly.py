"""deploy/image/assemble.sh turns a root filesystem tree into a disk image: an MBR, a FAT32 boot
partition with the tree's boot/firmware, an ext4 root with everything else. The image of a small
tree is read back without mounting it (sfdisk, blkid, mtools, debugfs), as the script makes it.

The tree has files owned by another user and a device node, so these tests run as root, like the
script does for a real tree."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "image" / "assemble.sh"
MIB = 1 << 20
SECTOR = 512
BOOT_MIB = 64
EXTRA_MIB = 24
# mkfs.*, sfdisk, debugfs, blkid live in sbin, which a Debian user's PATH lacks
ENV = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}

DTB = bytes(range(256)) * 24
DTBO = os.urandom(3000)
FIRMWARE = {
    "config.txt": b"arm_64bit=1\n",
    "cmdline.txt": b"console=tty1 root=LABEL=RASPIROOT rw\n",
    "bcm2711-rpi-4-b.dtb": DTB,
    "overlays/vc4-kms-v3d.dtbo": DTBO,
    "overlays/README": b"overlays for config.txt's dtoverlay=\n",
}


def run(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout, env=ENV)


def assemble(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120, env=ENV)


def make_firmware(rootfs: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = rootfs / "boot" / "firmware" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def make_tree(rootfs: Path) -> None:
    """A few of a real root's kinds of file: private and executable modes, a user's home, a
    symlink, a hard link, a device node, an empty directory."""
    for name in ("etc", "usr/bin", "home/pi", "dev", "var/lib/empty"):
        (rootfs / name).mkdir(parents=True)
    (rootfs / "etc" / "motd").write_text("welcome\n")
    os.link(rootfs / "etc" / "motd", rootfs / "etc" / "motd.hard")
    (rootfs / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (rootfs / "etc" / "shadow").chmod(0o600)
    (rootfs / "usr" / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (rootfs / "usr" / "bin" / "tool").chmod(0o755)
    (rootfs / "usr" / "bin" / "tool-link").symlink_to("tool")
    (rootfs / "home" / "pi" / "notes").write_text("pi's notes\n")
    (rootfs / "home" / "pi" / "notes").chmod(0o640)
    (rootfs / "home" / "pi").chmod(0o750)
    for path in (rootfs / "home" / "pi", rootfs / "home" / "pi" / "notes"):
        os.chown(path, 1000, 1000)
    os.mknod(rootfs / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (rootfs / "dev" / "null").chmod(0o666)  # past the umask
    make_firmware(rootfs, FIRMWARE)


def snapshot(rootfs: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """Each path's mode, owner, size and link target: what the script must leave as it was."""
    found = {}
    for path in [rootfs, *sorted(rootfs.rglob("*"))]:
        st = path.lstat()
        target = os.readlink(path) if path.is_symlink() else ""
        found[str(path.relative_to(rootfs))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, target)
    return found


@dataclass
class Built:
    rootfs: Path
    image: Path
    before: dict[str, tuple[int, int, int, int, str]]
    stdout: str
    partitions: list[dict[str, int | str]]

    def offset(self, number: int) -> int:
        return int(self.partitions[number - 1]["start"]) * SECTOR

    @property
    def fat(self) -> str:
        """The boot partition, as mtools names it."""
        return f"{self.image}@@{self.offset(1)}"

    @property
    def ext4(self) -> str:
        """The root partition, as e2fsprogs' tools name it."""
        return f"{self.image}?offset={self.offset(2)}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("image")
    rootfs = base / "rootfs"
    make_tree(rootfs)
    before = snapshot(rootfs)
    (base / "out").mkdir()
    image = base / "out" / "unit.img"
    result = assemble("--boot-size", BOOT_MIB, "--root-extra", EXTRA_MIB, rootfs, image)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    table = run("sfdisk", "--json", image)
    assert table.returncode == 0, table.stderr
    partitions = json.loads(table.stdout)["partitiontable"]
    assert partitions["label"] == "dos"
    return Built(rootfs, image, before, result.stdout, partitions["partitions"])


def probe(built: Built, number: int) -> dict[str, str]:
    result = run("blkid", "--probe", "--offset", built.offset(number), "--output", "export", built.image)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.decode().splitlines())


def debugfs(built: Built, request: str) -> str:
    result = run("debugfs", "-R", request, built.ext4)
    assert result.returncode == 0, result.stderr
    # debugfs reports a failed request on stderr, after its banner, and still exits 0
    assert result.stderr.decode().splitlines()[1:] == [], result.stderr
    return result.stdout.decode(errors="replace")


def listing(built: Built, directory: str) -> dict[str, tuple[int, int, int, int, int]]:
    """`ls -p` of a root directory: name -> (inode, mode, uid, gid, size)."""
    entries = {}
    for match in re.finditer(r"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$", debugfs(built, f"ls -p {directory}"), re.M):
        ino, mode, uid, gid, name, size = match.groups()
        entries[name] = (int(ino), int(mode, 8), int(uid), int(gid), int(size or 0))
    return entries


def dumpe2fs(built: Built) -> dict[str, str]:
    result = run("dumpe2fs", "-h", built.ext4)
    assert result.returncode == 0, result.stderr
    return dict(
        (key.strip(), value.strip())
        for key, value in (line.split(":", 1) for line in result.stdout.decode().splitlines() if ":" in line)
    )


# -- the disk -------------------------------------------------------------------------------------


def test_an_mbr_with_fat32_at_4_mib_and_linux_right_after_it(built: Built):
    boot, root = built.partitions
    assert (boot["start"], boot["size"], boot["type"]) == (4 * MIB // SECTOR, BOOT_MIB * MIB // SECTOR, "c")
    assert root["type"] == "83"
    assert root["start"] == boot["start"] + boot["size"]
    assert root["size"] % (MIB // SECTOR) == 0
    # the image ends where the root does, and is mostly holes
    assert built.image.stat().st_size == (root["start"] + root["size"]) * SECTOR
    assert built.image.stat().st_blocks * 512 < built.image.stat().st_size // 4


def test_the_summary_gives_the_sizes(built: Built):
    root = built.partitions[1]
    lines = built.stdout.splitlines()
    assert len(lines) == 3
    assert f"at 4 MiB, {BOOT_MIB} MiB" in lines[0] and "RASPIFIRM" in lines[0]
    assert f"at {4 + BOOT_MIB} MiB, {root['size'] * SECTOR // MIB} MiB" in lines[1] and "RASPIROOT" in lines[1]
    assert f"{built.image}: {built.image.stat().st_size // MIB} MiB" in lines[2]


def test_the_tree_is_left_as_it_was_and_nothing_else_is_left_behind(built: Built):
    assert snapshot(built.rootfs) == built.before
    assert sorted(p.name for p in built.image.parent.iterdir()) == ["unit.img"]


# -- the boot partition ---------------------------------------------------------------------------


def test_the_boot_partition_is_fat32_labelled_raspifirm(built: Built):
    found = probe(built, 1)
    assert (found["TYPE"], found["VERSION"], found["LABEL"]) == ("vfat", "FAT32", "RASPIFIRM")


def test_the_boot_partition_holds_the_firmware_and_nothing_else(built: Built):
    result = run("mdir", "-/", "-b", "-i", built.fat, "::")
    assert result.returncode == 0, result.stderr
    names = {line.removeprefix("::/").rstrip("/") for line in result.stdout.decode().splitlines()}
    assert names == {*FIRMWARE, "overlays"}
    for name, data in FIRMWARE.items():
        copied = run("mtype", "-i", built.fat, f"::/{name}")
        assert copied.returncode == 0, copied.stderr
        assert copied.stdout == data, name


# -- the root partition ---------------------------------------------------------------------------


def test_the_root_partition_is_a_sound_ext4_labelled_raspiroot(built: Built):
    found = probe(built, 2)
    assert (found["TYPE"], found["LABEL"]) == ("ext4", "RASPIROOT")
    check = run("e2fsck", "-f", "-n", built.ext4)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_root_fills_its_partition_and_has_the_headroom_free(built: Built):
    header = dumpe2fs(built)
    block = int(header["Block size"])
    assert block == 4096
    assert int(header["Block count"]) * block == int(built.partitions[1]["size"]) * SECTOR
    assert int(header["Free blocks"]) * block >= EXTRA_MIB * MIB


def test_the_root_keeps_modes_owners_and_contents(built: Built):
    etc = listing(built, "/etc")
    assert etc["shadow"][1:4] == (0o100600, 0, 0)
    assert etc["motd"][1:4] == (0o100644, 0, 0)
    assert etc["motd.hard"][0] == etc["motd"][0]  # one inode, two names
    assert listing(built, "/usr/bin")["tool"][1:4] == (0o100755, 0, 0)
    assert listing(built, "/home")["pi"][1:4] == (0o040750, 1000, 1000)
    assert listing(built, "/home/pi")["notes"][1:] == (0o100640, 1000, 1000, len("pi's notes\n"))
    assert debugfs(built, "cat /etc/shadow") == "root:*:19000:0:99999:7:::\n"
    assert debugfs(built, "cat /usr/bin/tool") == "#!/bin/sh\necho hi\n"
    assert set(listing(built, "/var/lib/empty")) == {".", ".."}


def test_the_root_keeps_symlinks_and_device_nodes(built: Built):
    assert listing(built, "/usr/bin")["tool-link"][1] == 0o120777
    assert 'Fast link dest: "tool"' in debugfs(built, "stat /usr/bin/tool-link")
    assert listing(built, "/dev")["null"][1] == 0o020666
    assert re.search(r"Device major/minor number: 0*1:0*3 ", debugfs(built, "stat /dev/null"))


def test_the_root_has_boot_firmware_as_an_empty_mount_point(built: Built):
    assert listing(built, "/boot")["firmware"][1] == 0o040755
    assert set(listing(built, "/boot/firmware")) == {".", ".."}


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no arguments", "usage: assemble.sh"),
        ("one argument", "usage: assemble.sh"),
        ("a missing tree", "missing is not a directory"),
        ("no boot/firmware", "has no boot/firmware directory"),
        ("an empty boot/firmware", "boot/firmware is empty"),
        ("a missing output directory", "nowhere (for "),
        ("an output inside the tree", "is inside"),
        ("a boot size that is no number", "--boot-size needs a size in MiB"),
        ("a boot size too small for FAT32", "--boot-size must be at least 64 MiB for FAT32, not 32"),
        ("firmware larger than the boot partition", "too much for --boot-size 64"),
        ("an unknown option", "unknown option --size"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path: Path, case: str, message: str):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    if case != "no boot/firmware":
        (rootfs / "boot" / "firmware").mkdir(parents=True)
    if case not in ("no boot/firmware", "an empty boot/firmware"):
        make_firmware(rootfs, {"config.txt": b"arm_64bit=1\n"})
    if case == "firmware larger than the boot partition":
        with open(rootfs / "boot" / "firmware" / "huge.img", "wb") as f:
            f.truncate(70 * MIB)  # sparse: counted by its size, as FAT would store it
    image = tmp_path / "out.img"
    args: list[str | Path] = {
        "no arguments": [],
        "one argument": [rootfs],
        "a missing tree": [tmp_path / "missing", image],
        "a missing output directory": [rootfs, tmp_path / "nowhere" / "out.img"],
        "an output inside the tree": [rootfs, rootfs / "out.img"],
        "a boot size that is no number": ["--boot-size", "big", rootfs, image],
        "a boot size too small for FAT32": ["--boot-size", "32", rootfs, image],
        "firmware larger than the boot partition": ["--boot-size", "64", rootfs, image],
        "an unknown option": ["--size", "64", rootfs, image],
    }.get(case, [rootfs, image])
    before = sorted(tmp_path.rglob("*"))
    result = assemble(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("assemble: "), result.stderr
    assert message in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_a_failure_half_way_leaves_no_image_and_no_temporary_files(tmp_path: Path):
    """Names that FAT cannot tell apart fail the copy to the boot partition (rather than one
    overwriting the other), after the script has started building in the output's directory."""
    rootfs = tmp_path / "rootfs"
    make_firmware(rootfs, {"config.txt": b"arm_64bit=1\n", "CONFIG.TXT": b"something else\n"})
    out = tmp_path / "out"
    out.mkdir()
    result = assemble("--boot-size", BOOT_MIB, rootfs, out / "unit.img")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1].startswith("assemble: mcopy could not copy boot/firmware"), result.stderr
    assert list(out.iterdir()) == []
