"""The browser side, built by ``node build.mjs`` into ``dist/`` and shipped in the wheel, so a unit
never runs npm: the JavaScript SDK (``dist/intercom-sdk.js``) and the web desk (``dist/desk/``)."""

from pathlib import Path

DIST = Path(__file__).parent / "dist"
