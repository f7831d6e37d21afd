"""A fresh mock pin factory per test, and panels built on it that are closed at teardown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance import Panel, PanelPins

from .boards import Boards
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
