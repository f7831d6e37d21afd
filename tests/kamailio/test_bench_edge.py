"""The edge's floor in bench/cluster.py: kamailio.cfg changed by bench.kamailio to answer a unit's
REGISTER itself, where the shipped cfg relays it to a hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.kamailio import CONFIG, Edge, register_answering_config
from intercom.sip import Response

from .edge import FakeHub, fresh_register


async def test_the_benchs_edge_answers_a_register_itself(tmp_path, tls_files, fake_hub: FakeHub, open_unit):
    config = register_answering_config(tmp_path)
    edge = Edge(tmp_path / "edge", [fake_hub.address], tls_files, config=config)
    await edge.start()
    try:
        unit = await open_unit(edge)
        response = await unit.exchange(fresh_register(edge))
        # the edge's own 200, not the hub's (which names the hub in a JSON body)
        assert isinstance(response, Response) and response.status_code == 200
        assert response.headers.get("Server") == "intercom-edge"
        assert response.body == b""
        assert fake_hub.arrivals.empty()
    finally:
        await edge.stop()


def test_a_cfg_without_the_relay_is_refused_clearly(tmp_path: Path):
    changed = tmp_path / "kamailio.cfg"
    changed.write_text(CONFIG.read_text().replace("add_path_received()", "add_path()"))
    with pytest.raises(RuntimeError, match="no single place where a REGISTER is relayed"):
        register_answering_config(tmp_path / "out", changed)
    assert not (tmp_path / "out").exists()
