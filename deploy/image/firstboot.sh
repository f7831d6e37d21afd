#!/usr/bin/env bash
# intercom-firstboot: at every boot, takes what the user dropped on the SD card's boot partition
# (/boot/firmware, FAT: anyone holding the card can read it) into place with safe permissions, and
# deletes it from there, then grows the data partition (or, on an image without one, the root) to
# the card once.
#
#   intercom.env          -> /etc/intercom/intercom.env (600, owner intercom; the old one is kept as
#                            intercom.env.previous), checked with `intercom config check` as intercom
#   authorized_keys       -> /root/.ssh/authorized_keys (600); sshd key-only, ssh enabled. Without
#                            it SSH stays as it is: the image ships it disabled, root has no password
#   wifi.conf             -> /etc/wpa_supplicant/wpa_supplicant-wlan0.conf (600) made from the lines
#                            ssid=..., psk=... (none: an open network) and country=XX (optional);
#   or wpa_supplicant.conf   the same file as it is (it wins over a wifi.conf). Then wlan0 by DHCP
#                            (/etc/systemd/network/30-wlan0.network; the image's 20-wired.network
#                            does eth0) and wpa_supplicant@wlan0 and systemd-networkd enabled
#   hostname              -> /etc/hostname and the 127.0.1.1 line of /etc/hosts
#
# And, whether a file was dropped or not, the config.txt line by which the firmware drives the door
# strike's relay pin to its inactive level from power-on follows the env file's INTERCOM_RELAY_PIN
# and INTERCOM_RELAY_ACTIVE_LOW (the line after STRIKE_MARK, there and in
# /etc/default/raspi-firmware-custom, from which a kernel update writes config.txt again). A change
# counts from the next boot: this boot, the pin is driven off at once by intercom-strike-off.
#
# Windows line endings (and a UTF-8 byte order mark) are dropped. A file that is refused (a
# wifi.conf without ssid, a bad hostname) is deleted all the same, so that no password stays on the
# card, and the reason is logged. Each action is one line on stdout (the journal), and the lines of
# a boot that found files are also written to intercom-firstboot.txt on the boot partition: a unit
# that is not on the network yet can only answer there. It exits 1 when something was refused or
# failed, and carries on with the other files first.
#
# The image's root is read-only (deploy/image/data-partition.sh): the script makes it writable only
# when it has something to write there, syncs, and makes it read-only again before it ends; on its
# first boot it also keeps the machine id systemd made up for it (else a new one every boot).
#
# The image build installs this script as /usr/local/sbin/intercom-firstboot and enables
# deploy/image/intercom-firstboot.service (Before=intercom.service). It expects the unit installed
# by deploy/install.sh (the user intercom, /opt/intercom), systemd-networkd, wpasupplicant,
# openssh-server (disabled, and without host keys: each card makes its own here) and, to grow the
# root partition, growpart (cloud-guest-utils) or sfdisk (fdisk), partx and resize2fs.
#
# Environment, for tests:
#   FIRSTBOOT_ROOT        every path below it (default /). Not /: no systemctl or hostnamectl,
#                         and the root filesystem is not grown
#   INTERCOM_BIN          the intercom command (default /opt/intercom/current/bin/intercom, install.sh's)
#   INTERCOM_STRIKE_OFF   deploy/strike-off.sh (default /usr/local/sbin/intercom-strike-off, install.sh's)
#   FIRSTBOOT_TEST_EXPAND yes: grow the root filesystem under FIRSTBOOT_ROOT too. Only for tests
#                         that put fake findmnt, lsblk, sfdisk, partx and resize2fs first on PATH
#   FIRSTBOOT_GROW        the mount point whose filesystem grows (default: /data where it is a mount
#                         point, as on the image, else /)
set -uo pipefail
export LC_ALL=C # lengths in bytes, [a-z] only ASCII letters; Python runs in UTF-8 mode under C

