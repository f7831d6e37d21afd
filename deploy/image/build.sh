#!/usr/bin/env bash
# Builds the flashable SD-card image of a unit (Raspberry Pi 3, 4 and Zero 2 W; arm64) from Debian
# bookworm packages and this working tree:
#
#   sudo deploy/image/build.sh [--out DIR] [--authorized-keys FILE]
#
#   --out DIR               where intercom-<version>-arm64.img.xz and its .sha256 go (build/image)
#   --authorized-keys FILE  SSH keys for root, put on the boot partition as a user would: first
#                           boot takes them and turns SSH on, keys only (without it, SSH stays off
#                           until an authorized_keys is dropped there)
#
# Three stages, each in build/image/:
#   1. the system (mmdebstrap --arch=arm64, Debian's raspi-firmware and kernel, customize-rootfs.sh),
#      cached as rootfs-<key>.tar: the key is a hash of packages.txt and customize-rootfs.sh;
#   2. the project: a wheel built from the working tree, its dependencies as arm64 wheels at
#      exactly the versions of deploy/constraints.txt, and deploy/install.sh run inside the tree
#      (under qemu-user), as on a Pi; first boot's service; then deploy/image/data-partition.sh
#      splits the tree into a read-only root and the data partition's files;
#   3. the disk: deploy/image/assemble.sh (no loop devices, no mounts), xz and sha256.
# Needs root (chroot and bind mounts of /proc, /sys and /dev for stage 2), mmdebstrap,
# qemu-user-static with binfmt, mtools, dosfstools, fdisk and xz-utils: it installs what is
# missing when apt can.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

say() { printf 'image: %s\n' "$*"; }
fail() { printf 'image: %s\n' "$1" >&2; exit "${2:-1}"; }
. deploy/image/lib.sh

out=$repo/build/image
keys=
while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || fail "--out needs a directory" 2; out=$2; shift 2 ;;
    --authorized-keys)
      if [ $# -lt 2 ] || [ ! -f "$2" ]; then fail "--authorized-keys needs a file" 2; fi
      keys=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
      shift 2
      ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) fail "unknown option $1 (see --help)" 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || fail "run it as root (chroot and bind mounts): sudo $0"
