#!/usr/bin/env bash
# The image's power-cut test: boots a built image under qemu-system-aarch64 (as smoke.sh does), on
# ONE disk that every boot reuses, and cuts its power (kill -9 of qemu: no shutdown, nothing
# flushed) in the middle of a voicemail, CUTS times. The unit is a desk that hosts the hub; the
# door is deploy/image/powercut_vm.py run inside the VM over SSH (its key dropped on the boot
# partition, as a user would; SSH reaches the VM through qemu's user-mode network, forwarded from
# a port of 127.0.0.1 only, and the VM can reach nothing: restrict=on).
#
#   deploy/image/powercut.sh [--cuts N] [--work DIR] [IMAGE]
#
#   --cuts N    power cuts (default 3); the boot after the last one is checked too
#   --again     go on with the disk, keys and settings a run before left in --work (its first boot
#               done): more cuts on the same disk
#   --work DIR  where the disk, the consoles and the door's logs go (default: a new /tmp/intercom-powercut.*)
#   IMAGE       default: the newest build/image/intercom-*-arm64.img.xz
#
# Each boot must reach "status connected" (the desk's line) with the hub's database intact
# (PRAGMA integrity_check); then the door leaves a voicemail of 3 s and hangs up (it must be listed
# and play at every later boot), calls again, and the power is cut 2-7 s into that recording. The
# voicemails cut short are counted as listed or not: listing them is the hub's repair at start.
# Prints a line per step, then JSON and a summary line; exit 0 when every boot connected with an
# intact database and every finished voicemail was listed and played. It installs what it needs
# when missing (as root): qemu-system-arm, mtools, fdisk, xz-utils, openssh-client.
set -euo pipefail
cd "$(dirname "$0")/../.."
umask 077 # the env files and the SSH key it makes hold secrets

say() { printf 'powercut: %s\n' "$*"; }
fail() { printf 'powercut: %s\n' "$1" >&2; exit "${2:-1}"; }
. deploy/image/lib.sh

cuts=3
work=
again=no
while [ $# -gt 0 ]; do
  case $1 in
    --cuts) [[ ${2-} =~ ^[1-9][0-9]?$ ]] || fail "--cuts needs a number of power cuts, 1-99" 2; cuts=$2; shift 2 ;;
    --work) [ -n "${2-}" ] || fail "--work needs a directory" 2; work=$2; shift 2 ;;
    --again) again=yes; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" 2 ;;
    *) image=$1; shift ;;
  esac
done
image=${image:-$(vm_newest_image)}
if [ -z "$image" ] || [ ! -f "$image" ]; then fail "no image: build one with deploy/image/build.sh, or name it" 2; fi
boot_timeout_s=${POWERCUT_BOOT_TIMEOUT_S:-1200}
step_timeout_s=${POWERCUT_STEP_TIMEOUT_S:-600}
install_missing "${VM_TOOLS[@]}" openssh-client:ssh openssh-client:ssh-keygen

work=${work:-$(mktemp -d /tmp/intercom-powercut.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
disk=$work/disk.img
trap 'vm_kill' EXIT
say "image $image; the disk, consoles and logs in $work"
if [ "$again" = yes ]; then
  if [ ! -f "$disk" ] || [ ! -f "$work/id_ed25519" ]; then fail "--again: no disk and key of a run before in $work" 2; fi
  vm_boot_partition "$disk"
else
  vm_disk "$image" "$disk"
  rm -f "$work/id_ed25519" "$work/id_ed25519.pub" "$work/door.env" "$work"/console-*.log "$work"/check-*.json
  ssh-keygen -q -t ed25519 -N '' -C powercut -f "$work/id_ed25519"
  # TLS on loopback too: `intercom units add` makes the door's lines only for a hub that serves wss.
  vm_desk_env "$work/intercom.env" INTERCOM_HUB_TLS=on INTERCOM_RING_TIMEOUT_S=5
  mcopy -o -i "$vm_boot" "$work/intercom.env" ::intercom.env
  mcopy -o -i "$vm_boot" "$work/id_ed25519.pub" ::authorized_keys
fi
vm_kernel "$work"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nic="user,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22"
ssh_vm() {
  ssh -i "$work/id_ed25519" -p "$port" -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1 "$@"
}
vm_python() { ssh_vm /opt/intercom/current/bin/python - "$@" <deploy/image/powercut_vm.py; }
# until_true TIMEOUT_S COMMAND...: polls (the VM's SSH, a log line) until COMMAND succeeds
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] && kill -0 "$vm_pid" 2>/dev/null || return 1
    sleep 2
  done
}
logged() { grep -q "$2" "$1" 2>/dev/null; }
ssh_up() { ssh_vm true 2>/dev/null; } # refused until sshd runs: not worth a line each time

