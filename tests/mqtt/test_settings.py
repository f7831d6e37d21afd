"""The bridge's settings as ``intercom hub`` takes them: --mqtt-* flags, the password from a file."""

from __future__ import annotations

import pytest

from intercom.appliance.embedded_hub import EmbeddedHub
from intercom.appliance.settings import SettingsError, load_settings, shown
from intercom.hub import HubConfig

from ..appliance.test_settings import EMBEDDED, env_file
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


def test_the_units_env_file_sets_the_embedded_hubs_bridge_with_the_password_in_a_file(tmp_path):
    password = tmp_path / "mqtt-password"
    password.write_text("from-the-file-77\n")
    path = env_file(
        tmp_path, **EMBEDDED, INTERCOM_MQTT_URL="mqtt://127.0.0.1:1884", INTERCOM_MQTT_USERNAME="intercom",
        INTERCOM_MQTT_PASSWORD_FILE=str(password), INTERCOM_MQTT_TOPIC_PREFIX="house",
    )  # fmt: skip
    settings, _ = load_settings(path)
    bridge = EmbeddedHub(settings).config.mqtt
    assert (bridge.url, bridge.username, bridge.password) == ("mqtt://127.0.0.1:1884", "intercom", "from-the-file-77")
    assert bridge.topic_prefix == "house" and "from-the-file-77" not in repr(bridge)
    assert shown(settings)["INTERCOM_MQTT_PASSWORD"] == ""  # given by the file, not this variable


def test_a_password_in_the_env_file_and_in_a_file_is_refused(tmp_path):
    path = env_file(
        tmp_path, **EMBEDDED, INTERCOM_MQTT_URL="mqtt://127.0.0.1", INTERCOM_MQTT_PASSWORD="Qz9-tiny",
        INTERCOM_MQTT_PASSWORD_FILE=str(tmp_path / "p"),
    )  # fmt: skip
    with pytest.raises(
        SettingsError, match="INTERCOM_MQTT_PASSWORD and INTERCOM_MQTT_PASSWORD_FILE: give one"
    ) as refused:
        load_settings(path)
    assert "Qz9-tiny" not in str(refused.value)


def test_the_open_door_flags_and_the_doors(capsys, monkeypatch, tmp_path):
    config = started_config(
        capsys, monkeypatch, tmp_path, "--mqtt-url", "mqtt://127.0.0.1", "--mqtt-open-door",
        "--mqtt-open-min-interval", "0.5", "--mqtt-open-timeout", "3", "--doors", "gate, back,gate",
    )  # fmt: skip
    assert (config.mqtt_open_door, config.mqtt_open_min_interval, config.mqtt_open_timeout) == (True, 0.5, 3.0)
    assert config.doors == ("gate", "back")
    plain = started_config(capsys, monkeypatch, tmp_path, "--mqtt-url", "mqtt://127.0.0.1")
    assert (plain.mqtt_open_door, plain.mqtt_open_min_interval, plain.doors) == (False, 2.0, ("door",))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mqtt-open-door"], "--mqtt-open-door needs --mqtt-url"),
        (["--doors", " , "], "--doors: give at least one name"),
        (["--doors", "front door"], "--doors: "),
    ],
)
def test_open_door_without_a_bridge_and_bad_doors_are_refused(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "hub", "--data-dir", str(tmp_path), *argv)
    assert code == 2 and message in err


def test_the_units_env_file_turns_the_open_door_on_only_with_a_bridge(tmp_path):
    path = env_file(
        tmp_path, **EMBEDDED, INTERCOM_MQTT_URL="mqtt://127.0.0.1", INTERCOM_MQTT_OPEN_DOOR="1",
        INTERCOM_MQTT_OPEN_MIN_INTERVAL="4", INTERCOM_MQTT_OPEN_TIMEOUT="1.5",
    )  # fmt: skip
    config = EmbeddedHub(load_settings(path)[0]).config
    assert (config.mqtt_open_door, config.mqtt_open_min_interval, config.mqtt_open_timeout) == (True, 4.0, 1.5)
    with pytest.raises(SettingsError, match="INTERCOM_MQTT_OPEN_DOOR: is for the MQTT bridge"):
        load_settings(env_file(tmp_path, **EMBEDDED, INTERCOM_MQTT_OPEN_DOOR="1"))
    with pytest.raises(SettingsError, match="INTERCOM_MQTT_OPEN_MIN_INTERVAL"):
        load_settings(env_file(tmp_path, **EMBEDDED, INTERCOM_MQTT_URL="mqtt://h", INTERCOM_MQTT_OPEN_MIN_INTERVAL="0"))
