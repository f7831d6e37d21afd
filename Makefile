# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
.PHONY: demo test test-slow setup lint bench image powercut constraints web

demo:
	@scripts/setup.sh --demo
	.venv/bin/intercom --log-level error demo

# Two workers for everything but the sound card's tests, which run in real time on JACK's dummy
# card and get the machine to themselves afterwards (docs/tests.md).
test:
	@scripts/setup.sh
	.venv/bin/python -m pytest -n 2 --ignore=tests/audio
	.venv/bin/python -m pytest tests/audio

# The tests too slow for `make test`: minutes of real-time sound on the JACK rig (docs/tests.md).
test-slow:
	@scripts/setup.sh
	.venv/bin/python -m pytest -m slow

# The browser side (intercom/web/dist/: the JavaScript SDK and the web desk), with npm and esbuild;
# the wheel and the image carry it, so a unit never runs npm. setup.sh runs it too.
web:
	scripts/build-web.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Every benchmark, each on its own; fails at the end when any missed a target. The sound one
# needs jackd2, the MQTT one mosquitto: the full setup installs both.
bench:
	@scripts/setup.sh
	@status=0; for name in register calls audio appliance api storage flood web mqtt cluster; do .venv/bin/python bench/$$name.py || status=1; done; exit $$status

# The flashable SD-card image of a unit (arm64), into build/image/: needs root, see deploy/image/.
image:
	deploy/image/build.sh

# deploy/constraints.txt again, from the venv the tests passed with: the exact versions setup.sh,
# deploy/install.sh and the image install. Run it after changing a dependency, and commit the file.
# It also asks the package index whether the unit (arm64) has wheels of each (a resolution, no install).
constraints:
	.venv/bin/python scripts/constraints.py --check-unit-platform

# The built image's power-cut test under qemu (minutes; needs root to install qemu when missing).
powercut:
	deploy/image/powercut.sh
