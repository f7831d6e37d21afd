#!/usr/bin/env bash
# The image's boot test: boots a built image under qemu-system-aarch64 (-M virt, the image's own
# kernel and initrd, taken from its boot partition) with a test intercom.env dropped on the boot
# partition, as a user would, and reads the serial console until first boot has moved the file
# into place (and checked it: "valid") and intercom.service logs "status connected": the unit's
# own line, to its own hub.
# The unit is a desk that runs the hub inside it, on mock pins (a VM has no GPIO); no network
# device is given to the VM, so nothing leaves it.
#
#   deploy/image/smoke.sh [IMAGE]     (default: the newest build/image/intercom-*-arm64.img.xz)
#
# Not part of `make test`: a boot under emulation takes minutes. Prints the milestones with their
# times since power-on, and a JSON line; exit 0 when the unit connected, 1 otherwise. The serial
# console is kept in build/image/smoke-console.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'smoke: %s\n' "$*"; }
fail() { printf 'smoke: %s\n' "$1" >&2; exit "${2:-1}"; }

image=${1:-$(find build/image -maxdepth 1 -name 'intercom-*-arm64.img.xz' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)}
if [ -z "$image" ] || [ ! -f "$image" ]; then fail "no image: build one with deploy/image/build.sh, or name it" 2; fi
timeout_s=${SMOKE_TIMEOUT_S:-1200}
for tool in qemu-system-aarch64 mcopy sfdisk xz; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install qemu-system-arm mtools fdisk xz-utils)" 2
done

work=$(mktemp -d /tmp/intercom-smoke.XXXXXX)
trap 'pkill -f "$work/disk.img" 2>/dev/null || true; rm -rf "$work"' EXIT
disk=$work/disk.img
say "image $image"
case $image in
  *.xz) xz -dc "$image" >"$disk" ;;
  *) cp --sparse=always "$image" "$disk" ;;
esac
truncate -s +1G "$disk"  # room for first boot to grow the root partition into

# The boot partition, as mtools addresses it inside the disk image.
start=$(sfdisk --json "$disk" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
boot="$disk@@$((start * 512))"

# What a user drops on the card: the unit's settings, here a desk that hosts the hub on loopback.
key_id=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')
cat >"$work/intercom.env" <<EOF
INTERCOM_ROLE=desk
INTERCOM_IDENTITY=desk
INTERCOM_HUB_EMBEDDED=true
INTERCOM_HUB_LISTEN=127.0.0.1
INTERCOM_ACCESS_KEY_ID=$key_id
INTERCOM_ACCESS_KEY=$secret
INTERCOM_UNLOCK_CODE=1234#
INTERCOM_PIN_FACTORY=mock
EOF
mcopy -o -i "$boot" "$work/intercom.env" ::intercom.env
# The kernel and initrd the Pi's firmware would start: config.txt names them.
mtype -i "$boot" ::config.txt >"$work/config.txt"
kernel=$(sed -n 's/^kernel=//p' "$work/config.txt")
initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$work/config.txt")
if [ -z "$kernel" ] || [ -z "$initrd" ]; then fail "config.txt on the boot partition names no kernel and initramfs"; fi
mcopy -i "$boot" "::$kernel" "$work/vmlinuz"
mcopy -i "$boot" "::$initrd" "$work/initrd.img"

console=$work/console.log
: >"$console"
say "booting (qemu-system-aarch64 -M virt, emulated: minutes); the console is in $console"
powered_on=$SECONDS
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
  -append "root=LABEL=RASPIROOT rw console=ttyAMA0 systemd.journald.forward_to_console=1 panic=-1" \
  -drive "file=$disk,format=raw,if=virtio" -nic none \
  -serial "file:$console" -monitor none </dev/null >/dev/null 2>&1 &
qemu=$!

declare -A seen=()
milestone() {  # name, pattern: note the first time the console shows it
  if [ -z "${seen[$1]:-}" ] && grep -q -- "$2" "$console"; then
    seen[$1]=$((SECONDS - powered_on))
    say "$(printf '%5ss' "${seen[$1]}") $1"
  fi
}
result=timed-out
while [ $((SECONDS - powered_on)) -lt "$timeout_s" ]; do
  if ! kill -0 "$qemu" 2>/dev/null; then
    result=exited
    break
  fi
  milestone kernel "Linux version"
  milestone systemd "systemd\[1\]: .*Detected architecture"
  milestone firstboot-env "intercom.env: installed as"
  milestone firstboot-valid "intercom.env: valid"
  milestone hub "hub listening on 127.0.0.1"
  milestone connected "status connected"
  if [ -n "${seen[connected]:-}" ]; then result=connected; break; fi
  sleep 2  # polling a log file for progress; nothing waits on this for correctness
done
kill "$qemu" 2>/dev/null || true
wait "$qemu" 2>/dev/null || true
cp "$console" build/image/smoke-console.log  # kept for reading after the fact

printf '{"image": "%s", "result": "%s", "seconds_to": {' "$(basename "$image")" "$result"
first=yes
for name in kernel systemd firstboot-env firstboot-valid hub connected; do
  [ -n "${seen[$name]:-}" ] || continue
  [ $first = yes ] || printf ', '
  printf '"%s": %s' "$name" "${seen[$name]}"
  first=no
done
printf '}}\n'
if [ "$result" != connected ]; then
  say "the unit did not reach connected ($result); the console's last lines:"
  tail -n 40 "$console" >&2
  exit 1
fi
[ -n "${seen[firstboot-env]:-}" ] || fail "connected, but first boot never said it installed intercom.env"
[ -n "${seen[firstboot-valid]:-}" ] || fail "connected, but first boot never said intercom.env is valid"

say "first boot installed intercom.env, and the unit connected $((seen[connected])) s after power-on"