constraints=$repo/deploy/constraints.txt
[ -f "$constraints" ] || fail "$constraints is missing: the image installs exactly its versions (make constraints)" 2
mkdir -p "$out" "$repo/build/image"  # the caches live in build/image whatever --out says
out=$(cd "$out" && pwd)
work=$repo/build/image/work
mirror=${INTERCOM_IMAGE_MIRROR:-http://deb.debian.org/debian}
security=${INTERCOM_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
started=$SECONDS

# -- tools ---------------------------------------------------------------------------------------
install_missing mmdebstrap:mmdebstrap qemu-user-static:qemu-aarch64-static binfmt-support:update-binfmts \
  arch-test:arch-test mtools:mcopy dosfstools:mkfs.vfat fdisk:sfdisk xz-utils:xz
if ! arch-test arm64 >/dev/null; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  arch-test arm64 >/dev/null || fail "this machine cannot run arm64 programs (qemu-user-static with binfmt_misc)"
fi

# -- 1. the system, cached -------------------------------------------------------------------------
key=$(cat deploy/image/packages.txt deploy/image/customize-rootfs.sh | sha256sum | cut -c1-16)
cache=$repo/build/image/rootfs-$key.tar
if [ -f "$cache" ]; then
  say "stage 1: the cached system ($(basename "$cache"))"
else
  say "stage 1: the system, from Debian bookworm arm64 (mmdebstrap; about 35 min under emulation)"
  packages=$(grep -v '^#' deploy/image/packages.txt | grep . | paste -sd, -)
  components="main contrib non-free-firmware"
  mmdebstrap --mode=root --format=tar --variant=apt --architectures=arm64 --components="$components" \
    --include="$packages" \
    --setup-hook="mkdir -p \"\$1/boot/firmware\"" \
    --customize-hook="$repo/deploy/image/customize-rootfs.sh \"\$1\"" \
    bookworm "$cache.partial" \
    "deb $mirror bookworm $components" \
    "deb $mirror bookworm-updates $components" \
    "deb $security bookworm-security $components"
  mv "$cache.partial" "$cache"
  find "$repo/build/image" -maxdepth 1 -name 'rootfs-*.tar' ! -name "$(basename "$cache")" -delete
fi

# -- 2. the project ----------------------------------------------------------------------------------
root=$work/root
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"; done
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$root" "$work/wheels"
tar -C "$root" --numeric-owner -xpf "$cache"

say "stage 2: the project's wheel and its arm64 dependencies, as pinned in deploy/constraints.txt"
# the browser side's bundles go in the wheel: the unit never runs npm
"$repo/scripts/build-web.sh" || fail "could not build intercom/web/dist (npm and node are needed here)"
"${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/wheels" "$repo"
wheel=$(find "$work/wheels" -name 'intercom-*.whl' | head -1)
version=$(basename "$wheel" | cut -d- -f2)
# Debian bookworm's Python is 3.11 and its glibc 2.36: binary wheels for those, nothing to compile.
# Only the pinned versions land in the wheelhouse, which install.sh installs from and nothing else;
# build/image/wheels is a cache of every version downloaded before, looked in first.
"${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
  --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  -c "$constraints" --find-links "$repo/build/image/wheels" -d "$work/wheels" "$wheel" ||
  fail "pip could not download an arm64 wheel for Python 3.11 of every version in deploy/constraints.txt"
find "$work/wheels" -name '*.whl' ! -name 'intercom-*' -exec cp -n {} "$repo/build/image/wheels/" \;
# The echo canceller is livekit's native library (intercom.audio.processing): without its arm64
# wheel a unit would send its speaker's echo, so the build stops here rather than ship that.
canceller=$(find "$work/wheels" -name 'livekit-*_aarch64.whl' | head -1)
[ -n "$canceller" ] || fail "no arm64 wheel of livekit (the echo canceller) among the dependencies"
say "stage 2: the echo canceller's wheel: $(basename "$canceller")"

for mount in proc sys dev dev/pts; do
  mkdir -p "$root/$mount"
  mount --bind "/$mount" "$root/$mount"
  mounted+=("$root/$mount")
done
staging=$root/tmp/intercom-build
mkdir -p "$staging"
tar -C "$repo" -cf - deploy pyproject.toml README.md intercom | tar -C "$staging" -xf -
cp -r "$work/wheels" "$staging/wheels"
say "stage 2: deploy/install.sh inside the image (under qemu-user: a few minutes)"
# PIP_CONSTRAINT: pip keeps to the pins for what the venv already has too (setuptools, from venv).
PIP_CONSTRAINT=/tmp/intercom-build/deploy/constraints.txt \
  chroot "$root" /tmp/intercom-build/deploy/install.sh --no-start --source /tmp/intercom-build \
  --wheel "/tmp/intercom-build/wheels/$(basename "$wheel")" --wheelhouse /tmp/intercom-build/wheels
say "stage 2: the echo canceller on the image's own Python (arm64, under qemu-user)"
chroot "$root" /opt/intercom/current/bin/python - <<'CHECK' || fail "the echo canceller does not run in the image"
import numpy as np
from intercom.audio.processing import ProcessingSettings, SoundProcessor
processor = SoundProcessor(ProcessingSettings())
for _ in range(50):  # a second of audio: the speaker's block, then the microphone's
    processor.render(np.zeros(960, np.int16), 0.0)
    processor.capture(np.zeros(960, np.int16), 0.0)
stats = processor.stats
assert stats.frames_processed == stats.reference_frames == 100 and stats.errors == 0, stats
print(f"image: echo canceller ok, {stats.cost_us_per_frame:.0f} us a 10 ms frame under emulation")
CHECK
install -m 755 deploy/image/firstboot.sh "$root/usr/local/sbin/intercom-firstboot"
install -m 644 deploy/image/intercom-firstboot.service "$root/etc/systemd/system/"
chroot "$root" systemctl enable --quiet intercom-firstboot.service
if [ -n "$keys" ]; then  # as if the user had dropped it on the card: first boot turns SSH on
  install -m 600 "$keys" "$root/boot/firmware/authorized_keys"
  say "stage 2: $keys on the boot partition: first boot turns SSH on for them, keys only"
fi
say "stage 2: the image's packages are the versions of deploy/constraints.txt"
chroot "$root" /opt/intercom/current/bin/python - "$(grep -v '^#' "$constraints")" <<'PINS' || fail "the image's venv differs from deploy/constraints.txt"
import importlib.metadata, re, sys, sysconfig
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
pins = {norm(name): version for name, version in (line.split("==") for line in sys.argv[1].split())}
venv = importlib.metadata.distributions(path=[sysconfig.get_paths()["purelib"]])
installed = {norm(d.metadata["Name"]): d.version for d in venv if norm(d.metadata["Name"]) not in ("intercom", "pip")}
wrong = {name: (version, pins.get(name)) for name, version in installed.items() if pins.get(name) != version}
print(f"image: {len(installed)} packages in the venv, each at its pinned version" if not wrong else
      "\n".join(f"image: {name} {have} installed, constraints say {want}" for name, (have, want) in wrong.items()))
sys.exit(1 if wrong else 0)
PINS
rm -rf "$staging" "$root"/root/.cache
cleanup
mounted=()
say "stage 2: the read-only root and the data partition (data-partition.sh)"
deploy/image/data-partition.sh "$root" "$work/data"

# -- 3. the disk -------------------------------------------------------------------------------------
image=$out/intercom-$version-arm64.img
say "stage 3: the disk image"
deploy/image/assemble.sh --data "$work/data" "$root" "$image"
rm -f "$image.xz"
xz -T0 -6 "$image"
(cd "$out" && sha256sum "$(basename "$image").xz" >"$(basename "$image").xz.sha256")
rm -rf "$work"
say "done in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s: $image.xz" \
  "($(du -h "$image.xz" | cut -f1); sha256 in $(basename "$image").xz.sha256)"
