# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
.PHONY: demo test test-slow setup lint bench image powercut

demo:
	@scripts/setup.sh --demo
	.venv/bin/intercom --log-level error demo

test:
	@scripts/setup.sh
	.venv/bin/python -m pytest

# The tests too slow for `make test`: minutes of real-time sound on the JACK rig (docs/tests.md).
test-slow:
	@scripts/setup.sh
	.venv/bin/python -m pytest -m slow

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Every benchmark, each on its own; fails at the end when any missed a target. The sound one
# needs jackd2, which the full setup installs.
bench:
	@scripts/setup.sh
	@status=0; for name in register calls audio appliance api; do .venv/bin/python bench/$$name.py || status=1; done; exit $$status

# The flashable SD-card image of a unit (arm64), into build/image/: needs root, see deploy/image/.
image:
	deploy/image/build.sh

# The built image's power-cut test under qemu (minutes; needs root to install qemu when missing).
powercut:
	deploy/image/powercut.sh
