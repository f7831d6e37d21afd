#!/usr/bin/env bash
# Turns a Raspberry Pi root filesystem tree into a flashable disk image, without mounting or
# loop devices: an MBR with a FAT32 boot partition (the files under ROOTFS/boot/firmware), an
# ext4 root partition (everything else, with an empty /boot/firmware as the mount point) and, with
# --data, a third, ext4 partition for the unit's data (deploy/image/data-partition.sh makes its tree).
#
#   deploy/image/assemble.sh [--boot-size MiB] [--root-extra MiB] [--data DIR [--data-extra MiB]]
#                            ROOTFS_DIR OUT.img
#
#   --boot-size MiB   the boot partition (default 256, at least 64: FAT32 needs 65525 clusters)
#   --root-extra MiB  free space left in the root (default 300; the root grows to the card's
#                     size on first boot, this is only what the image itself has spare)
#   --data DIR        the data partition's files: p3, ext4, labelled INTERCOMDATA; then it is the
#                     data partition, not the root, that grows to the card on first boot
#   --data-extra MiB  free space left in the data partition (default 64)
#
# Run it as root, so that every file of the tree can be read; ownership and modes come from the
# tree either way. The layout is described in deploy/image/README.md.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # mkfs.*, sfdisk, debugfs: not on a Debian user's PATH

BOOT_START_MIB=4              # partition 1 starts here, aligned for SD cards' erase blocks
BOOT_LABEL=RASPIFIRM          # the rootfs's fstab mounts LABEL=RASPIFIRM on /boot/firmware
ROOT_LABEL=RASPIROOT          # cmdline.txt says root=LABEL=RASPIROOT
DATA_LABEL=INTERCOMDATA       # the rootfs's fstab mounts it on /data (data-partition.sh)