ROOT=${FIRSTBOOT_ROOT:-/}
R=${ROOT%/}                           # "" for /: every path is "$R/etc/..."
BOOT=/boot/firmware
INTERCOM_BIN=${INTERCOM_BIN:-/opt/intercom/current/bin/intercom}
SERVICE_USER=intercom
ENV_FILE=/etc/intercom/intercom.env
WPA_FILE=/etc/wpa_supplicant/wpa_supplicant-wlan0.conf
WLAN_NETWORK=/etc/systemd/network/30-wlan0.network
SSHD_DROP_IN=/etc/ssh/sshd_config.d/intercom.conf
STATE_DIR=/var/lib/intercom-firstboot
REPORT=intercom-firstboot.txt
STRIKE_OFF=${INTERCOM_STRIKE_OFF:-/usr/local/sbin/intercom-strike-off}
STRIKE_MARK="# The door strike's relay off from power-on (intercom-firstboot keeps the next line in step)"
FIRMWARE_CUSTOM=/etc/default/raspi-firmware-custom # raspi-firmware appends it to config.txt

GROW=${FIRSTBOOT_GROW:-/}
if [ -z "${FIRSTBOOT_GROW:-}" ] && [ -z "${FIRSTBOOT_ROOT:-}" ] && mountpoint -q /data; then GROW=/data; fi
GROWN=$([ "$GROW" = / ] && echo root || echo data) # in what it says

problems=0
handled=0 # files found on the boot partition this boot
remounted=no # the read-only root made writable by writable_root
lines=()
say() { printf 'intercom-firstboot: %s\n' "$*"; lines+=("$*"); }
problem() { problems=$((problems + 1)); say "$@"; }
live() { [ -z "$R" ]; }
systemd_running() { live && [ -d /run/systemd/system ]; }

# The live root, writable from here to the end of the script (a no-op when it is already).
writable_root() {
  live || return 0
  [ "$remounted" = no ] || return 0
  findmnt -no OPTIONS / | tr , '\n' | grep -qx ro || return 0
  if mount -o remount,rw /; then
    remounted=yes
  else
    problem "could not make the read-only root writable (mount -o remount,rw /)"
  fi
}

# Back to read-only, with what was written on the card first.
readonly_root() {
  [ "$remounted" = yes ] || return 0
  sync -f /
  if mount -o remount,ro /; then
    say "root filesystem: written, synced, read-only again"
  else
    problem "root filesystem: could not make it read-only again: it stays writable until the next boot"
  fi
}

# systemd makes up a machine id each boot while the root is read-only: keep the first one.
keep_machine_id() {
  live && mountpoint -q /etc/machine-id || return 0
  writable_root
  if systemd-machine-id-setup --commit >/dev/null 2>&1; then
    say "machine id: $(cat /etc/machine-id) kept"
  else
    problem "machine id: systemd-machine-id-setup --commit failed"
  fi
}

# A file written on Windows: no byte order mark, LF line ends.
normalise() { sed -e '1s/^\xEF\xBB\xBF//' -e 's/\r$//' -- "$1"; }

# found NAME: the boot partition has NAME; says so when it has NAME.txt instead (Windows' doing).
found() {
  if [ -f "$R$BOOT/$1" ]; then
    handled=$((handled + 1))
    writable_root # what is found is written on the root
    return 0
  fi
  if [ -f "$R$BOOT/$1.txt" ]; then
    handled=$((handled + 1))
    problem "$1: found $1.txt instead, left as it is: rename it to $1 (Windows may hide the .txt)"
  fi
  return 1
}

# Delete a file from the boot partition, for good: it may hold a secret.
consume() { rm -f -- "$R$BOOT/$1"; }

# write_file DEST UID GID MODE < content: replaced in one rename, never readable by others on the way
# (mktemp makes the file 600), and on the card before the original leaves the boot partition.
write_file() {
  local dest=$1 tmp
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX") || return 1
  if cat >"$tmp" && chown "$2:$3" "$tmp" && chmod "$4" "$tmp" && sync -- "$tmp" && mv -f -- "$tmp" "$dest"; then
    return 0
  fi
  rm -f -- "$tmp"
  return 1
}

