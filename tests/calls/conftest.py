"""Call tests run on a hub whose media offers 127.0.0.1, the only address they may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom.hub import HubConfig
from intercom.media import MediaPolicy

from ..units import LOOPBACK


@pytest.fixture
def hub_config(tmp_path: Path) -> HubConfig:
    return HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)
    )
