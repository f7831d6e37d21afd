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
# console is kept in build/image/smoke-console.log. It installs what it needs when missing (as
# root): qemu-system-arm, mtools, fdisk, xz-utils.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'smoke: %s\n' "$*"; }
fail() { printf 'smoke: %s\n' "$1" >&2; exit "${2:-1}"; }
. deploy/image/lib.sh

image=${1:-$(vm_newest_image)}
if [ -z "$image" ] || [ ! -f "$image" ]; then fail "no image: build one with deploy/image/build.sh, or name it" 2; fi
timeout_s=${SMOKE_TIMEOUT_S:-1200}
install_missing "${VM_TOOLS[@]}"

work=$(mktemp -d /tmp/intercom-smoke.XXXXXX)
trap 'vm_kill; rm -rf "$work"' EXIT
disk=$work/disk.img
say "image $image"
vm_disk "$image" "$disk"

vm_desk_env "$work/intercom.env"
mcopy -o -i "$vm_boot" "$work/intercom.env" ::intercom.env
vm_kernel "$work"

console=$work/console.log
: >"$console"
say "booting (qemu-system-aarch64 -M virt, emulated: minutes); the console is in $console"
vm_start "$disk" "$console" none
powered_on=$vm_powered_on

declare -A seen=()
milestone() {  # name, pattern: note the first time the console shows it
  if [ -z "${seen[$1]:-}" ] && grep -q -- "$2" "$console"; then
    seen[$1]=$((SECONDS - powered_on))
    say "$(printf '%5ss' "${seen[$1]}") $1"
  fi
}
result=timed-out
while [ $((SECONDS - powered_on)) -lt "$timeout_s" ]; do
  if ! kill -0 "$vm_pid" 2>/dev/null; then
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
vm_kill
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
