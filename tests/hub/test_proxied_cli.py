"""`intercom hub --sip-proxy-listen HOST:PORT --sip-proxy ADDRESS`: the flags, checked before the hub starts."""

from __future__ import annotations

import pytest

from intercom import cli
from intercom.hub import HubConfig


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sip-proxy", "127.0.0.1"], "--sip-proxy needs --sip-proxy-listen"),
        (["--sip-proxy-listen", "127.0.0.1:5070"], "needs the SIP proxies that may connect (sip_proxies)"),
        (
            ["--sip-proxy-listen", "127.0.0.1", "--sip-proxy", "127.0.0.1"],
            "sip_proxy_listen: '127.0.0.1' is not host:port",
        ),
        (["--sip-proxy-listen", "127.0.0.1:5070", "--sip-proxy", "edge.local"], "sip_proxies: "),
    ],
)
def test_bad_proxy_flags_are_refused_before_the_hub_starts(tmp_path, capsys, monkeypatch, flags, message) -> None:
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))

    assert cli.main(["hub", "--data-dir", str(tmp_path), *flags]) == 2

    assert message in capsys.readouterr().err
    assert started == []


def test_the_proxy_flags_reach_the_hub_config(tmp_path, monkeypatch) -> None:
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))

    flags = ["--sip-proxy-listen", "127.0.0.1:5070", "--sip-proxy", "127.0.0.1", "--sip-proxy", "::1"]
    assert cli.main(["hub", "--data-dir", str(tmp_path), *flags]) == 0

    [config] = started
    assert config.sip_proxy_listener() == ("127.0.0.1", 5070, frozenset({"127.0.0.1", "::1"}))
