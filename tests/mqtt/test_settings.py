"""The bridge's settings as ``intercom hub`` takes them: --mqtt-* flags, the password from a file."""

from __future__ import annotations

import pytest

from intercom.hub import HubConfig

from ..cli.test_cli import run


def started_config(capsys, monkeypatch, tmp_path, *argv: str) -> HubConfig:
    started: list[HubConfig] = []
    monkeypatch.setattr("intercom.hub.run_hub", lambda config, log_level: started.append(config))
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), *argv)
    assert code == 0, err
    return started[0]


def test_without_a_url_the_bridge_is_off(capsys, monkeypatch, tmp_path):
    assert started_config(capsys, monkeypatch, tmp_path).mqtt is None


def test_the_flags_reach_the_settings_and_the_password_comes_from_its_file(capsys, monkeypatch, tmp_path):
    password = tmp_path / "mqtt-password"
    password.write_text("broker-secret-42\n")
    config = started_config(
        capsys, monkeypatch, tmp_path,
        "--mqtt-url", "mqtts://broker.lan", "--mqtt-username", "intercom", "--mqtt-password-file", str(password),
        "--mqtt-topic-prefix", "house", "--mqtt-queue-size", "10", "--mqtt-ca-file", str(password),
    )  # fmt: skip
    settings = config.mqtt
    assert (settings.host, settings.port, settings.tls) == ("broker.lan", 8883, True)
    assert (settings.username, settings.password, settings.topic_prefix) == ("intercom", "broker-secret-42", "house")
    assert (settings.queue_size, settings.client_id, settings.ca_file) == (10, "intercom-hub", password)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mqtt-url", "http://broker.lan"], "--mqtt-url: MQTT URL must be mqtt://host[:port]"),
        (["--mqtt-url", "mqtt://u:pw-x9@broker.lan"], "must not hold a user or password"),
        (["--mqtt-url", "mqtt://broker.lan", "--mqtt-password-file", "/nonexistent/p"], "No such file"),
    ],
)
def test_bad_mqtt_options_are_one_clear_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), *argv)
    assert code == 2 and message in err and "pw-x9" not in err  # a password given by mistake is not echoed


def test_a_queue_of_no_messages_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(capsys, "hub", "--data-dir", str(tmp_path), "--mqtt-url", "mqtt://broker.lan", "--mqtt-queue-size", "0")
    assert "--mqtt-queue-size: 0: give a whole number above 0" in capsys.readouterr().err
