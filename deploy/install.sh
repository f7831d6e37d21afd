#!/usr/bin/env bash
# Installs an intercom unit on Raspberry Pi OS or Debian 12 (arm64 or amd64): system packages,
# the `intercom` user, the package, the env file and the systemd service. Safe to run again: what
# is in place is left alone, and an existing /etc/intercom/intercom.env is never touched.
#
# It also upgrades a unit in place. Each version goes in a virtual environment of its own under
# /opt/intercom/releases, and /opt/intercom/current links to the one the service runs: the new one
# is built while the old one runs, must accept the settings, and must pass a health check once the
# service has restarted on it, or the unit goes back to the old one (deploy/release.sh).
#
#   sudo deploy/install.sh [--source DIR] [--wheel FILE] [--wheelhouse DIR] [--role door|desk]
#                          [--identity NAME] [--no-start] [--health-timeout S]
#
#   --source DIR      the checkout to install (default: the one this script is in)
#   --wheel FILE      install this built wheel (pip wheel --no-deps .) instead; the service file and
#                     the env example still come from the checkout, which must be of its version
#   --wheelhouse DIR  pip installs from this directory only, not from its index: every wheel needed
#                     (and setuptools, to build a checkout)
#                     Either way pip installs the versions in the checkout's deploy/constraints.txt.
#   --role, --identity
#                     written into a new env file (an existing one is kept as it is)
#   --no-start        switch to the new version but do not start or restart the service: for
#                     building an SD-card image in a chroot, where `systemctl enable` works and
#                     starting cannot
#   --health-timeout S
#                     how long the restarted service has to become active (default: 60)
set -euo pipefail

PREFIX=/opt/intercom                  # releases/VERSION-FINGERPRINT, and current: the one in use
VENV=$PREFIX/current                  # deploy/intercom.service runs $VENV/bin/intercom
ENV_DIR=/etc/intercom
ENV_FILE=$ENV_DIR/intercom.env
DATA_DIR=/var/lib/intercom            # the user's home and the service's StateDirectory
UNIT=/etc/systemd/system/intercom.service
UDEV_RULE=/etc/udev/rules.d/60-intercom-gpio.rules
STRIKE_OFF=/usr/local/sbin/intercom-strike-off  # the service's ExecStopPost: the relay off
PYTHON=/usr/bin/python3               # the system's Python, whatever else is first on PATH

say() { printf 'install: %s\n' "$*"; }
fail() { printf 'install: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

invocation="$0${*:+ $*}"
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$(dirname "$0")/.." && pwd)
role=
identity=
start=yes
wheel=
wheelhouse=
health_timeout=60
while [ $# -gt 0 ]; do
  case $1 in
    --source) [ $# -ge 2 ] || fail "--source needs a directory" 2; source_dir=$2; shift 2 ;;
    --wheel) [ $# -ge 2 ] || fail "--wheel needs a file" 2; wheel=$2; shift 2 ;;
    --wheelhouse) [ $# -ge 2 ] || fail "--wheelhouse needs a directory" 2; wheelhouse=$2; shift 2 ;;
    --health-timeout) [ $# -ge 2 ] || fail "--health-timeout needs seconds" 2; health_timeout=$2; shift 2 ;;
    --role) [ $# -ge 2 ] || fail "--role needs door or desk" 2; role=$2; shift 2 ;;
    --identity) [ $# -ge 2 ] || fail "--identity needs a name" 2; identity=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    -h | --help) usage; exit 0 ;;
    *) fail "unknown option $1 (see --help)" 2 ;;
  esac
done
case $role in '' | door | desk) ;; *) fail "--role must be door or desk, not '$role'" 2 ;; esac
if [ -n "$identity" ] && ! [[ $identity =~ ^[A-Za-z0-9_]{1,30}$ ]]; then
  fail "--identity must be 1-30 of A-Z, a-z, 0-9 and _, not '$identity'" 2
fi
if [ ! -f "$source_dir/pyproject.toml" ] || [ ! -f "$source_dir/deploy/intercom.service" ]; then
  fail "$source_dir is not an intercom checkout (no pyproject.toml and deploy/intercom.service)" 2
fi
source_dir=$(cd "$source_dir" && pwd)
[[ $health_timeout =~ ^[0-9]+(\.[0-9]+)?$ ]] || fail "--health-timeout takes seconds, not '$health_timeout'" 2
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || fail "--wheelhouse $wheelhouse is not a directory" 2
[ -z "$wheelhouse" ] || wheelhouse=$(cd "$wheelhouse" && pwd)
if [ -n "$wheel" ]; then
  [ -f "$wheel" ] || fail "no wheel $wheel" 2
  wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
  [[ $(basename "$wheel") =~ ^intercom-([^-]+)-.+\.whl$ ]] || fail "$wheel is not an intercom wheel" 2
  # The unit file and the env example come from the checkout: they must be the wheel's own.
  checkout_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$source_dir/pyproject.toml" | head -n 1)
  [ "${BASH_REMATCH[1]}" = "$checkout_version" ] ||
    fail "the wheel is intercom ${BASH_REMATCH[1]} and $source_dir is $checkout_version (--source a checkout of ${BASH_REMATCH[1]})" 2