# The service user's ids, from the tree's own passwd and group: the same code path in tests.
uid='' gid='' groups=''
service_account() {
  uid=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3; exit }' "$R/etc/passwd" 2>/dev/null)
  gid=$(awk -F: -v g="$SERVICE_USER" '$1 == g { print $3; exit }' "$R/etc/group" 2>/dev/null)
  groups=$(awk -F: -v u="$SERVICE_USER" \
    '$1 == u || index("," $4 ",", "," u ",") { printf "%s%s", sep, $3; sep = "," }' "$R/etc/group" 2>/dev/null)
  [ -n "$uid" ] && [ -n "$gid" ]
}

# Run a command as the service user, who must be able to read the env file as the unit does. setpriv
# takes the ids above, where runuser would look the name up in the running system's passwd; not
# root (a test as a plain user): as is.
as_service_user() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  else
    setpriv --reuid="$uid" --regid="$gid" --groups="${groups:-$gid}" -- "$@"
  fi
}

systemctl_now() {
  if systemd_running; then
    # enable reloads systemd twice and runs the SysV helper: over 30 s on a slow card (or emulated)
    timeout 180 systemctl "$@" || problem "systemctl $* failed (exit status $?)"
  else
    say "not running under systemd: skipped systemctl $*"
  fi
}

# -- intercom.env ---------------------------------------------------------------------------------
take_env_file() {
  local dest=$R$ENV_FILE crlf='' kept=''
  if ! found intercom.env; then
    say "intercom.env: none on the boot partition, $ENV_FILE left as it is"
    return
  fi
  if ! service_account; then
    problem "intercom.env: left on the boot partition: no user $SERVICE_USER in /etc/passwd and /etc/group" \
      "(deploy/install.sh makes it)"
    return
  fi
  grep -q $'\r' "$R$BOOT/intercom.env" && crlf=" (Windows line endings made LF)"
  [ -d "$(dirname "$dest")" ] || install -d -m 755 "$(dirname "$dest")"
  # A hard link keeps the old file as it is while the new one takes its name.
  [ -e "$dest" ] && ln -f -- "$dest" "$dest.previous" && kept="; the one before is $ENV_FILE.previous"
  if ! normalise "$R$BOOT/intercom.env" | write_file "$dest" "$uid" "$gid" 600; then
    problem "intercom.env: could not write $ENV_FILE: left on the boot partition"
    return
  fi
  [ -z "$kept" ] || chmod 600 "$dest.previous"
  consume intercom.env
  say "intercom.env: installed as $ENV_FILE (600, owner $SERVICE_USER)$crlf$kept"
  check_env_file
}

# `intercom config check` as the service user: its one line names what is wrong.
check_env_file() {
  local output status role identity
  if [ ! -x "$INTERCOM_BIN" ]; then
    problem "intercom.env: not checked: no $INTERCOM_BIN"
    return
  fi
  output=$(as_service_user timeout 120 "$INTERCOM_BIN" config check --env-file "$R$ENV_FILE" 2>&1)
  status=$?
  if [ "$status" -eq 0 ]; then
    role=$(sed -n 's/^INTERCOM_ROLE=//p' <<<"$output")
    identity=$(sed -n 's/^INTERCOM_IDENTITY=//p' <<<"$output")
    say "intercom.env: valid (intercom config check): $role unit '$identity'"
  elif [ "$status" -eq 2 ]; then
    problem "intercom.env: installed, but not valid: $(grep -v '^[[:space:]]*$' <<<"$output" | tail -n 1 |
      sed 's/^intercom config: //') (the unit waits with its status light blinking fast until it is fixed)"
  else
    problem "intercom.env: intercom config check failed (exit status $status):"
    while IFS= read -r line; do say "  $line"; done <<<"$output"
  fi
}

