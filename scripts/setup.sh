#!/usr/bin/env bash
# Sets up everything the demo and the tests need, on a fresh Debian 12 (or a Raspberry Pi OS
# of the same base): system packages, a virtual environment with the package and its test
# tools, and the browser-test harness. Safe to run again: what is there is left alone.
#
#   scripts/setup.sh          system packages + .venv + the node harnesses (browser, SDK) + the
#                             web bundles (intercom/web/dist/)
#   scripts/setup.sh --demo   only what the demo needs (no browser, no test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
say() { printf 'setup: %s\n' "$*"; }

# -- system packages ----------------------------------------------------------------------
# package:check pairs; a package is installed only when its check fails. A check is a command
# name, lib/<soname> for a shared library, kamailio/<module>.so for a Kamailio module, or venv
# for Python's venv module.
# PortAudio: sounddevice's sound I/O; espeak-ng: the hub's spoken prompts (call flows' ``say``)
need=(python3-venv:venv libportaudio2:lib/libportaudio.so.2 espeak-ng:espeak-ng)
if [ "$mode" != "--demo" ]; then
  # jackd2: the tests' sound card (JACK's dummy backend); node, npm, chromium: the browser tests
  need+=(jackd2:jackd nodejs:node npm:npm chromium:chromium)
  # certutil: the web tests give Chromium an NSS database that trusts the test CA
  need+=(libnss3-tools:certutil)
  # mosquitto: the MQTT bridge's tests and bench/mqtt.py start a real broker (bench/mosquitto.py)
  need+=(mosquitto:mosquitto)
  # postgresql: the storage tests' throwaway cluster (bench/postgres.py: initdb, pg_ctl; bench/cluster.py starts it too); libpq5: psycopg's libpq
  need+=(postgresql:pg/initdb libpq5:lib/libpq.so.5)
  # deploy/image/assemble.sh and its tests: partitions and filesystems in files, no mounts
  need+=(fdisk:sfdisk dosfstools:mkfs.vfat mtools:mcopy e2fsprogs:mkfs.ext4 shellcheck:shellcheck)
  # tests/kamailio: the edge (deploy/kamailio/kamailio.cfg) in front of the hubs, started by the tests
  need+=(kamailio:kamailio kamailio-websocket-modules:kamailio/websocket.so kamailio-tls-modules:kamailio/tls.so)
fi
present() {
  case $1 in
    venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
    lib/*) "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep -q "${1#lib/}" ;;
    kamailio/*) compgen -G "/usr/lib/*/kamailio/modules/${1#kamailio/}" >/dev/null ;;
    pg/*) compgen -G "/usr/lib/postgresql/*/bin/${1#pg/}" >/dev/null ;; # Debian keeps them off PATH
    *) PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 ;; # mkfs.* are not on a user's PATH
  esac
}
# Debian starts the kamailio package's service, listening for SIP on every address with its
# sample config: the tests start their own edge, so a development box keeps none running.
kamailio_service_started() { [[ " ${missing[*]} " == *" kamailio "* ]] && [ -d /run/systemd/system ]; }
missing=()
for pair in "${need[@]}"; do
  present "${pair#*:}" || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if kamailio_service_started; then systemctl disable --now kamailio.service >/dev/null 2>&1 || true; fi
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    say "installing system packages with sudo: ${missing[*]}"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if kamailio_service_started; then sudo systemctl disable --now kamailio.service >/dev/null 2>&1 || true; fi
  else
    say "these Debian packages are missing and installing them needs root:"
    say "  sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi

# -- Python ---------------------------------------------------------------------------------
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { say "Python 3.11 or newer is needed"; exit 1; }
[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
extras="test,postgresql"
[ "$mode" = "--demo" ] && extras=
stamp=.venv/.intercom-installed-$(cat pyproject.toml deploy/constraints.txt | sha256sum | cut -c1-16)-${extras:-base}
if [ ! -e "$stamp" ]; then
  say "installing intercom${extras:+[$extras]} into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # exactly the versions in deploy/constraints.txt (make constraints): what a unit installs too
  .venv/bin/python -m pip install -q -c deploy/constraints.txt -e ".${extras:+[$extras]}"
  rm -f .venv/.intercom-installed-*
  touch "$stamp"
fi

# -- node harnesses: JsSIP in headless Chromium, MessageBird's Node SDK ---------------------
if [ "$mode" != "--demo" ]; then
  for harness in tests/browser tests/web tests/hub/sdk; do
    bstamp=$harness/node_modules/.intercom-$(sha256sum "$harness/package-lock.json" | cut -c1-16)
    if [ ! -e "$bstamp" ]; then
      say "installing the node harness in $harness (npm ci)"
      (cd "$harness" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
      touch "$bstamp"
    fi
  done
  # the browser side's bundles (intercom/web/dist/), when missing or older than their sources
  scripts/build-web.sh
fi
say "ready"