say() { printf 'assemble: %s\n' "$*"; }
fail() { printf 'assemble: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
mib() { printf '%s' "$1" | grep -qE '^[0-9]{1,7}$'; }

boot_mib=256
extra_mib=300
data=
data_extra_mib=64
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --boot-size) mib "${2-}" || fail "--boot-size needs a size in MiB" 2; boot_mib=$((10#$2)); shift 2 ;;
    --root-extra) mib "${2-}" || fail "--root-extra needs a size in MiB" 2; extra_mib=$((10#$2)); shift 2 ;;
    --data) [ -n "${2-}" ] || fail "--data needs a directory" 2; data=${2%/}; shift 2 ;;
    --data-extra) mib "${2-}" || fail "--data-extra needs a size in MiB" 2; data_extra_mib=$((10#$2)); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 2 ] ||
  fail "usage: assemble.sh [--boot-size MiB] [--root-extra MiB] [--data DIR [--data-extra MiB]] ROOTFS_DIR OUT.img" 2
rootfs=${args[0]%/}
out=${args[1]}
[ "$boot_mib" -ge 64 ] || fail "--boot-size must be at least 64 MiB for FAT32, not $boot_mib" 2
[ -d "$rootfs" ] || fail "$rootfs is not a directory" 2
[ -z "$data" ] || [ -d "$data" ] || fail "--data $data is not a directory" 2
[[ -d $rootfs/boot/firmware && ! -L $rootfs/boot/firmware ]] || fail "$rootfs has no boot/firmware directory" 2
[ -n "$(ls -A "$rootfs/boot/firmware")" ] || fail "$rootfs/boot/firmware is empty" 2
[ -d "$(dirname "$out")" ] || fail "$(dirname "$out") (for $out) is not a directory" 2
[ ! -d "$out" ] || fail "$out is a directory" 2
rootfs=$(realpath "$rootfs")
out_dir=$(realpath "$(dirname "$out")")
case $out_dir/ in "$rootfs"/*) fail "$out is inside $rootfs" 2 ;; esac
# mkfs.ext4 -d would copy a mounted /proc or /dev into the image
mounted=$(awk -v r="$rootfs/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo)
[ -z "$mounted" ] || fail "unmount what is mounted inside $rootfs first: ${mounted//$'\n'/ }" 2

for tool in sfdisk:fdisk mkfs.vfat:dosfstools fsck.fat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs \
  debugfs:e2fsprogs e2fsck:e2fsprogs; do
  command -v "${tool%%:*}" >/dev/null || fail "${tool%%:*} is missing: apt-get install ${tool#*:}"
done

# The partitions are built next to the image (same filesystem, so the final mv is a rename) and
# the image appears only when complete.
work=$(mktemp -d "$out_dir/.assemble.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'fail "failed (line $LINENO): $BASH_COMMAND"' ERR

# KiB and inode count of a tree as ext4 with 4 KiB blocks stores it: du would measure the host's
# filesystem instead, which may compress or inline small files. Hard links count once.
measure() {
  (cd "$1" && find . -xdev "${@:2}" -printf '%y %s %n %i\n') | awk '
    $1 != "d" && $3 > 1 && seen[$4]++ { next }
    { inodes++ }
    $1 == "f" { blocks += int(($2 + 4095) / 4096) }
    $1 == "d" { blocks += $2 > 4096 ? int(($2 + 4095) / 4096) : 1 }
    $1 == "l" && $2 >= 60 { blocks++ }
    END { print blocks * 4, inodes }'
}
read -r root_kib root_inodes < <(measure "$rootfs" -path ./boot/firmware -prune -o)
read -r fw_kib fw_inodes < <(measure "$rootfs/boot/firmware" -mindepth 1)
fw_mib=$(((fw_kib + 1023) / 1024))
[ $((fw_mib + fw_mib / 16 + 1)) -le "$boot_mib" ] ||
  fail "boot/firmware holds $fw_mib MiB, too much for --boot-size $boot_mib" 2

# mkfs.ext4 -d writes the firmware into the root too (debugfs takes it out after), so the spare
# room is at least the firmware's size. On top of files and room: 1/16 for inode tables and
# other metadata, 64 MiB for the journal.
spare_mib=$((extra_mib > fw_mib ? extra_mib : fw_mib + 1))
content_mib=$(((root_kib + 1023) / 1024 + spare_mib))
# MiB of an ext4 partition holding content_mib of files and room
ext4_mib() { echo $(($1 + $1 / 16 + 64)); }
# -N when the files need more inodes than mke2fs's default, one per 16 KiB
inode_option() { [ "$1" -le $(($2 * 64)) ] || echo "-N $1"; }
root_mib=$(ext4_mib "$content_mib")
root_start_mib=$((BOOT_START_MIB + boot_mib))
image_mib=$((root_start_mib + root_mib))
read -r -a inode_opt < <(inode_option $(((root_inodes + fw_inodes) * 5 / 4 + 1024)) "$root_mib") || true # nothing: the default
data_mib=0
if [ -n "$data" ]; then
  read -r data_kib data_inodes < <(measure "$data")
  data_mib=$(ext4_mib $(((data_kib + 1023) / 1024 + data_extra_mib)))
  read -r -a data_inode_opt < <(inode_option $((data_inodes * 5 / 4 + 1024)) "$data_mib") || true
fi
data_start_mib=$image_mib
image_mib=$((image_mib + data_mib))

# -- boot: FAT32 from boot/firmware ---------------------------------------------------------
# Hidden sectors = the partition's start, as mkfs.vfat would write it on a real partition.
mkfs.vfat -F 32 -n "$BOOT_LABEL" -h $((BOOT_START_MIB * 2048)) -C "$work/boot.part" $((boot_mib * 1024)) >/dev/null
shopt -s dotglob
# stdin closed: on a name clash (FAT ignores case) or a name FAT refuses mcopy would ask, and
# without an answer it fails
MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$work/boot.part" "$rootfs"/boot/firmware/* :: </dev/null ||
  fail "mcopy could not copy boot/firmware to FAT32: names that differ only in case, or characters FAT refuses?"
shopt -u dotglob
fsck.fat -n "$work/boot.part" >/dev/null

# -- root: ext4 from the tree, then boot/firmware emptied inside it -------------------------
# -T default: the same 4 KiB blocks and inode ratio as a full-size root, even for a small one.
truncate -s "${root_mib}M" "$work/root.part"
mkfs.ext4 -q -T default -L "$ROOT_LABEL" "${inode_opt[@]}" -d "$rootfs" "$work/root.part"
# Quoted names for debugfs: none holds a quote or a backslash, as FAT (mcopy above) refuses them.
(cd "$rootfs/boot/firmware" && find . -mindepth 1 -depth -printf '%y %P\n') | while read -r type path; do
  if [ "$type" = d ]; then echo "rmdir \"/boot/firmware/$path\""; else echo "rm \"/boot/firmware/$path\""; fi
done >"$work/empty-firmware.debugfs"
# debugfs exits 0 whatever its commands did: anything on stderr but its banner is a failure.
debugfs -w -f "$work/empty-firmware.debugfs" "$work/root.part" >/dev/null 2>"$work/debugfs.err"
if grep -v '^debugfs [0-9.]* (' "$work/debugfs.err" >&2; then fail "debugfs could not empty /boot/firmware in the root"; fi
# A full check of the new filesystem, twice: -D indexes the directories (mkfs.ext4 -d leaves
# large ones linear, slow to look up in) and turns discard off for its run; discard punches the
# firmware's freed blocks out of the file, so they are holes in the image, not data to compress.
e2fsck -f -p -D "$work/root.part" >/dev/null
e2fsck -f -p -E discard "$work/root.part" >/dev/null

# -- data: ext4 from the data tree ----------------------------------------------------------
if [ -n "$data" ]; then
  truncate -s "${data_mib}M" "$work/data.part"
  mkfs.ext4 -q -T default -L "$DATA_LABEL" "${data_inode_opt[@]}" -d "$data" "$work/data.part"
  e2fsck -f -p -D "$work/data.part" >/dev/null
fi

# -- the disk -------------------------------------------------------------------------------
truncate -s "${image_mib}M" "$work/image"
sfdisk -q --no-reread --no-tell-kernel "$work/image" >/dev/null <<EOF
label: dos
unit: sectors
start=$((BOOT_START_MIB * 2048)), size=$((boot_mib * 2048)), type=c
start=$((root_start_mib * 2048)), size=$((root_mib * 2048)), type=83
$([ -z "$data" ] || echo "start=$((data_start_mib * 2048)), size=$((data_mib * 2048)), type=83")
EOF
dd if="$work/boot.part" of="$work/image" bs=1M seek="$BOOT_START_MIB" conv=notrunc,sparse status=none
dd if="$work/root.part" of="$work/image" bs=1M seek="$root_start_mib" conv=notrunc,sparse status=none
[ -z "$data" ] || dd if="$work/data.part" of="$work/image" bs=1M seek="$data_start_mib" conv=notrunc,sparse status=none
mv "$work/image" "$out"

say "boot  p1 FAT32 $BOOT_LABEL  at $BOOT_START_MIB MiB, $boot_mib MiB ($fw_mib MiB of firmware)"
say "root  p2 ext4  $ROOT_LABEL  at $root_start_mib MiB, $root_mib MiB ($(((root_kib + 1023) / 1024)) MiB of files)"
[ -z "$data" ] || say "data  p3 ext4  $DATA_LABEL at $data_start_mib MiB, $data_mib MiB ($(((data_kib + 1023) / 1024)) MiB of files)"
say "$out: $image_mib MiB ($(du -m "$out" | cut -f1) MiB allocated, the rest is holes)"