# -- authorized_keys ------------------------------------------------------------------------------
take_authorized_keys() {
  local keys
  if ! found authorized_keys; then
    say "authorized_keys: none on the boot partition, SSH left as it is"
    return
  fi
  keys=$(normalise "$R$BOOT/authorized_keys" | grep -c '^[[:space:]]*[^#[:space:]]')
  if [ "$keys" -eq 0 ]; then
    consume authorized_keys
    problem "authorized_keys: refused and deleted: it holds no key (one per line, as in ~/.ssh/id_ed25519.pub)"
    return
  fi
  mkdir -p "$R/root/.ssh" "$(dirname "$R$SSHD_DROP_IN")"
  chown 0:0 "$R/root/.ssh" && chmod 700 "$R/root/.ssh"
  if ! normalise "$R$BOOT/authorized_keys" | write_file "$R/root/.ssh/authorized_keys" 0 0 600; then
    problem "authorized_keys: could not write /root/.ssh/authorized_keys: left on the boot partition"
    return
  fi
  consume authorized_keys
  write_file "$R$SSHD_DROP_IN" 0 0 644 <<'EOF' || problem "authorized_keys: could not write $SSHD_DROP_IN"
# From intercom-firstboot: keys only (root has no password; /root/.ssh/authorized_keys).
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
  say "authorized_keys: installed as /root/.ssh/authorized_keys ($keys key(s)); sshd takes keys only ($SSHD_DROP_IN)"
  if ! compgen -G "$R/etc/ssh/ssh_host_*_key" >/dev/null; then
    if ssh-keygen -A ${R:+-f "$R"} >/dev/null; then
      say "made this unit's SSH host keys"
    else
      problem "ssh-keygen -A failed: sshd will not start without host keys"
    fi
  fi
  systemctl_now enable --now --no-block ssh.service
}

# -- wifi -----------------------------------------------------------------------------------------
ssid='' psk='' country='' why=''
# Reads wifi.conf into ssid, psk and country; false, and why set, when it cannot work.
read_wifi_conf() {
  local line key value n=0 have_ssid=no
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line#"${line%%[![:space:]]*}"}
    case $line in '' | '#'*) continue ;; esac
    if [[ $line != *=* ]]; then
      why="line $n is not name=value"
      return 1
    fi
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    value=${line#*=}
    value=${value#"${value%%[![:space:]]*}"}
    value=${value%"${value##*[![:space:]]}"}
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
    case ${key,,} in
      ssid) ssid=$value have_ssid=yes ;;
      psk | password) psk=$value ;;
      country) country=${value^^} ;;
      *) say "wifi.conf: line $n: '$key' ignored (it takes ssid, psk and country)" ;;
    esac
  done < <(normalise "$R$BOOT/wifi.conf")
  if [ "$have_ssid" = no ] || [ -z "$ssid" ]; then
    why="no ssid= line (wifi.conf takes ssid=, psk= and country=)"
  elif [ "${#ssid}" -gt 32 ] || [[ $ssid == *[[:cntrl:]]* ]]; then
    why="the ssid must be 1-32 bytes without control characters"
  elif [ -n "$psk" ] && ! [[ $psk =~ ^[\ -~]{8,63}$ || $psk =~ ^[0-9A-Fa-f]{64}$ ]]; then
    why="the psk must be 8-63 printable ASCII characters, or 64 hex digits (empty: an open network)"
  elif [ -n "$country" ] && ! [[ $country =~ ^[A-Z]{2}$ ]]; then
    why="country must be two letters (ISO 3166), not '$country'"
  else
    return 0
  fi
  return 1
}

# wpa_supplicant reads a quoted value up to the line's last '"', so quotes inside need no escape.
wpa_conf() {
  echo "# From wifi.conf on the boot partition (intercom-firstboot)."
  echo "ctrl_interface=/run/wpa_supplicant"
  [ -z "$country" ] || echo "country=$country"
  echo "network={"
  printf '\tssid="%s"\n\tscan_ssid=1\n' "$ssid"
  if [ -z "$psk" ]; then
    printf '\tkey_mgmt=NONE\n'
  elif [[ $psk =~ ^[0-9A-Fa-f]{64}$ ]]; then
    printf '\tpsk=%s\n' "$psk" # a raw key: unquoted
  else
    printf '\tpsk="%s"\n' "$psk"
  fi
  echo "}"
}