fi
[ "$(id -u)" -eq 0 ] || fail "run it as root: sudo $invocation"

done_list=()
did() { done_list+=("$*"); say "$*"; }
systemd_running() { [ -d /run/systemd/system ]; }
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

# -- system packages ----------------------------------------------------------------------------
# python3-venv: the virtual environment; libportaudio2: sounddevice's sound I/O; alsa-utils:
# alsamixer and arecord, to set and check the USB card's levels; espeak-ng: the hub's spoken
# prompts (call flows' ``say``), on the unit that hosts it; gpiod: gpioset, which drives the door
# strike's relay off after the unit stops (deploy/strike-off.sh) where there is no pinctrl.
missing=()
for package in python3-venv libportaudio2 alsa-utils espeak-ng gpiod; do
  installed "$package" || missing+=("$package")
done
export DEBIAN_FRONTEND=noninteractive
[ ${#missing[@]} -eq 0 ] || apt-get update -qq
# lgpio is gpiozero's first choice of pin library, and the only one that drives a Pi 5's GPIO
# (through /dev/gpiochip*). Raspberry Pi OS packages it; Debian's own archive does not.
lgpio=yes
if ! installed python3-lgpio; then
  if apt-cache policy python3-lgpio 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    missing+=(python3-lgpio)
  else
    lgpio=no
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  did "installed system packages: ${missing[*]}"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "$PYTHON is older than 3.11"

# -- the user and its groups ------------------------------------------------------------------
# The service runs as `intercom` with the groups gpio (the GPIO chips) and audio (the sound card).
# Raspberry Pi OS has a gpio group, and udev rules that give it the GPIO devices; plain Debian
# has neither.
for group in gpio audio; do
  getent group "$group" >/dev/null || { groupadd --system "$group"; did "created the group $group"; }
done
if ! grep -qs 'GROUP="gpio"' /etc/udev/rules.d/*.rules /lib/udev/rules.d/*.rules /usr/lib/udev/rules.d/*.rules; then
  install -d -m 755 "$(dirname "$UDEV_RULE")"
  cat >"$UDEV_RULE" <<'EOF'
# From intercom's deploy/install.sh: the gpio group may use the GPIO chips, as on Raspberry Pi OS.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
EOF
  [ -S /run/udev/control ] && udevadm control --reload-rules && udevadm trigger --subsystem-match=gpio
  did "added $UDEV_RULE (the gpio group may use /dev/gpiochip*)"
fi
if ! getent passwd intercom >/dev/null; then
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin \
    --comment "intercom unit" --groups gpio,audio intercom
  did "created the user intercom (groups gpio, audio)"
fi
for group in gpio audio; do
  if ! id -nG intercom | tr ' ' '\n' | grep -qx "$group"; then
    usermod -a -G "$group" intercom
    did "added the user intercom to the group $group"
  fi
done
if [ "$(stat -c '%U:%G %a' "$DATA_DIR" 2>/dev/null)" != "intercom:intercom 700" ]; then
  install -d -m 700 -o intercom -g intercom "$DATA_DIR"
  did "made $DATA_DIR (intercom's, mode 700)"
fi

# -- the env file ---------------------------------------------------------------------------------
# 640 root:intercom: the unit refuses an env file others can read (it holds the access key).
install -d -m 755 "$ENV_DIR"
if [ -e "$ENV_FILE" ]; then
  [ -z "$role$identity" ] || say "kept the existing $ENV_FILE: --role and --identity only fill in a new one"
  case $(stat -c %a "$ENV_FILE") in
    *[1-7]) say "warning: others may read $ENV_FILE, and the unit will refuse it: chmod 640 $ENV_FILE" ;;
  esac
else
  new=$(mktemp "$ENV_DIR/.intercom.env.XXXXXX")
  sed -e "s/^INTERCOM_ROLE=\$/INTERCOM_ROLE=$role/" -e "s/^INTERCOM_IDENTITY=\$/INTERCOM_IDENTITY=$identity/" \
    "$source_dir/deploy/intercom.env.example" >"$new"
  chown root:intercom "$new"
  chmod 640 "$new"
  mv "$new" "$ENV_FILE"
  did "wrote $ENV_FILE from deploy/intercom.env.example${role:+, role $role}${identity:+, identity $identity}"
fi

# -- the relay off when the unit is not running ---------------------------------------------------
# Before the unit file that runs it after every stop (deploy/strike-off.sh says how it drives the pin).
if ! cmp -s "$source_dir/deploy/strike-off.sh" "$STRIKE_OFF"; then
  install -D -m 755 "$source_dir/deploy/strike-off.sh" "$STRIKE_OFF"
  did "installed $STRIKE_OFF (the door strike's relay off after the unit stops)"
fi

# -- the package and the service ------------------------------------------------------------------
# release.sh builds the release, has it check the settings, switches to it, installs the unit file,
# restarts the service and checks its health, or goes back; it lists its changes in $changes too.
changes=$(mktemp)
trap 'rm -f "$changes"' EXIT
release=("$here/release.sh" --prefix "$PREFIX" --env-file "$ENV_FILE" --user intercom
  --unit-file "$source_dir/deploy/intercom.service" --unit "$UNIT" --health-timeout "$health_timeout"
  --python "$PYTHON" --changes "$changes")
if [ -n "$wheel" ]; then release+=(--wheel "$wheel"); else release+=(--source "$source_dir"); fi
[ -z "$wheelhouse" ] || release+=(--wheelhouse "$wheelhouse")
# The versions the tests passed with (make constraints), whether from the index or the wheelhouse.
[ ! -f "$source_dir/deploy/constraints.txt" ] || release+=(--constraints "$source_dir/deploy/constraints.txt")
[ "$start" = yes ] || release+=(--no-start)
if systemd_running; then release+=(--systemd); fi
release_status=0
bash "${release[@]}" || release_status=$?
while read -r change; do done_list+=("$change"); done <"$changes"
if [ "$(readlink /usr/local/bin/intercom 2>/dev/null)" != "$VENV/bin/intercom" ]; then
  ln -sfn "$VENV/bin/intercom" /usr/local/bin/intercom
  did "linked /usr/local/bin/intercom"
fi
if ! systemctl is-enabled --quiet intercom.service 2>/dev/null; then
  systemctl enable --quiet intercom.service
  did "enabled intercom.service (it starts at boot)"
fi
[ "$release_status" -eq 0 ] || exit "$release_status"

# The variables the example marks "(required)" that the env file leaves empty.
unset_required() {
  grep -A1 '(required)$' "$source_dir/deploy/intercom.env.example" | grep -o '^INTERCOM_[A-Z_]*=' |
    while read -r variable; do grep -qx "$variable" "$ENV_FILE" && printf '%s ' "${variable%=}"; done
  grep -qx 'INTERCOM_HUB_URL=' "$ENV_FILE" && ! grep -qx 'INTERCOM_HUB_EMBEDDED=true' "$ENV_FILE" &&
    printf 'INTERCOM_HUB_URL '
  return 0
}
# Checked as the service's user, so that a file it cannot read shows up here too.
started=no
if check=$(runuser -u intercom -- "$VENV/bin/intercom" config check --env-file "$ENV_FILE" 2>&1); then
  check=
  if [ "$start" = yes ] && systemd_running && systemctl is-active --quiet intercom.service; then
    started=yes
  fi
fi

# -- what now -------------------------------------------------------------------------------------
echo
if [ ${#done_list[@]} -eq 0 ]; then
  say "nothing to change: intercom is installed"
else
  say "done: ${#done_list[@]} change(s), listed above"
fi
case $lgpio:$(dpkg --print-architecture) in
  no:arm*) say "note: no python3-lgpio package here (Raspberry Pi OS has it): gpiozero falls back to its" \
    "other pin libraries, and none of those drives a Pi 5" ;;
esac
# From power-on until the unit starts, only the firmware can hold the relay off: by a line of
# config.txt, which the SD-card image has and Raspberry Pi OS does not.
boot_config=/boot/firmware/config.txt
[ -f "$boot_config" ] || boot_config=/boot/config.txt
if [ -f "$boot_config" ] && boot_line=$("$STRIKE_OFF" --env-file "$ENV_FILE" --config-line 2>/dev/null) &&
  [ -n "$boot_line" ] && ! grep -qxF "$boot_line" "$boot_config"; then
  say "note: for the door strike to be off from power-on, add the line $boot_line to $boot_config" \
    "(at its end, under [all]), and change it when INTERCOM_RELAY_PIN or INTERCOM_RELAY_ACTIVE_LOW change"
fi
if [ "$started" = yes ]; then
  say "intercom.service is running: systemctl status intercom; journalctl -u intercom -f"
  exit 0
fi
todo=$(unset_required)
echo "next:"
[ -z "$todo" ] || echo "  - set these in $ENV_FILE (sudoedit $ENV_FILE): ${todo% }"
if [ -n "$check" ]; then
  echo "  - check it: sudo intercom config check   (one line names what is still wrong)"
  echo "    now it says: ${check##*$'\n'}"
else
  echo "  - the settings are valid: sudo intercom config check shows them"
fi
if [ "$start" = no ]; then
  echo "  - it starts at boot (--no-start: not started or restarted now)"
elif ! systemd_running; then
  echo "  - it starts at boot (systemd is not running here)"
else
  echo "  - sudo systemctl start intercom"
fi
echo "  - watch it: systemctl status intercom; journalctl -u intercom -f"
