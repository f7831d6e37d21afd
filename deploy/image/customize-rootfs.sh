#!/usr/bin/env bash
# The system part of the image, run by build.sh as mmdebstrap's customize hook on the fresh arm64
# root filesystem ($1), before it is cached: boot configuration, mounts, network, SSH and the
# console. Nothing of the project is here (that is the next stage), so the cached tree serves every
# rebuild until this file or packages.txt changes.
set -euo pipefail
root=$1
in_root() { chroot "$root" "$@"; }

# raspi-firmware appends /etc/default/raspi-firmware-custom to config.txt: the firmware drives the
# door strike's relay pin to its inactive level before Linux starts. The line is for the default
# relay (GPIO26, active high); first boot's script keeps the line after the comment in step with
# the env file (deploy/strike-off.sh --config-line). [all]: whatever section config.txt ends in.
cat >"$root/etc/default/raspi-firmware-custom" <<'CUSTOM'
[all]
# The door strike's relay off from power-on (intercom-firstboot keeps the next line in step)
gpio=26=op,dl
CUSTOM

# Debian's raspi-firmware writes cmdline.txt and config.txt from /etc/default/raspi-firmware each
# time a kernel is installed: name the root by label, and give a serial console.
sed -i -e 's|^#\?ROOTPART=.*|ROOTPART=LABEL=RASPIROOT|' \
  -e 's|^#\?CONSOLES=.*|CONSOLES="tty0 ttyS1,115200"|' "$root/etc/default/raspi-firmware"
kernel=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
DEB_MAINT_PARAMS=configure in_root /etc/kernel/postinst.d/z50-raspi-firmware "$kernel"

cat >"$root/etc/fstab" <<'FSTAB'
# The card's two partitions, by the labels deploy/image/assemble.sh gives them.
LABEL=RASPIROOT  /               ext4  rw,noatime      0 1
LABEL=RASPIFIRM  /boot/firmware  vfat  rw,noatime,umask=077  0 2
FSTAB

# Wired network by DHCP (wlan0 is set up on first boot when the card holds wifi settings).
cat >"$root/etc/systemd/network/20-wired.network" <<'NETWORK'
[Match]
Name=eth* en*

[Network]
DHCP=yes
MulticastDNS=yes
NETWORK
in_root systemctl enable systemd-networkd systemd-resolved systemd-timesyncd
# "Online" is one interface up, not all of them, and a unit without a network (a desk that hosts
# the hub and has no cable yet) waits 30 s for it, not 2 min.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf" <<'WAIT'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
WAIT
ln -sfn /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

echo intercom >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tintercom\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# No password anywhere: root is locked, and SSH is off until first boot finds authorized_keys on
# the boot partition (build.sh --authorized-keys puts them there): it then makes this card's own
# host keys, allows keys only and turns SSH on (firstboot.sh).
in_root passwd --lock root >/dev/null
in_root systemctl disable ssh.service >/dev/null 2>&1 || true
rm -f "$root"/etc/ssh/ssh_host_*

# The journal survives reboots, so that a unit's trouble can be read after the fact.
mkdir -p "$root/var/log/journal"
# Keep the image small: apt's lists and caches come back with the first `apt-get update`.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
