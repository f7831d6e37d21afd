"""The unit's env file: every variable checked when read, one line naming what is wrong, secrets kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom.appliance.settings import PREFIX, Settings, SettingsError, check_env_file, load_settings, shown
from intercom.cli import main
from intercom.sdk import AudioSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "intercom.env.example"
REQUIRED = {
    "INTERCOM_ROLE": "door",
    "INTERCOM_IDENTITY": "front_door",
    "INTERCOM_HUB_URL": "wss://desk.local:8443",
    "INTERCOM_ACCESS_KEY_ID": "511f5c63d6db9cc19aa3274d",
    "INTERCOM_ACCESS_KEY": "LU-secret-value",
    "INTERCOM_UNLOCK_CODE": "4711#",
}


@pytest.fixture(autouse=True)
def no_intercom_environment(monkeypatch):
    """Only the file under test speaks: the process's own INTERCOM_* variables are set aside."""
    import os

    for name in [name for name in os.environ if name.startswith("INTERCOM_")]:
        monkeypatch.delenv(name)


def env_file(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "intercom.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in {**REQUIRED, **values}.items()))
    path.chmod(0o600)
    return path


def test_a_minimal_file_gives_the_documented_defaults(tmp_path):
    settings, audio = load_settings(env_file(tmp_path))
    assert (settings.role, settings.identity, settings.hub_url) == ("door", "front_door", "wss://desk.local:8443")
    assert settings.access_key.get_secret_value() == "LU-secret-value"
    assert settings.pins() == {
        "button_call_pin": 17, "button_answer_pin": 27, "button_reject_pin": 22, "button_mute_pin": 23,
        "button_unlock_pin": 24, "led_status_pin": 5, "led_call_pin": 6, "led_mute_pin": 13, "relay_pin": 26,
    }  # fmt: skip
    assert (settings.relay_pulse_s, settings.ring_timeout_s, settings.bounce_ms) == (3.0, 30, 30)
    assert audio.region == "eu" and audio.microphone is None


def test_the_environment_wins_over_the_file_and_empty_pins_are_not_fitted(tmp_path, monkeypatch):
    path = env_file(tmp_path, INTERCOM_RELAY_PIN="", INTERCOM_KEYPAD_PINS="1:12, 2:16,#:20")
    monkeypatch.setenv("INTERCOM_AUTO_ANSWER", "true")
    monkeypatch.setenv("INTERCOM_AUDIO_SPEAKER_GAIN", "0.5")
    settings, audio = load_settings(path)
    assert settings.auto_answer and audio.speaker_gain == 0.5
    assert settings.relay_pin is None and "relay_pin" not in settings.pins()
    assert settings.keypad_pins == {"1": 12, "2": 16, "#": 20}


EMBEDDED = {"INTERCOM_HUB_URL": "", "INTERCOM_HUB_EMBEDDED": "true", "INTERCOM_ACCESS_KEY": "x" * 24}


def test_an_embedded_hub_needs_no_url_and_rings_this_unit_unless_told(tmp_path):
    settings, _ = load_settings(env_file(tmp_path, **EMBEDDED, INTERCOM_ROLE="desk", INTERCOM_IDENTITY="hall"))
    assert settings.hub_embedded and settings.hub_url is None and settings.hub_listen == "0.0.0.0"
    assert settings.desks == ("hall",) and settings.hub_doors == ("door",)
    assert settings.flow == "ring_door"  # a desk's CALL calls the door; a door's rings the desks
    told, _ = load_settings(
        env_file(tmp_path, **EMBEDDED, INTERCOM_HUB_DESKS="hall, attic,hall", INTERCOM_CALL_FLOW="x")
    )
    assert told.desks == ("hall", "attic") and told.flow == "x"


BAD_EMBEDDED_VALUES = [
    ("INTERCOM_HUB_LISTEN", "desk.local", "INTERCOM_HUB_LISTEN: must be an IP address of this unit"),
    ("INTERCOM_HUB_PORT", "-1", "INTERCOM_HUB_PORT: Input should be greater than or equal to 0"),
    ("INTERCOM_HUB_CERT_FILE", "/etc/hostname", "INTERCOM_HUB_CERT_FILE and INTERCOM_HUB_KEY_FILE: set both"),
    ("INTERCOM_HUB_KEY_FILE", "/etc/hostname", "INTERCOM_HUB_CERT_FILE and INTERCOM_HUB_KEY_FILE: set both"),
    ("INTERCOM_HUB_DATA_DIR", "", "INTERCOM_HUB_DATA_DIR: must be an absolute path, not '.'"),
    ("INTERCOM_HUB_DATA_DIR", "data", "INTERCOM_HUB_DATA_DIR: must be an absolute path, not 'data'"),
    ("INTERCOM_HUB_DESKS", "hall,front door", "INTERCOM_HUB_DESKS: 'front door': identity 'front door' is not"),
    ("INTERCOM_HUB_DOORS", "gate!", "INTERCOM_HUB_DOORS: 'gate!': identity 'gate!' is not 1-30"),
    ("INTERCOM_ACCESS_KEY", "Qz9-tiny", "INTERCOM_ACCESS_KEY: the embedded hub signs with it, and it is shorter"),
    ("INTERCOM_HUB_TLS", "yes", "INTERCOM_HUB_TLS: Input should be 'auto', 'on' or 'off'"),
    ("INTERCOM_HUB_ALLOW_LOOPBACK_REQUESTS", "maybe", "INTERCOM_HUB_ALLOW_LOOPBACK_REQUESTS: Input should be a valid"),
    ("INTERCOM_HUB_MAX_REDIRECTS", "21", "INTERCOM_HUB_MAX_REDIRECTS: Input should be less than or equal to 20"),
    ("INTERCOM_HUB_MAX_FLOW_BYTES", "10", "INTERCOM_HUB_MAX_FLOW_BYTES: Input should be greater than or equal to 1024"),
    ("INTERCOM_HUB_MAX_MEDIA_BYTES", "1k", "INTERCOM_HUB_MAX_MEDIA_BYTES: Input should be a valid integer"),
    ("INTERCOM_HUB_MAX_CALLS", "0", "INTERCOM_HUB_MAX_CALLS: Input should be greater than or equal to 1"),
    ("INTERCOM_HUB_MAX_CALLS_PER_IDENTITY", "lots", "INTERCOM_HUB_MAX_CALLS_PER_IDENTITY: Input should be a valid"),
    ("INTERCOM_HUB_MAX_CALL_DURATION_S", "10", "INTERCOM_HUB_MAX_CALL_DURATION_S: Input should be greater than or"),
    ("INTERCOM_HUB_MEDIA_TIMEOUT_S", "1", "INTERCOM_HUB_MEDIA_TIMEOUT_S: Input should be greater than or equal to 5"),
    ("INTERCOM_HUB_MAX_RING_LEGS", "101", "INTERCOM_HUB_MAX_RING_LEGS: Input should be less than or equal to 100"),
    ("INTERCOM_HUB_RECORDINGS_QUOTA_MB", "0", "INTERCOM_HUB_RECORDINGS_QUOTA_MB: Input should be greater than 0"),
    ("INTERCOM_HUB_RECORDING_MAX_SECONDS", "-5", "INTERCOM_HUB_RECORDING_MAX_SECONDS: Input should be greater than 0"),
    ("INTERCOM_HUB_MIN_FREE_MB", "lots", "INTERCOM_HUB_MIN_FREE_MB: Input should be a valid integer"),
    ("INTERCOM_HUB_CALLS_MAX_AGE_DAYS", "0", "INTERCOM_HUB_CALLS_MAX_AGE_DAYS: Input should be greater than 0"),
    ("INTERCOM_HUB_CALLS_MAX_ROWS", "1.5", "INTERCOM_HUB_CALLS_MAX_ROWS: Input should be a valid integer"),
    ("INTERCOM_MQTT_URL", "http://broker.lan", "INTERCOM_MQTT_URL: MQTT URL must be mqtt://host[:port] or"),
    ("INTERCOM_MQTT_URL", "mqtt://u:Qz9-tiny@broker.lan", "INTERCOM_MQTT_URL: MQTT URL must not hold a user or"),
    ("INTERCOM_MQTT_USERNAME", "intercom", "INTERCOM_MQTT_USERNAME: is for the MQTT bridge, and INTERCOM_MQTT_URL"),
    ("INTERCOM_MQTT_PASSWORD", "Qz9-tiny", "INTERCOM_MQTT_PASSWORD: is for the MQTT bridge, and INTERCOM_MQTT_URL"),
    ("INTERCOM_MQTT_PASSWORD_FILE", "/p", "INTERCOM_MQTT_PASSWORD_FILE: is for the MQTT bridge, and"),
    ("INTERCOM_MQTT_CA_FILE", "/ca.pem", "INTERCOM_MQTT_CA_FILE: is for the MQTT bridge, and INTERCOM_MQTT_URL"),
    ("INTERCOM_MQTT_PINNED_CERT", "/b.pem", "INTERCOM_MQTT_PINNED_CERT: is for the MQTT bridge, and"),
    ("INTERCOM_MQTT_CLIENT_ID", "", "INTERCOM_MQTT_CLIENT_ID: String should have at least 1 character"),
    ("INTERCOM_MQTT_TOPIC_PREFIX", "home/#", "INTERCOM_MQTT_TOPIC_PREFIX: String should match pattern"),
    ("INTERCOM_MQTT_DISCOVERY_PREFIX", "", "INTERCOM_MQTT_DISCOVERY_PREFIX: String should match pattern"),
    ("INTERCOM_MQTT_QUEUE_SIZE", "0", "INTERCOM_MQTT_QUEUE_SIZE: Input should be greater than or equal to 1"),
    ("INTERCOM_MQTT_OPEN_DOOR", "maybe", "INTERCOM_MQTT_OPEN_DOOR: Input should be a valid boolean"),
    ("INTERCOM_MQTT_OPEN_DOOR", "true", "INTERCOM_MQTT_OPEN_DOOR: is for the MQTT bridge, and INTERCOM_MQTT_URL"),
    ("INTERCOM_MQTT_OPEN_MIN_INTERVAL", "0", "INTERCOM_MQTT_OPEN_MIN_INTERVAL: Input should be greater than 0"),
    ("INTERCOM_MQTT_OPEN_TIMEOUT", "inf", "INTERCOM_MQTT_OPEN_TIMEOUT: Input should be a finite number"),
    (
        "INTERCOM_HUB_DELIVERIES_MAX_AGE_DAYS",
        "x",
        "INTERCOM_HUB_DELIVERIES_MAX_AGE_DAYS: Input should be a valid number",
    ),
    ("INTERCOM_HUB_DELIVERIES_MAX_ROWS", "0", "INTERCOM_HUB_DELIVERIES_MAX_ROWS: Input should be greater than 0"),
    ("INTERCOM_HUB_RECORDING_SYNC_SECONDS", "0", "INTERCOM_HUB_RECORDING_SYNC_SECONDS: Input should be greater than 0"),
    ("INTERCOM_HUB_HEARTBEAT_SECONDS", "inf", "INTERCOM_HUB_HEARTBEAT_SECONDS: Input should be a finite number"),
    ("INTERCOM_HUB_DESK_TOKEN_SECONDS", "10", "INTERCOM_HUB_DESK_TOKEN_SECONDS: Input should be greater than or equal"),
    ("INTERCOM_HUB_PAIRING_MAX_BAD_CODES", "0", "INTERCOM_HUB_PAIRING_MAX_BAD_CODES: Input should be greater than"),
    ("INTERCOM_HUB_PAIRING_BAD_CODE_WINDOW", "nan", "INTERCOM_HUB_PAIRING_BAD_CODE_WINDOW: Input should be a finite"),
]


@pytest.mark.parametrize(("variable", "value", "message"), BAD_EMBEDDED_VALUES)
def test_a_bad_embedded_hub_value_stops_with_one_line(tmp_path, variable, value, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file(tmp_path, **{**EMBEDDED, variable: value}))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert "Qz9-tiny" not in str(refused.value)  # never the secret


def test_an_unreadable_certificate_is_named(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("")
    values = {**EMBEDDED, "INTERCOM_HUB_CERT_FILE": str(tmp_path / "none.pem"), "INTERCOM_HUB_KEY_FILE": str(key)}
    with pytest.raises(SettingsError, match=r"^INTERCOM_HUB_CERT_FILE: cannot read .*none\.pem$"):
        load_settings(env_file(tmp_path, **values))


BAD_VALUES = [
    ("INTERCOM_ROLE", "gate", "INTERCOM_ROLE: Input should be 'door' or 'desk' (got 'gate')"),
    ("INTERCOM_IDENTITY", "front door!", "INTERCOM_IDENTITY: identity 'front door!' is not 1-30 characters"),
    ("INTERCOM_HUB_URL", "https://desk.local", "INTERCOM_HUB_URL: must look like wss://host:port"),
    ("INTERCOM_HUB_URL", "", "INTERCOM_HUB_URL: set it, or INTERCOM_HUB_EMBEDDED=true to run the hub here"),
    ("INTERCOM_HUB_EMBEDDED", "maybe", "INTERCOM_HUB_EMBEDDED: Input should be a valid boolean"),
    ("INTERCOM_HUB_FINGERPRINT", "AB:CD:EF", "INTERCOM_HUB_FINGERPRINT: must be the SHA-256 fingerprint of the hub's"),
    ("INTERCOM_HUB_CA_FILE", "/nowhere/ca.pem", "INTERCOM_HUB_CA_FILE: cannot read /nowhere/ca.pem (No such file"),
    ("INTERCOM_HUB_CA_FILE", "/etc/hostname", "INTERCOM_HUB_CA_FILE: /etc/hostname holds no certificate (PEM)"),
    ("INTERCOM_HUB_INSECURE", "true", "INTERCOM_HUB_INSECURE: only for a plain ws:// hub; a wss:// hub is checked"),
    ("INTERCOM_HUB_PORT", "70000", "INTERCOM_HUB_PORT: Input should be less than or equal to 65535"),
    ("INTERCOM_ACCESS_KEY_ID", None, "INTERCOM_ACCESS_KEY_ID: required, and not set"),
    ("INTERCOM_ACCESS_KEY_ID", "key id", "INTERCOM_ACCESS_KEY_ID: String should match pattern"),
    ("INTERCOM_CALL_FLOW", "ring/desks", "INTERCOM_CALL_FLOW: String should match pattern"),
    ("INTERCOM_ACCESS_KEY", None, "INTERCOM_ACCESS_KEY: required, and not set"),
    ("INTERCOM_ACCESS_KEY", "", "INTERCOM_ACCESS_KEY: required, and empty"),
    ("INTERCOM_BUTTON_CALL_PIN", "40", "INTERCOM_BUTTON_CALL_PIN: must be a BCM GPIO number from 2 to 27"),
    ("INTERCOM_BUTTON_ANSWER_PIN", "one", "INTERCOM_BUTTON_ANSWER_PIN: Input should be a valid integer"),
    ("INTERCOM_BUTTON_REJECT_PIN", "1", "INTERCOM_BUTTON_REJECT_PIN: must be a BCM GPIO number"),
    ("INTERCOM_BUTTON_MUTE_PIN", "28", "INTERCOM_BUTTON_MUTE_PIN: must be a BCM GPIO number"),
    ("INTERCOM_BUTTON_UNLOCK_PIN", "17", "INTERCOM_BUTTON_UNLOCK_PIN: pin 17 is also INTERCOM_BUTTON_CALL_PIN"),
    ("INTERCOM_KEYPAD_PINS", "A:12", "INTERCOM_KEYPAD_PINS: 'A:12' is not key:pin"),
    ("INTERCOM_KEYPAD_PINS", "1:12,1:16", "INTERCOM_KEYPAD_PINS: key '1' is given twice"),
    ("INTERCOM_KEYPAD_PINS", "1:5", "INTERCOM_KEYPAD_PINS[1]: pin 5 is also INTERCOM_LED_STATUS_PIN"),
    ("INTERCOM_LED_STATUS_PIN", "0", "INTERCOM_LED_STATUS_PIN: must be a BCM GPIO number"),
    ("INTERCOM_LED_CALL_PIN", "x", "INTERCOM_LED_CALL_PIN: Input should be a valid integer"),
    ("INTERCOM_LED_MUTE_PIN", "99", "INTERCOM_LED_MUTE_PIN: must be a BCM GPIO number"),
    ("INTERCOM_RELAY_PIN", "27", "INTERCOM_RELAY_PIN: pin 27 is also INTERCOM_BUTTON_ANSWER_PIN"),
    ("INTERCOM_PIN_FACTORY", "lgpio", "INTERCOM_PIN_FACTORY: Input should be '' or 'mock'"),
    ("INTERCOM_BUTTONS_ACTIVE_LOW", "low", "INTERCOM_BUTTONS_ACTIVE_LOW: Input should be a valid boolean"),
    ("INTERCOM_LEDS_ACTIVE_LOW", "2", "INTERCOM_LEDS_ACTIVE_LOW: Input should be a valid boolean"),
    ("INTERCOM_RELAY_ACTIVE_LOW", "?", "INTERCOM_RELAY_ACTIVE_LOW: Input should be a valid boolean"),
    ("INTERCOM_PWM_LEDS", "pwm", "INTERCOM_PWM_LEDS: Input should be a valid boolean"),
    ("INTERCOM_BOUNCE_MS", "1000", "INTERCOM_BOUNCE_MS: Input should be less than or equal to 500"),
    ("INTERCOM_LONG_PRESS_MS", "50", "INTERCOM_LONG_PRESS_MS: Input should be greater than or equal to 200"),
    ("INTERCOM_UNLOCK_CODE", "open sesame", "INTERCOM_UNLOCK_CODE: must be 4-16 of 0-9, * and #"),
    ("INTERCOM_UNLOCK_CODE", "123#", "INTERCOM_UNLOCK_CODE: must be 4-16 of 0-9, * and #, at least 4 before a"),
    ("INTERCOM_UNLOCK_CODE", "1" * 17, "INTERCOM_UNLOCK_CODE: must be 4-16 of 0-9, * and #"),
    ("INTERCOM_UNLOCK_FROM", "desk,front desk", "INTERCOM_UNLOCK_FROM: 'front desk': identity 'front desk' is not"),
    ("INTERCOM_UNLOCK_FROM", "desk,group:a-b", "INTERCOM_UNLOCK_FROM: 'group:a-b': identity 'a-b' is not"),
    (
        "INTERCOM_UNLOCK_FROM",
        "desk,source:alexa",
        "INTERCOM_UNLOCK_FROM: 'source:alexa': the sources are source:home_assistant",
    ),
    ("INTERCOM_STATE_DIR", "var/lib/intercom", "INTERCOM_STATE_DIR: must be an absolute path, not 'var/lib/intercom'"),
    ("INTERCOM_RELAY_PULSE_S", "0", "INTERCOM_RELAY_PULSE_S: Input should be greater than 0"),
    ("INTERCOM_AUTO_ANSWER", "sometimes", "INTERCOM_AUTO_ANSWER: Input should be a valid boolean"),
    ("INTERCOM_RING_TIMEOUT_S", "2", "INTERCOM_RING_TIMEOUT_S: Input should be greater than or equal to 5"),
    ("INTERCOM_CALL_BUTTON_HANGS_UP", "hm", "INTERCOM_CALL_BUTTON_HANGS_UP: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_SPEAKER_GAIN", "99", "INTERCOM_AUDIO_SPEAKER_GAIN: Input should be less than or equal to 16"),
    ("INTERCOM_AUDIO_MICROPHONE_GAIN", "-1", "INTERCOM_AUDIO_MICROPHONE_GAIN: Input should be greater than or equal"),
    ("INTERCOM_AUDIO_TONES", "loud", "INTERCOM_AUDIO_TONES: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_ECHO_CANCELLATION", "max", "INTERCOM_AUDIO_ECHO_CANCELLATION: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_NOISE_SUPPRESSION", "3", "INTERCOM_AUDIO_NOISE_SUPPRESSION: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_AUTO_GAIN", "12dB", "INTERCOM_AUDIO_AUTO_GAIN: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_HIGH_PASS_FILTER", "80", "INTERCOM_AUDIO_HIGH_PASS_FILTER: Input should be a valid boolean"),
    ("INTERCOM_AUDIO_RING_FILE", "/nowhere/ring.wav", "INTERCOM_AUDIO_RING_FILE: "),
    ("INTERCOM_AUDIO_REGION", "mars", "INTERCOM_AUDIO_REGION: no tone plan for region 'mars'"),
    ("INTERCOM_AUDIO_PLAYOUT_MS", "10", "INTERCOM_AUDIO_PLAYOUT_MS: Input should be greater than or equal to 20"),
]


@pytest.mark.parametrize(("variable", "value", "message"), BAD_VALUES)
def test_a_bad_value_stops_with_one_line_naming_the_variable(tmp_path, variable, value, message):
    """One case at least for each variable that can be wrong (see the test after this one)."""
    values = {name: text for name, text in REQUIRED.items() if not (value is None and name == variable)}
    if value is not None:
        values[variable] = value
    path = tmp_path / "intercom.env"
    path.write_text("".join(f"{name}={text}\n" for name, text in values.items()))
    path.chmod(0o600)
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_secret_is_never_shown_in_a_message_or_by_config_check(tmp_path, capsys):
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file(tmp_path, INTERCOM_UNLOCK_CODE="12ab"))
    assert "12ab" not in str(refused.value)
    assert main(["config", "check", "--env-file", str(env_file(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "INTERCOM_ACCESS_KEY=********" in out and "INTERCOM_UNLOCK_CODE=********" in out
    assert "LU-secret-value" not in out and "4711#" not in out
    assert "INTERCOM_RELAY_PULSE_S=3.0" in out and "INTERCOM_AUDIO_REGION=eu" in out


@pytest.mark.parametrize("code", ["123", "123#", "1#"])
def test_config_check_refuses_a_code_of_fewer_than_4_digits_naming_the_variable(tmp_path, capsys, code):
    assert main(["config", "check", "--env-file", str(env_file(tmp_path, INTERCOM_UNLOCK_CODE=code))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("intercom config: INTERCOM_UNLOCK_CODE: must be 4-16 of 0-9, * and #, at least 4")
    assert code not in captured.err.removeprefix("intercom config: INTERCOM_UNLOCK_CODE")  # a secret, even a bad one


def test_who_may_unlock_defaults_to_the_desk_and_takes_a_list(tmp_path):
    settings, _ = load_settings(env_file(tmp_path))
    assert settings.unlock_from == ("desk", "group:phones") and str(settings.state_dir) == "/var/lib/intercom"
    told, _ = load_settings(env_file(tmp_path, INTERCOM_UNLOCK_FROM="hall, attic,hall", INTERCOM_STATE_DIR="/srv/x"))
    assert told.unlock_from == ("hall", "attic") and str(told.state_dir) == "/srv/x"
    nobody, _ = load_settings(env_file(tmp_path, INTERCOM_UNLOCK_FROM=""))
    assert nobody.unlock_from == ()  # only the keypad opens this door
    with_ha, _ = load_settings(env_file(tmp_path, INTERCOM_UNLOCK_FROM="desk,source:home_assistant"))
    assert with_ha.unlock_from == ("desk", "source:home_assistant")  # Home Assistant's Open door, opted in


@pytest.mark.parametrize(
    ("mode", "who"),
    [
        (0o644, "readable by every user"),
        (0o604, "readable by every user"),
        (0o602, "writable by every user"),
        (0o660, "writable by its group"),
        (0o620, "writable by its group"),
    ],
)
def test_an_env_file_others_can_read_or_change_is_refused(tmp_path, mode, who, capsys):
    path = env_file(tmp_path)
    path.chmod(mode)
    with pytest.raises(SettingsError, match=rf"{who} \(mode {mode:o}\).*chmod 640"):
        check_env_file(path)
    assert main(["config", "check", "--env-file", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"intercom config: {path}: {who}")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_the_installers_env_file_modes_pass(tmp_path, mode):
    path = env_file(tmp_path)
    path.chmod(mode)
    settings, _ = load_settings(path)
    assert settings.identity == "front_door"


def test_an_unknown_variable_is_refused_with_the_closest_known_name(tmp_path, capsys):
    path = env_file(tmp_path, INTERCOM_BUTON_ANSWER_PIN="5")
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    assert str(refused.value).startswith("INTERCOM_BUTON_ANSWER_PIN: unknown; did you mean INTERCOM_BUTTON_ANSWER_PIN?")
    assert main(["config", "check", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "INTERCOM_BUTON_ANSWER_PIN: unknown; did you mean INTERCOM_BUTTON_ANSWER_PIN?" in err
    assert "valid" not in err


def test_an_unknown_sound_variable_and_one_like_nothing_are_refused(tmp_path):
    with pytest.raises(
        SettingsError, match=r"INTERCOM_AUDIO_SPEAKR_GAIN: unknown; did you mean INTERCOM_AUDIO_SPEAKER_GAIN\?"
    ):
        load_settings(env_file(tmp_path, INTERCOM_AUDIO_SPEAKR_GAIN="0.5"))
    with pytest.raises(SettingsError, match=r"INTERCOM_ZZZ: unknown \(see deploy/intercom.env.example\)"):
        load_settings(env_file(tmp_path, INTERCOM_ZZZ="1"))


def test_variables_of_other_programs_in_the_file_are_left_alone(tmp_path):
    settings, _ = load_settings(env_file(tmp_path, PYTHONUNBUFFERED="1", LANG="C.UTF-8"))
    assert settings.role == "door"


def test_a_missing_env_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match=r"intercom\.env: cannot read the settings \(No such file"):
        load_settings(tmp_path / "intercom.env")


def test_the_example_documents_every_variable_with_its_default(tmp_path):
    documented = {}
    for line in EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            documented[name] = value
    path = tmp_path / "intercom.env"
    path.write_text(EXAMPLE.read_text() + "".join(f"{name}={value}\n" for name, value in REQUIRED.items()))
    path.chmod(0o600)
    settings, audio = load_settings(path)
    resolved = {**shown(settings), **shown(audio)}
    assert set(documented) == set(resolved)  # every variable, and nothing else
    for name, value in documented.items():
        if name not in REQUIRED:
            assert resolved[name] == value, name  # the example's value is the default


# Any text is a valid value for these: a device is looked up by name when the unit starts, and a
# sound card that is not there is an error the unit shows and recovers from (the audio issue).
FREE_TEXT = {"INTERCOM_AUDIO_MICROPHONE", "INTERCOM_AUDIO_SPEAKER"}


def test_every_variable_has_a_bad_value_case():
    cases = {variable for variable, _, _ in BAD_VALUES} | {variable for variable, _, _ in BAD_EMBEDDED_VALUES}
    variables = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields}
    variables |= {f"{PREFIX}AUDIO_{name.upper()}" for name in AudioSettings.model_fields}
    assert variables - FREE_TEXT - cases == set()


FINGERPRINT = "AB:" * 31 + "CD"


def test_a_fingerprint_is_taken_in_any_common_spelling(tmp_path):
    spelt = "sha256:" + FINGERPRINT.lower().replace(":", "")
    settings, _ = load_settings(env_file(tmp_path, INTERCOM_HUB_FINGERPRINT=spelt))
    assert settings.hub_fingerprint == FINGERPRINT and settings.plain_hub_warning() is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"INTERCOM_HUB_FINGERPRINT": FINGERPRINT, "INTERCOM_HUB_CA_FILE": "/nowhere/ca.pem"},
            "INTERCOM_HUB_FINGERPRINT and INTERCOM_HUB_CA_FILE: set one",
        ),
        (
            {"INTERCOM_HUB_URL": "ws://desk.local:8443", "INTERCOM_HUB_FINGERPRINT": FINGERPRINT},
            "INTERCOM_HUB_FINGERPRINT: is for a wss:// hub, and INTERCOM_HUB_URL is ws://desk.local:8443",
        ),
        ({**EMBEDDED, "INTERCOM_HUB_TLS": "off", "INTERCOM_HUB_CERT_FILE": "/etc/hostname",
          "INTERCOM_HUB_KEY_FILE": "/etc/hostname"}, "INTERCOM_HUB_TLS: off, and INTERCOM_HUB_CERT_FILE is set"),
    ],
)  # fmt: skip
def test_ways_of_trusting_the_hub_that_contradict_each_other_are_named(tmp_path, values, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file(tmp_path, **values))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_config_check_tells_a_unit_on_plain_ws_beyond_loopback_the_lines_to_change(tmp_path, capsys):
    path = env_file(tmp_path, INTERCOM_HUB_URL="ws://desk.local:8443")
    assert main(["config", "check", "--env-file", str(path)]) == 0  # works, for now
    out, err = capsys.readouterr()
    assert "INTERCOM_HUB_URL=ws://desk.local:8443" in out  # what the unit uses
    lines = err.splitlines()
    assert lines[0].startswith("warning: INTERCOM_HUB_URL is plain ws://desk.local:8443: this unit's token")
    assert "INTERCOM_HUB_URL=wss://desk.local:8443" in lines
    assert "INTERCOM_HUB_FINGERPRINT=<what `intercom units add` prints on the hub>" in lines

    acknowledged = env_file(tmp_path, INTERCOM_HUB_URL="ws://192.168.1.20:8443", INTERCOM_HUB_INSECURE="true")
    assert main(["config", "check", "--env-file", str(acknowledged)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: INTERCOM_HUB_INSECURE=true: plain ws://192.168.1.20:8443") and err.count("\n") == 1


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8443", "ws://localhost:8443", "ws://[::1]:8443", "wss://desk:8443"])
def test_plain_ws_to_this_machine_and_wss_are_not_warned_about(tmp_path, capsys, url):
    assert main(["config", "check", "--env-file", str(env_file(tmp_path, INTERCOM_HUB_URL=url))]) == 0
    assert capsys.readouterr().err == ""
