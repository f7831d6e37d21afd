#!/usr/bin/env bash
# Splits an installed root filesystem tree (ROOT) into a read-only root and the tree of the unit's
# data partition (DATA, empty or missing), so that a power cut cannot damage the system: every
# path the running unit writes moves to DATA, which deploy/image/assemble.sh --data makes into its
# own journaled ext4 partition, LABEL=INTERCOMDATA, mounted on /data and bound back to its place.
#
#   deploy/image/data-partition.sh ROOT DATA
#
# Moved to DATA (as DATA/<name>, owners and modes kept; an empty mount point stays in ROOT):
#   intercom      /var/lib/intercom            the database, recordings and keys
#   etc-intercom  /etc/intercom                the env file, which the installer edits over SSH
#   log           /var/log                     the persistent journal (and wtmp, lastlog)
#   systemd       /var/lib/systemd             timesyncd's clock file, the random seed, timers
#   private       /var/lib/private             state of services with DynamicUser=
#   firstboot     /var/lib/intercom-firstboot  first boot's marks
# /tmp and /var/tmp are tmpfs (lost at every boot, as a power cut would). DHCP leases live in /run.
# The root is mounted read-only (fstab and cmdline.txt); first boot's script makes it writable for
# the moment it installs what was dropped on the boot partition (firstboot.sh, writable_root).
#
# Run by build.sh on the tree after deploy/install.sh; the layout is in deploy/image/README.md.
set -euo pipefail

DATA_MOUNT=/data
DATA_LABEL=INTERCOMDATA # assemble.sh --data gives the partition this label
# name in DATA, and the path in ROOT it is bound back to
MOVED=(
  intercom:/var/lib/intercom
  etc-intercom:/etc/intercom
  log:/var/log
  systemd:/var/lib/systemd
  private:/var/lib/private
  firstboot:/var/lib/intercom-firstboot
)

fail() { printf 'data-partition: %s\n' "$1" >&2; exit "${2:-1}"; }

[ $# -eq 2 ] || fail "usage: data-partition.sh ROOT DATA" 2
root=${1%/}
data=${2%/}
[ -f "$root/etc/fstab" ] || fail "$root/etc/fstab is missing: not a root filesystem tree" 2
[ -f "$root/boot/firmware/cmdline.txt" ] || fail "$root/boot/firmware/cmdline.txt is missing" 2
grep -q "[[:space:]]${DATA_MOUNT}[[:space:]]" "$root/etc/fstab" && fail "$root/etc/fstab mounts $DATA_MOUNT already: split once" 2
root_line='^(LABEL=RASPIROOT[[:space:]]+/[[:space:]]+ext4[[:space:]]+)rw,'
grep -qE "$root_line" "$root/etc/fstab" || fail "$root/etc/fstab has no 'LABEL=RASPIROOT / ext4 rw,...' line to make read-only" 2
grep -qE '(^| )rw( |$)' "$root/boot/firmware/cmdline.txt" || fail "$root/boot/firmware/cmdline.txt has no 'rw' to make 'ro'" 2
[ ! -e "$data" ] || [ -z "$(ls -A "$data")" ] || fail "$data is not empty" 2
mkdir -p "$data"

fstab() { printf '%-26s %-28s %-6s %s\n' "$@" >>"$root/etc/fstab"; }

# The root: read-only from the initramfs on (cmdline.txt) and after systemd-remount-fs (fstab).
sed -i -E "s|$root_line|\\1ro,|" "$root/etc/fstab"
sed -i -E 's/(^| )rw( |$)/\1ro\2/' "$root/boot/firmware/cmdline.txt"

mkdir -p "$root$DATA_MOUNT"
chmod 755 "$root$DATA_MOUNT"
{
  echo
  echo "# The unit's data: its own ext4, checked at boot (pass 2; cmdline.txt's fsck.repair=yes answers"
  echo "# fsck's questions). nofail: a unit whose data cannot be mounted still boots, to be reached."
  echo "# errors=remount-ro: a damaged filesystem stops being written to; the unit carries on without its log."
} >>"$root/etc/fstab"
fstab "LABEL=$DATA_LABEL" "$DATA_MOUNT" ext4 "rw,noatime,nodev,nosuid,errors=remount-ro,nofail 0 2"
echo "# What the running unit writes, bound from there to where it is looked for (deploy/image/README.md)." >>"$root/etc/fstab"
for pair in "${MOVED[@]}"; do
  name=${pair%%:*} path=${pair#*:}
  if [ -d "$root$path" ]; then
    # mv keeps owners, modes and hard links; the empty mount point gets the directory's own mode.
    mv "$root$path" "$data/$name"
  else
    install -d -m 700 "$data/$name"
  fi
  install -d -m "$(stat -c %a "$data/$name")" -o "$(stat -c %u "$data/$name")" -g "$(stat -c %g "$data/$name")" "$root$path"
  fstab "$DATA_MOUNT/$name" "$path" none "bind,nofail 0 0"
done
echo "# Scratch space: empty at every boot." >>"$root/etc/fstab"
fstab tmpfs /tmp tmpfs "rw,nosuid,nodev,mode=1777,size=64M 0 0"
fstab tmpfs /var/tmp tmpfs "rw,nosuid,nodev,mode=1777,size=16M 0 0"

# D-Bus reads the machine id here; systemd-tmpfiles makes the link at boot, which a read-only root refuses.
[ ! -d "$root/var/lib/dbus" ] || [ -e "$root/var/lib/dbus/machine-id" ] || ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"

# The journal on the data partition: bounded, and written to it every 30 s at most.
mkdir -p "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/intercom.conf" <<'JOURNAL'
# The image's journal lives on the data partition (/var/log is bound from /data/log): keep it to a
# small part of the card, and sync it every 30 s (and at once for messages of priority crit and up).
[Journal]
Storage=persistent
SystemMaxUse=64M
SyncIntervalSec=30s
JOURNAL