[ "$again" = yes ] || : >"$work/kept.txt"
[ "$again" = yes ] || : >"$work/cut.txt"
boots=() connected_s=() integrity=() listed=() orphans=()
result=ok
first=$(find "$work" -maxdepth 1 -name 'console-*.log' | wc -l) # boots of the runs before
for ((boot = first + 1; boot <= first + cuts + 1; boot++)); do
  console=$work/console-$boot.log
  vm_start "$disk" "$console" "$nic"
  if ! vm_wait "$console" "status connected" "$boot_timeout_s"; then
    if kill -0 "$vm_pid" 2>/dev/null; then
      say "boot $boot: no 'status connected' within $boot_timeout_s s: see $console"
    else
      say "boot $boot: qemu stopped before 'status connected': see $console and $work/qemu.log"
    fi
    result=not-connected
    break
  fi
  connected_s+=($((SECONDS - vm_powered_on)))
  boots+=("$boot")
  say "boot $boot: connected $((SECONDS - vm_powered_on)) s after power-on"
  if ! until_true "$step_timeout_s" ssh_up; then
    say "boot $boot: no SSH"
    result=no-ssh
    break
  fi
  vm_python check /var/lib/intercom >"$work/check-$boot.json"
  say "boot $boot: $(cat "$work/check-$boot.json")"
  read -r ok count orphan < <(python3 - "$work/check-$boot.json" "$work/kept.txt" <<'CHECK'
import json, sys
check = json.load(open(sys.argv[1]))
kept = set(open(sys.argv[2]).read().split())
ok = check["integrity"] == "ok" and kept <= set(check["voicemails"]) and check["playable"] >= len(kept)
print("yes" if ok else "no", len(check["voicemails"]), len(check["orphan_files"]))
CHECK
  )
  integrity+=("$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["integrity"]))' "$work/check-$boot.json")")
  listed+=("$count")
  orphans+=("$orphan")
  if [ "$ok" != yes ]; then
    say "boot $boot: the database is damaged, or a finished voicemail is missing or does not play"
    result=lost
  fi
  [ "$boot" -le $((first + cuts)) ] || break
  if [ ! -s "$work/door.env" ]; then
    ssh_vm runuser -u intercom -- intercom units add --role door --identity door --hub-url wss://127.0.0.1:8443 \
      >"$work/door.env" || fail "intercom units add failed in the VM"
    printf 'INTERCOM_PIN_FACTORY=mock\nINTERCOM_STATE_DIR=/tmp/door\nINTERCOM_UNLOCK_CODE=%s#\n' "$((RANDOM * 100 + 100000))" >>"$work/door.env"
  fi
  ssh_vm 'umask 077 && mkdir -p /tmp/door && cat >/tmp/door.env' <"$work/door.env" # /tmp: gone at each boot
  if ! vm_python door /tmp/door.env --hang-up-after 3 >"$work/door-$boot-kept.log" 2>&1; then
    say "boot $boot: the door could not leave a voicemail: $(tail -n 1 "$work/door-$boot-kept.log")"
    result=no-voicemail
    break
  fi
  sed -n 's/^kept //p' "$work/door-$boot-kept.log" >>"$work/kept.txt"
  say "boot $boot: voicemail $(tail -n 1 "$work/kept.txt") left and kept"
  vm_python door /tmp/door.env >"$work/door-$boot-cut.log" 2>&1 &
  if ! until_true "$step_timeout_s" logged "$work/door-$boot-cut.log" "^recording "; then
    say "boot $boot: the second call never reached its recording: $(tail -n 1 "$work/door-$boot-cut.log")"
    result=no-voicemail
    break
  fi
  sed -n 's/^recording //p' "$work/door-$boot-cut.log" >>"$work/cut.txt"
  into=$((2 + RANDOM % 6))
  sleep "$into" # the moment of the cut, not a wait for anything
  vm_kill
  wait || true # the door's ssh, its connection gone
  say "boot $boot: power cut $into s into voicemail $(tail -n 1 "$work/cut.txt")"
done
vm_kill
rm -f "$disk"

last=$work/check-$((first + ${#boots[@]})).json
read -r kept_listed cut_listed < <(python3 - "$last" "$work/kept.txt" "$work/cut.txt" <<'COUNT'
import json, os, sys
check = json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else {"voicemails": []}
listed = set(check["voicemails"])
print(*(len(set(open(name).read().split()) & listed) for name in sys.argv[2:]))
COUNT
)
join() { local IFS=,; echo "$*"; }
printf '{"image": "%s", "result": "%s", "boots": %d, "power_cuts": %d, "seconds_to_connected": [%s], ' \
  "$(basename "$image")" "$result" "${#boots[@]}" "$(wc -l <"$work/cut.txt")" "$(join "${connected_s[@]}")"
printf '"integrity": [%s], "voicemails_listed_per_boot": [%s], "orphan_files_per_boot": [%s], ' \
  "$(join "${integrity[@]}")" "$(join "${listed[@]}")" "$(join "${orphans[@]}")"
printf '"finished_voicemails": {"made": %d, "listed": %d}, "cut_voicemails": {"made": %d, "listed": %d}}\n' \
  "$(wc -l <"$work/kept.txt")" "$kept_listed" "$(wc -l <"$work/cut.txt")" "$cut_listed"
say "$result: ${#boots[@]} boots, $(wc -l <"$work/cut.txt") power cuts mid-voicemail;" \
  "connected after $(join "${connected_s[@]}") s; finished voicemails listed $kept_listed/$(wc -l <"$work/kept.txt")," \
  "cut ones $cut_listed/$(wc -l <"$work/cut.txt"); logs in $work"
[ "$result" = ok ] && [ "${#boots[@]}" -eq $((cuts + 1)) ]