take_wifi() {
  local from
  if found wpa_supplicant.conf; then
    if found wifi.conf; then
      consume wifi.conf
      problem "wifi.conf: ignored and deleted: wpa_supplicant.conf is there too, and wins"
    fi
    from=wpa_supplicant.conf
    mkdir -p "$(dirname "$R$WPA_FILE")"
    normalise "$R$BOOT/$from" | write_file "$R$WPA_FILE" 0 0 600 || from=
  elif found wifi.conf; then
    if ! read_wifi_conf; then
      consume wifi.conf
      problem "wifi.conf: refused and deleted: $why"
      return
    fi
    from=wifi.conf
    mkdir -p "$(dirname "$R$WPA_FILE")"
    wpa_conf | write_file "$R$WPA_FILE" 0 0 600 || from=
  else
    say "wifi.conf, wpa_supplicant.conf: none on the boot partition, wifi left as it is"
    return
  fi
  if [ -z "$from" ]; then
    problem "wifi: could not write $WPA_FILE: left on the boot partition"
    return
  fi
  consume "$from"
  mkdir -p "$(dirname "$R$WLAN_NETWORK")"
  write_file "$R$WLAN_NETWORK" 0 0 644 <<'EOF' || problem "wifi: could not write $WLAN_NETWORK"
# From intercom-firstboot: wlan0 by DHCP, as 20-wired.network does eth0.
[Match]
Name=wlan0

[Network]
DHCP=yes
EOF
  [ -z "$ssid" ] || from="$from (network '$ssid')"
  say "$from: installed as $WPA_FILE (600); wlan0 by DHCP ($WLAN_NETWORK)"
  systemctl_now enable wpa_supplicant@wlan0.service systemd-networkd.service
  systemctl_now restart --no-block wpa_supplicant@wlan0.service # it may have read the old file already
  systemctl_now reload-or-restart --no-block systemd-networkd.service
}

