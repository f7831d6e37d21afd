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
