#!/usr/bin/env bash
# Builds the browser side (intercom/web/dist/: the JavaScript SDK and the web desk) with npm and
# esbuild, on a development machine: the wheel and the image carry dist/, so a unit never runs npm.
# Does nothing when dist/ is newer than every source; installs the npm packages when the lock
# file changed. `make web`, scripts/setup.sh and deploy/image/build.sh run it.
set -euo pipefail
cd "$(dirname "$0")/../intercom/web"
say() { printf 'web: %s\n' "$*"; }
command -v npm >/dev/null 2>&1 || { say "npm is missing: sudo apt-get install nodejs npm"; exit 1; }

stamp=node_modules/.intercom-$(sha256sum package-lock.json | cut -c1-16)
if [ ! -e "$stamp" ]; then
  say "installing the npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamp"
fi
built=dist/intercom-sdk.js
sources=(build.mjs package-lock.json sdk/src sdk/index.d.ts)
[ ! -d desk ] || sources+=(desk)
if [ -e "$built" ] && [ -z "$(find "${sources[@]}" -newer "$built" -print -quit)" ]; then
  exit 0
fi
say "building dist/ (node build.mjs)"
node build.mjs