# -- hostname -------------------------------------------------------------------------------------
take_hostname() {
  local name
  if ! found hostname; then
    say "hostname: none on the boot partition, $(cat "$R/etc/hostname" 2>/dev/null || echo 'the hostname') left as it is"
    return
  fi
  name=$(normalise "$R$BOOT/hostname" | grep -m 1 -v '^[[:space:]]*$')
  name=${name#"${name%%[![:space:]]*}"}
  name=${name%"${name##*[![:space:]]}"}
  name=${name,,}
  consume hostname
  if ! [[ $name =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
    problem "hostname: refused and deleted: '$name' is not 1-63 of a-z, 0-9 and - (not first or last)"
    return
  fi
  if ! echo "$name" | write_file "$R/etc/hostname" 0 0 644; then
    problem "hostname: could not write /etc/hostname"
    return
  fi
  # sshd, sudo and the rest look their own name up in /etc/hosts.
  if ! awk -v name="$name" '
      /^127\.0\.1\.1[[:space:]]/ { if (!done) print "127.0.1.1\t" name; done = 1; next }
      { print }
      END { if (!done) print "127.0.1.1\t" name }' "$R/etc/hosts" 2>/dev/null | write_file "$R/etc/hosts" 0 0 644; then
    problem "hostname: could not update /etc/hosts"
  fi
  say "hostname: now $name (/etc/hostname, /etc/hosts)"
  if systemd_running; then
    timeout 30 hostnamectl set-hostname "$name" || problem "hostnamectl set-hostname $name failed"
  fi
}

# -- the relay's line in config.txt ---------------------------------------------------------------
# The line after STRIKE_MARK (deploy/image/customize-rootfs.sh puts both there) becomes the one
# the env file asks for, or goes when there is no relay. A file without the mark is not ours to
# change. config.txt is on FAT: written only when it changes, through a rename.
keep_strike_line() {
  local wanted file new line changed=()
  [ -f "$R$ENV_FILE" ] || return 0
  if ! wanted=$("$STRIKE_OFF" --env-file "$R$ENV_FILE" --config-line 2>&1); then
    say "relay: the boot line left as it is: ${wanted#intercom-strike-off: }"
    return
  fi
  for file in "$R$FIRMWARE_CUSTOM" "$R$BOOT/config.txt"; do
    grep -qxF -- "$STRIKE_MARK" "$file" 2>/dev/null || continue
    new=$(awk -v mark="$STRIKE_MARK" -v wanted="$wanted" '
      after { after = 0; if ($0 ~ /^gpio=/) next }
      { print }
      $0 == mark { if (wanted != "") print wanted; after = 1 }' "$file")
    [ "$new" != "$(cat -- "$file")" ] || continue
    writable_root
    if printf '%s\n' "$new" >"$file.new" && sync -- "$file.new" && mv -f -- "$file.new" "$file"; then
      changed+=("${file#"$R"}")
    else
      rm -f -- "$file.new"
      problem "relay: could not write ${file#"$R"}"
    fi
  done
  [ ${#changed[@]} -gt 0 ] || return 0
  say "relay: ${changed[*]} now say '${wanted:-no relay line}' (the firmware reads it at the next boot)"
  if live; then
    while IFS= read -r line; do say "relay: ${line#intercom-strike-off: }"; done < <("$STRIKE_OFF" --env-file "$ENV_FILE" 2>&1)
  fi
}

# -- growing to the card --------------------------------------------------------------------------
# Once: the last partition (the data partition, or the root of an image without one) to the end of
# the card, then its ext4 to fill it (online).
grow_to_card() {
  local marker=$R$STATE_DIR/expanded source fstype part disk number output status
  live || [ "${FIRSTBOOT_TEST_EXPAND:-}" = yes ] || return 0
  [ -e "$marker" ] && return 0
  source=$(findmnt -no SOURCE "$GROW") fstype=$(findmnt -no FSTYPE "$GROW")
  source=${source%%\[*} # btrfs and the like: /dev/sda2[/@]
  part=${source##*/}
  disk=$(lsblk -no PKNAME "$source" 2>/dev/null | head -n 1 | tr -d '[:space:]')
  number=$(cat "$R/sys/class/block/$part/partition" 2>/dev/null)
  if [[ $fstype != ext[234] ]]; then
    say "$GROWN filesystem: $fstype on $source, not ext4: not grown"
  elif [ -z "$disk" ] || [ -z "$number" ]; then
    say "$GROWN filesystem: $source is not a partition of a disk: nothing to grow"
  else
    if command -v growpart >/dev/null; then
      output=$(growpart "/dev/$disk" "$number" 2>&1)
      status=$?
      [[ $status -eq 1 && $output == NOCHANGE* ]] && status=0 # already to the end
    else
      # --no-reread: the disk is in use; sfdisk resizes the partition in the kernel by itself (BLKPG),
      # and partx below makes sure. It moves a GPT's backup header to the end of the card too.
      output=$(echo ', +' | sfdisk --quiet --no-reread -N "$number" "/dev/$disk" 2>&1)
      status=$?
    fi
    if [ "$status" -ne 0 ]; then
      problem "$GROWN filesystem: could not grow partition $number of /dev/$disk: ${output//$'\n'/; }"
      return
    fi
    partx -u --nr "$number" "/dev/$disk" 2>/dev/null
    if ! output=$(resize2fs "$source" 2>&1); then
      problem "$GROWN filesystem: resize2fs $source failed: ${output//$'\n'/; }"
      return
    fi
    say "$GROWN filesystem: grew partition $number of /dev/$disk to the end of the card, and $source to fill it"
  fi
  mkdir -p "$(dirname "$marker")" && touch "$marker"
}

keep_machine_id
take_env_file
take_authorized_keys
take_wifi
take_hostname
keep_strike_line
grow_to_card
readonly_root
say "done$([ "$problems" -eq 0 ] || echo ", $problems problem(s): see above")"
if [ "$handled" -gt 0 ]; then
  # Only boots that found files rewrite it: the FAT partition is left alone otherwise.
  { echo "intercom-firstboot, $(date '+%Y-%m-%d %H:%M:%S %Z'):"; printf '%s\n' "${lines[@]}"; } |
    sed 's/$/\r/' >"$R$BOOT/$REPORT" 2>/dev/null
  sync -f "$R$BOOT/" 2>/dev/null
fi
[ "$problems" -eq 0 ]
