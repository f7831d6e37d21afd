# shellcheck shell=bash
# Shell shared by the image's scripts (build.sh, smoke.sh, powercut.sh): sourced, not run.

# install_missing PACKAGE:COMMAND...: apt-get installs the packages whose command is not on PATH.
install_missing() {
  local pair need=()
  for pair in "$@"; do
    command -v "${pair#*:}" >/dev/null || need+=("${pair%%:*}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || fail "missing: ${need[*]}: run as root to have them installed, or apt-get install them" 2
  printf '%s: installing what it needs: %s\n' "$(basename "$0" .sh)" "${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    fail "apt-get install ${need[*]} failed"
}

# -- booting a built image under qemu (smoke.sh, powercut.sh) -------------------------------------
# The newest image build.sh made in build/image (empty: none).
vm_newest_image() {
  find build/image -maxdepth 1 -name 'intercom-*-arm64.img.xz' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-
}

# The system packages a boot needs (package:command), for install_missing.
# shellcheck disable=SC2034 # used by the scripts that source this file
VM_TOOLS=(qemu-system-arm:qemu-system-aarch64 mtools:mcopy fdisk:sfdisk xz-utils:xz)

# vm_disk IMAGE DISK: the image (.img or .img.xz) as a raw disk, 1 GiB bigger, for first boot to grow
# the data partition into; sets vm_boot (vm_boot_partition).
vm_disk() {
  case $1 in
    *.xz) xz -dc "$1" >"$2" ;;
    *) cp --sparse=always "$1" "$2" ;;
  esac
  truncate -s +1G "$2"
  vm_boot_partition "$2"
}

# vm_boot_partition DISK: sets vm_boot, DISK's boot partition as mtools addresses it.
vm_boot_partition() {
  local start
  start=$(sfdisk --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
  vm_boot="$1@@$((start * 512))"
}

# vm_desk_env FILE [LINE...]: what a user drops on the card: the settings of a desk that hosts the
# hub on loopback, on mock pins (a VM has no GPIO), with a fresh access key; LINEs are added.
vm_desk_env() {
  local file=$1
  shift
  {
    echo INTERCOM_ROLE=desk
    echo INTERCOM_IDENTITY=desk
    echo INTERCOM_HUB_EMBEDDED=true
    echo INTERCOM_HUB_LISTEN=127.0.0.1
    echo "INTERCOM_ACCESS_KEY_ID=$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    echo "INTERCOM_ACCESS_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"
    echo "INTERCOM_UNLOCK_CODE=1234#"
    echo INTERCOM_PIN_FACTORY=mock
    [ $# -eq 0 ] || printf '%s\n' "$@"
  } >"$file"
  chmod 600 "$file"
}

# vm_kernel DIR: the kernel and initrd the Pi's firmware would start (config.txt names them) into
# DIR/vmlinuz and DIR/initrd.img, and vm_append: the image's own cmdline.txt (a read-only root,
# fsck.repair=yes) with the Pi's consoles swapped for qemu's serial port.
vm_kernel() {
  local kernel initrd
  vm_dir=$1
  mtype -i "$vm_boot" ::config.txt >"$1/config.txt"
  kernel=$(sed -n 's/^kernel=//p' "$1/config.txt")
  initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$1/config.txt")
  if [ -z "$kernel" ] || [ -z "$initrd" ]; then fail "config.txt on the boot partition names no kernel and initramfs"; fi
  mcopy -o -i "$vm_boot" "::$kernel" "$1/vmlinuz"
  mcopy -o -i "$vm_boot" "::$initrd" "$1/initrd.img"
  vm_append="$(mtype -i "$vm_boot" ::cmdline.txt | tr -d '\r' | tr ' ' '\n' | grep -v '^console=' | grep . | paste -sd' ')"
  vm_append+=" console=ttyAMA0 systemd.journald.forward_to_console=1 panic=-1"
  # Emulated arm64 on a shared host runs many times slower than a Pi: the unit's start-up (90 s by
  # default) and its watchdog (20 s) are for a Pi, not for this.
  vm_append+=" systemd.default_timeout_start_sec=900 systemd.service_watchdogs=0"
}

# vm_start DISK CONSOLE NETDEV: powers the VM on in the background (vm_pid), its serial console
# written to CONSOLE and qemu's own messages to vm_dir/qemu.log; NETDEV is a -netdev for a virtio
# network card (none: no network at all). virtio-net-device (MMIO): the PCI card wants a boot ROM.
vm_start() {
  local network=(-nic none)
  [ "$3" = none ] || network=(-netdev "$3,id=net0" -device "virtio-net-device,netdev=net0")
  : >"$2"
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$vm_dir/vmlinuz" -initrd "$vm_dir/initrd.img" -append "$vm_append" \
    -drive "file=$1,format=raw,if=virtio" "${network[@]}" \
    -serial "file:$2" -monitor none </dev/null >/dev/null 2>>"$vm_dir/qemu.log" &
  vm_pid=$!
  vm_powered_on=$SECONDS
}

# vm_wait CONSOLE PATTERN TIMEOUT_S: true once the console shows PATTERN; false when the VM is off
# or the time is up. It polls the console file: a log file has nothing to wait on.
vm_wait() {
  while [ $((SECONDS - vm_powered_on)) -lt "$3" ]; do
    grep -q -- "$2" "$1" && return 0
    kill -0 "$vm_pid" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

# The power cut: no shutdown, no sync, nothing flushed.
vm_kill() {
  [ -n "${vm_pid:-}" ] || return 0
  kill -9 "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=
}
