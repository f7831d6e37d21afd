#!/usr/bin/env bash
# Installs a release of the intercom package next to the others and makes it the one the service
# runs; deploy/install.sh runs this with its paths. Each release is a virtual environment of its
# own, PREFIX/releases/VERSION-FINGERPRINT, and PREFIX/current links to the one in use (the unit
# file runs PREFIX/current/bin/intercom), so switching either way is one rename.
#
# An upgrade: the new release is built while the old one keeps running. The new version checks the
# settings, and one that refuses settings the old one accepts does not go live. Then `current`
# switches (and the unit file, when it changed), the service restarts and must be healthy: active
# (for Type=notify: it sent READY=1) within --health-timeout, then for --settle still active, not
# restarted, its status not an error. If it is not, `current` and the unit file switch back, the
# service restarts on the old release, and this exits 1. Only the current release and the one
# before it (PREFIX/previous) are kept. The env file and the unit's data are only ever read.
#
#   release.sh --prefix DIR (--wheel FILE | --source DIR) --env-file FILE --unit-file FILE --unit FILE
#              [--wheelhouse DIR] [--constraints FILE] [--user NAME] [--systemd] [--no-start]
#              [--health-timeout S] [--settle S] [--poll S] [--python FILE] [--changes FILE]
#
#   --wheel FILE      a built intercom wheel; --source DIR: a checkout, built from a copy
#   --wheelhouse DIR  pip installs from this directory only, not from its index
#   --constraints FILE
#                     pip installs exactly these versions (deploy/constraints.txt: what the tests
#                     passed with); part of the release's fingerprint
#   --unit-file FILE  the unit file that goes with this release, installed as --unit FILE
#   --user NAME       checks the settings as this user, the service's (default: intercom)
#   --systemd         systemd is running here: reload it, and restart the service unless --no-start
#   --health-timeout S, --settle S, --poll S
#                     the health check's limits, in seconds (default: 60, 10 and 1)
#   --python FILE     makes the virtual environments (default: /usr/bin/python3)
#   --changes FILE    also appends each change made to FILE, one a line
set -euo pipefail
umask 022 # the service's user reads the releases
unset PYTHONPATH PYTHONHOME # each release's python finds its own packages, as in the service

SERVICE=intercom.service

say() { printf 'install: %s\n' "$*"; }
fail() { printf 'install: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

prefix='' wheel='' source_dir='' env_file='' unit_file='' unit='' wheelhouse='' constraints='' changes=''
user=intercom systemd=no start=yes health_timeout=60 settle=10 poll=1 python=/usr/bin/python3
while [ $# -gt 0 ]; do
  case $1 in
    --systemd) systemd=yes; shift ;;
    --no-start) start=no; shift ;;
    -h | --help) usage; exit 0 ;;
    --*)
      [ $# -ge 2 ] || fail "$1 needs a value" 2
      case $1 in
        --prefix) prefix=$2 ;;
        --wheel) wheel=$2 ;;
        --source) source_dir=$2 ;;
        --env-file) env_file=$2 ;;
        --unit-file) unit_file=$2 ;;
        --unit) unit=$2 ;;
        --wheelhouse) wheelhouse=$2 ;;
        --constraints) constraints=$2 ;;
        --user) user=$2 ;;
        --health-timeout) health_timeout=$2 ;;
        --settle) settle=$2 ;;
        --poll) poll=$2 ;;
        --python) python=$2 ;;
        --changes) changes=$2 ;;
        *) fail "unknown option $1 (see --help)" 2 ;;
      esac
      shift 2
      ;;
    *) fail "unknown argument $1 (see --help)" 2 ;;
  esac
done
for option in prefix env_file unit_file unit; do
  [ -n "${!option}" ] || fail "--${option//_/-} is missing (see --help)" 2
done
if [ -z "$wheel$source_dir" ] || { [ -n "$wheel" ] && [ -n "$source_dir" ]; }; then
  fail "give one of --wheel and --source" 2
fi
for option in health_timeout settle poll; do
  [[ ${!option} =~ ^[0-9]+(\.[0-9]+)?$ ]] || fail "--${option//_/-} takes seconds, not '${!option}'" 2
done
[ -z "$wheel" ] || [ -f "$wheel" ] || fail "no wheel $wheel" 2
[ -z "$source_dir" ] || [ -f "$source_dir/pyproject.toml" ] || fail "$source_dir has no pyproject.toml" 2
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || fail "no directory $wheelhouse" 2
[ -z "$constraints" ] || [ -f "$constraints" ] || fail "no constraints file $constraints" 2
[ -f "$unit_file" ] || fail "no unit file $unit_file" 2

cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT
did() {
  say "$*"
  [ -z "$changes" ] || printf '%s\n' "$*" >>"$changes"
}
releases=$prefix/releases
# The release a link (current or previous) points to, or nothing.
release_of() {
  local target
  target=$(readlink "$prefix/$1") || return 0
  printf '%s\n' "${target#releases/}"
}
# Points a link at a release in one rename, so that the service never finds it missing.
point() {
  ln -sfn "releases/$2" "$prefix/.$1.new"
  mv -T "$prefix/.$1.new" "$prefix/$1"
}
# Runs `intercom config check` of a release as the service's user: true when the settings are valid.
checks_out() {
  local run=("$releases/$1/bin/intercom" config check --env-file "$env_file")
  [ "$user" = "$(id -un)" ] || run=(runuser -u "$user" -- "${run[@]}")
  checked=$("${run[@]}" 2>&1)
}

# -- the release ----------------------------------------------------------------------------------
# Named by version and content: running this again with the same package changes nothing, and a
# release that is still there (the previous one, say) is switched to without building it again.
# A wheel's RECORD lists the hash of every file in it, and unlike the wheel's own bytes it does not
# change when the same source is built again.
if [ -n "$wheel" ]; then
  [[ $(basename "$wheel") =~ ^intercom-([^-]+)-.+\.whl$ ]] ||
    fail "$wheel is not an intercom wheel (intercom-VERSION-...whl)" 2
  version=${BASH_REMATCH[1]}
  fingerprint=$("$python" -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    sys.stdout.buffer.write(b"".join(wheel.read(name) for name in wheel.namelist() if name.endswith(".dist-info/RECORD")))
' "$wheel" | sha256sum | cut -c1-12) || fail "$wheel is not a wheel (a zip file)" 2
else
  source_dir=$(cd "$source_dir" && pwd)
  version=$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$source_dir/pyproject.toml")
  fingerprint=$(cd "$source_dir" && find pyproject.toml README.md intercom -name node_modules -prune -o -type f ! -name '*.pyc' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
fi
if [ -n "$constraints" ]; then
  # Other pinned versions make another release.
  fingerprint=$({ echo "$fingerprint"; cat "$constraints"; } | sha256sum | cut -c1-12)
fi
id=$version-$fingerprint
release=$releases/$id

# A unit installed before releases has its virtual environment right at the prefix, and its unit
# file runs PREFIX/bin/intercom. It becomes the release `legacy`, a directory whose bin links to
# the old one (a virtual environment cannot move: its scripts name their python by path), and its
# files go when that release is pruned.
if [ ! -L "$prefix/current" ] && [ -x "$prefix/bin/python" ]; then
  install -d "$releases/legacy"
  ln -sfn ../../bin "$releases/legacy/bin"
  echo legacy >"$releases/legacy/.intercom-release"
  point current legacy
  did "made the virtual environment at $prefix the release legacy (the layout before releases)"
fi
old=$(release_of current)
old_previous=$(release_of previous)

# The old release keeps running meanwhile. .intercom-release is written last: a directory without
# it is a build that did not finish, made again.
if [ ! -f "$release/.intercom-release" ]; then
  rm -rf "$release"
  install -d "$releases"
  say "building the release $id in $release (pip; a few minutes on a Pi)"
  # --system-site-packages lets it import the system's lgpio; pip still installs into it whatever
  # the system lacks or has too old.
  "$python" -m venv --system-site-packages "$release"
  pip=("$release/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location)
  [ -z "$wheelhouse" ] || pip+=(--no-index --find-links "$wheelhouse")
  [ -z "$constraints" ] || pip+=(--constraint "$constraints")
  if [ -n "$wheel" ]; then
    package=$wheel
  else
    # pip builds from a copy, so that the checkout gets no root-owned build files.
    package=$(mktemp -d)
    cleanup+=("$package")
    tar -C "$source_dir" --exclude=__pycache__ --exclude=node_modules -cf - pyproject.toml README.md intercom |
      tar -C "$package" -xf -
    # A unit does not run npm: the web desk ships built (make web where npm is).
    [ -f "$source_dir/intercom/web/dist/intercom-sdk.js" ] ||
      say "warning: $source_dir has no intercom/web/dist (make web): this release serves no web desk"
  fi
  if ! "${pip[@]}" "$package"; then
    rm -rf "$release"
    fail "pip could not install intercom $version (it says why above)${old:+; $old stays current}"
  fi
  echo "$id" >"$release/.intercom-release"
  did "built the release $id (intercom $version) in $release"
fi

# -- the settings ---------------------------------------------------------------------------------
settings=valid
if ! checks_out "$id"; then
  settings=invalid
  refusal=${checked##*$'\n'}
  if [ -n "$old" ] && [ "$old" != "$id" ] && checks_out "$old"; then
    fail "intercom $version refuses the settings in $env_file that $old accepts ($refusal); $old stays current"
  fi
fi

# -- the switch -----------------------------------------------------------------------------------
saved_unit=$(mktemp)
cleanup+=("$saved_unit")
unit_changed=no
if ! cmp -s "$unit_file" "$unit"; then
  unit_changed=yes
  [ ! -f "$unit" ] || cp "$unit" "$saved_unit"
  install -D -m 644 "$unit_file" "$unit"
  did "installed $unit"
  [ "$systemd" = no ] || systemctl daemon-reload
fi
if [ "$id" != "$old" ]; then
  [ -z "$old" ] || point previous "$old"
  point current "$id"
  did "switched $prefix/current to $id${old:+ (from $old)}"
fi

# Keeps the current and the previous release. The legacy one takes the old virtual environment with
# it, and nothing else at the prefix.
prune() {
  local keep dir name
  keep=" $(release_of current) $(release_of previous) "
  for dir in "$releases"/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    [[ $keep != *" $name "* ]] || continue
    if [ "$name" = legacy ]; then
      rm -rf "${prefix:?}"/{bin,include,lib,lib64,share,pyvenv.cfg,.intercom-source}
    fi
    rm -rf "${releases:?}/$name"
    did "removed the release $name"
  done
}

# -- the restart and the health check -------------------------------------------------------------
state() {
  active='' sub='' restarts='' status=''
  local key value
  while IFS='=' read -r key value; do
    case $key in
      ActiveState) active=$value ;;
      SubState) sub=$value ;;
      NRestarts) restarts=$value ;;
      StatusText) status=$value ;;
    esac
  done < <(systemctl show -p ActiveState -p SubState -p NRestarts -p StatusText "$SERVICE")
}
microseconds() { # of a number of seconds like 10 or 0.25
  local whole=${1%%.*} fraction=
  [[ $1 != *.* ]] || fraction=${1#*.}
  fraction=${fraction}000000
  printf '%d\n' $((10#$whole * 1000000 + 10#${fraction:0:6}))
}
# Restarts the service; sets reason when it does not become active. `systemctl restart` waits
# until a Type=notify service is active (it sent READY=1) or has failed.
restart() {
  local code=0
  reason=''
  timeout "$health_timeout" systemctl restart "$SERVICE" || code=$?
  state
  if [ "$code" -eq 124 ]; then
    reason="not active after $health_timeout s: $active/$sub${status:+, \"$status\"}"
  elif [ "$code" -ne 0 ] || [ "$active" != active ]; then
    reason="it did not start: $active/$sub${status:+, \"$status\"}"
  fi
  [ -z "$reason" ]
}
# Restarts the service and watches it for the settle time; sets reason when it is not healthy. A
# service that crashes once it is up shows as an NRestarts that grows, and its STATUS= line reads
# "door door: error ..." while the hub refuses it.
healthy() {
  local first since until
  restart || return 1
  first=$restarts
  since=${EPOCHREALTIME//[!0-9]/}
  until=$((since + $(microseconds "$settle")))
  while :; do
    if [ "$active" != active ]; then
      reason="it stopped within $settle s of starting: $active/$sub${status:+, \"$status\"}"
    elif [ "$restarts" != "$first" ]; then
      reason="systemd restarted it within $settle s of starting${status:+, \"$status\"}"
    elif [[ $status == error* || ${status#*: } == error* ]]; then
      reason="its status: $status"
    fi
    [ -z "$reason" ] || return 1
    [ "${EPOCHREALTIME//[!0-9]/}" -lt "$until" ] || return 0
    sleep "$poll"
    state
  done
}

if [ "$systemd" = no ] || [ "$start" = no ] || [ "$settings" = invalid ]; then
  prune
  exit 0
fi
if [ "$id" = "$old" ] && [ "$unit_changed" = no ] && systemctl is-active --quiet "$SERVICE"; then
  prune
  exit 0
fi
if healthy; then
  did "restarted $SERVICE: active for $settle s${status:+, \"$status\"}"
  prune
  exit 0
fi
if [ -z "$old" ] || { [ "$id" = "$old" ] && [ "$unit_changed" = no ]; }; then
  fail "$SERVICE failed its health check ($reason): systemctl status intercom; journalctl -u intercom -n 20"
fi

# -- the rollback ---------------------------------------------------------------------------------
failed=$reason
if [ "$unit_changed" = yes ] && [ -s "$saved_unit" ]; then
  install -m 644 "$saved_unit" "$unit"
  systemctl daemon-reload
fi
if [ "$id" != "$old" ]; then
  point current "$old"
  if [ -n "$old_previous" ]; then point previous "$old_previous"; else rm -f "$prefix/previous"; fi
fi
if restart; then
  again=''
else
  again=" (and that does not start either: $reason; systemctl status intercom)"
fi
prune
if [ "$id" != "$old" ]; then
  fail "the new version failed its health check ($failed); rolled back to $old$again"
fi
fail "the new $unit failed its health check ($failed); rolled back to the one before$again"
