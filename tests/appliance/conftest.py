"""Fixtures of the appliance tests: mock pins, panels, whole units on boards, and a door and a desk controller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance import Panel, PanelPins
from intercom.appliance.unlock_store import UnlockStore

from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .boards import Boards
from .controllers import unit
from .helpers import Presses, WatchedPin

MakePanel = Callable[..., Panel]


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's doors keep their unlock log in a directory of the test's own (INTERCOM_STATE_DIR
    from the environment, as systemd's StateDirectory would give it), never in /var/lib."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("INTERCOM_STATE_DIR", str(path))
    return path


@pytest.fixture(params=[WatchedPin], ids=["plain"])
def factory(request: pytest.FixtureRequest) -> Iterator[MockFactory]:
    """Mock pins (``WatchedPWMPin`` when a test parametrizes this fixture indirectly)."""
    pins = MockFactory(pin_class=request.param)
    yield pins
    pins.reset()
    pins.close()


@pytest.fixture
def presses() -> Presses:
    return Presses()


@pytest.fixture
def make_panel(factory: MockFactory, presses: Presses) -> Iterator[MakePanel]:
    """Build panels on the test's loop and mock pins, reporting to ``presses``; all closed at teardown."""
    panels: list[Panel] = []

    def make(pins: PanelPins, **kwargs: Any) -> Panel:
        panel = Panel(
            pins,
            asyncio.get_running_loop(),
            presses.on_press,
            presses.on_long_press,
            pin_factory=factory,
            **kwargs,
        )
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()


@pytest.fixture
async def boards() -> AsyncIterator[Boards]:
    """Whole units on mock pins (:class:`Boards`), stopped at teardown."""
    made = Boards()
    yield made
    await made.stop_all()


@pytest.fixture
async def door_and_desk(hub, make_unit, state_dir: Path):
    """A door controller whose CALL rings the desk, and that desk's, whose CALL rings the door; the
    door keeps its unlock log in ``state_dir``."""
    await store_flow(hub, "door", "client:desk")
    await store_flow(hub, "desk", "client:door")
    desk = await unit(make_unit, "desk", "desk", DESK_HZ, "desk")
    store = UnlockStore.open(state_dir)
    door = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=store)
    yield door, desk
    async with asyncio.timeout(STEP):
        await door[0].client.destroy()  # nothing left to write to the store
    store.close()
