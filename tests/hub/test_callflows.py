"""Call flows: checked at creation, stored in SQLite, managed from the command line."""

from __future__ import annotations

import json

import pytest

from intercom.cli import main
from intercom.hub.callflows import CallFlow, CallFlowError, TransferOptions

DOOR_FLOW = {
    "id": "door",
    "title": "Front door",
    "steps": [
        {"id": "ring", "action": "transfer", "options": {"destination": "client:desk,client:kitchen", "timeout": 20}},
        {"id": "bye", "action": "hangup"},
    ],
}


def test_a_flow_in_the_voice_api_form_is_read_with_its_defaults():
    flow = CallFlow.from_json(json.dumps(DOOR_FLOW))
    ring = flow.steps[0].typed_options()
    assert isinstance(ring, TransferOptions)
    assert ring.identities == ["desk", "kitchen"] and ring.timeout == 20
    assert flow.record is False
    plain = CallFlow.from_json('{"steps": [{"action": "transfer", "options": {"destination": "client:desk"}}]}')
    assert plain.steps[0].typed_options().timeout == 30
    assert plain.id and plain.steps[0].id  # generated


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ({"steps": []}, "steps: List should have at least 1 item"),
        ({"steps": [{"id": "s", "action": "say", "options": {}}]}, "say step 's': options.payload: Field required"),
        ({"steps": [{"action": "dance"}]}, "steps.0.action: Input should be"),
        ({"steps": [{"action": "transfer", "options": {"destination": "+31612345678"}}]}, "is not client:<identity>"),
        ({"steps": [{"action": "transfer", "options": {"destination": "client:bad name"}}]}, "'client:bad name'"),
        ({"steps": [{"action": "transfer", "options": {"destination": "client:desk", "timeout": 0}}]}, "timeout"),
        ({"steps": [{"action": "transfer", "options": {"destination": "client:desk", "ring": 1}}]}, "ring"),
        ({"steps": [{"action": "transfer", "options": {}}]}, "destination"),
        ({"steps": [{"action": "hangup", "options": {"now": True}}]}, "takes no options"),
        ({"steps": [{"id": "a", "action": "hangup"}, {"id": "a", "action": "hangup"}]}, "step id 'a' is used twice"),
        ({"steps": [{"action": "hangup"}], "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_flows_are_refused_with_the_reason(flow, message):
    with pytest.raises(CallFlowError) as refused:
        CallFlow.from_json(json.dumps(flow))
    assert message in str(refused.value)


def test_not_json_is_refused():
    with pytest.raises(CallFlowError, match="Invalid JSON"):
        CallFlow.from_json("{steps: [")


def test_a_condition_on_nan_is_refused():
    """It would be stored as null, and the flow could not be read back."""
    text = '{"steps": [{"action": "hangup", "conditions": [{"variable": "a", "operator": "==", "value": NaN}]}]}'
    with pytest.raises(CallFlowError, match=r"steps\.0\.conditions\.0\.value"):
        CallFlow.from_json(text)


async def test_storage_keeps_flows_across_a_reopen_and_refuses_a_taken_id(open_storage):
    storage = await open_storage("")
    stored = await storage.create_call_flow(CallFlow.from_json(json.dumps(DOOR_FLOW)))
    assert stored.created_at is not None and stored.created_at == stored.updated_at
    with pytest.raises(CallFlowError, match="exists already"):
        await storage.create_call_flow(CallFlow.from_json(json.dumps(DOOR_FLOW)))
    await storage.aclose()
    reopened = await open_storage("")
    assert await reopened.get_call_flow("door") == stored
    assert [flow.id for flow in await reopened.list_call_flows()] == ["door"]
    assert await reopened.delete_call_flow("door")
    assert not await reopened.delete_call_flow("door")
    assert await reopened.get_call_flow("door") is None


async def test_one_default_flow_at_most_and_a_replaced_flow_keeps_its_creation_time(storage):
    day = await storage.create_call_flow(CallFlow.model_validate({**DOOR_FLOW, "id": "day", "default": True}))
    night = await storage.create_call_flow(CallFlow.model_validate({**DOOR_FLOW, "id": "night", "default": True}))
    assert (await storage.default_call_flow()).id == "night" and not (await storage.get_call_flow("day")).default
    replaced = await storage.replace_call_flow(CallFlow.model_validate({**DOOR_FLOW, "id": "day", "default": True}))
    assert replaced.created_at == day.created_at and replaced.updated_at >= night.created_at
    assert (await storage.default_call_flow()).id == "day"
    assert await storage.replace_call_flow(CallFlow.model_validate({**DOOR_FLOW, "id": "none"})) is None
    assert [flow.id for flow in await storage.list_call_flows(offset=1, limit=1)] == ["night"]
    assert await storage.count_call_flows() == 2


def test_cli_create_list_show_delete(tmp_path, capsys):
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(DOOR_FLOW))
    data = ["--data-dir", str(tmp_path / "hub")]
    assert main(["callflows", "create", *data, "--file", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "door"
    assert main(["callflows", "list", *data]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["title"] == "Front door"
    assert listed["steps"][0]["options"]["destination"] == "client:desk,client:kitchen"
    assert "createdAt" in listed
    assert main(["callflows", "show", *data, "door"]) == 0
    assert json.loads(capsys.readouterr().out) == listed
    assert main(["callflows", "delete", *data, "door"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "door", "deleted": True}


def test_cli_refuses_bad_input_and_stores_nothing(tmp_path, capsys):
    data = ["--data-dir", str(tmp_path / "hub")]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"action": "transfer", "options": {"destination": "desk"}}]}))
    assert main(["callflows", "create", *data, "--file", str(bad)]) == 2
    assert "is not client:<identity>" in capsys.readouterr().err
    assert main(["callflows", "create", *data, "--file", str(tmp_path / "missing.json")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["callflows", "show", *data, "nope"]) == 2
    assert main(["callflows", "delete", *data, "nope"]) == 2
    capsys.readouterr()
    assert main(["callflows", "list", *data]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("flow", "parameter"),
    [
        ({"steps": [{"id": "s", "action": "say", "options": {}}]}, "steps.0.options.payload"),
        ({"steps": [{"action": "hangup"}, {"action": "hangup", "options": {"now": True}}]}, "steps.1.options"),
        ({"steps": [{"id": "a", "action": "hangup"}, {"id": "a", "action": "hangup"}]}, "steps.1.id"),
        ({"steps": [{"action": "hangup", "onKeypressGoto": "nowhere"}]}, "steps.0.onKeypressGoto"),
        ({"steps": []}, "steps"),
    ],
)
def test_each_problem_names_the_field_as_a_path(flow, parameter):
    with pytest.raises(CallFlowError) as refused:
        CallFlow.from_json(json.dumps(flow))
    (problem,) = refused.value.problems
    assert problem.parameter == parameter
    assert str(refused.value) == problem.message


# Every option MessageBird documents for its steps, each set to ask for something.
MESSAGEBIRD_OPTIONS = {
    "steps": [
        {"id": "t", "action": "transfer", "options": {
            "destination": "client:desk", "record": "both", "mask": True, "ifMachine": "hangup", "machineTimeout": 3000,
        }},
        {"id": "s", "action": "say", "options": {
            "payload": "Hello", "voice": "male", "language": "nl-NL", "repeat": "2", "ifMachine": "delay",
            "machineTimeout": 400,
        }},
        {"id": "p", "action": "play", "options": {
            "media": ["a.wav", "https://example.test/b.mp3"], "ifMachine": "continue",
        }},
        {"id": "w", "action": "pause", "options": {"length": 2}},
        {"id": "r", "action": "record", "options": {
            "maxLength": 0, "timeout": 0, "finishOnKey": "any", "transcribe": True, "transcribeLanguage": "nl-NL",
            "onFinish": "https://example.test/voicemail",
        }},
        {"id": "f", "action": "fetchCallFlow", "options": {"url": "https://example.test/flow"}},
        {"id": "h", "action": "hangup"},
    ]
}  # fmt: skip


def test_every_messagebird_option_is_taken_and_those_the_hub_does_not_act_on_say_why():
    flow = CallFlow.from_json(json.dumps(MESSAGEBIRD_OPTIONS))
    assert flow.steps[2].typed_options().media == ["a.wav", "https://example.test/b.mp3"]
    assert flow.steps[1].typed_options().repeat == 2  # Node's types send it as a string
    assert flow.steps[4].typed_options().max_length == 0  # MessageBird's "no limit"
    ignored = {problem.parameter: problem.message for problem in flow.ignored()}
    assert list(ignored) == [
        "steps.0.options.ifMachine",
        "steps.0.options.machineTimeout",
        "steps.0.options.mask",
        "steps.1.options.ifMachine",
        "steps.1.options.machineTimeout",
        "steps.4.options.transcribe",
        "steps.4.options.transcribeLanguage",
    ]  # ifMachine "continue" is what the hub does: no warning
    assert ignored["steps.0.options.mask"] == (
        "transfer step 't': mask true is ignored: the hub has no numbers to show instead: the callee sees who calls"
    )
    assert ignored["steps.4.options.transcribe"].startswith(
        "record step 'r': transcribe true is ignored: the hub has no speech-to-text"
    )
    one = CallFlow.from_json('{"steps": [{"action": "play", "options": {"media": "a.wav"}}]}')
    assert one.steps[0].typed_options().media == ["a.wav"] and one.ignored() == []
    assert json.loads(one.to_json())["steps"][0]["options"] == {"media": "a.wav"}  # stored as given


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"action": "say", "options": {"payload": "x", "machineTimeout": 399}}, "steps.0.options.machineTimeout"),
        ({"action": "say", "options": {"payload": "x", "machineTimeout": 10_001}}, "steps.0.options.machineTimeout"),
        ({"action": "say", "options": {"payload": "x", "ifMachine": "beep"}}, "steps.0.options.ifMachine"),
        ({"action": "transfer", "options": {"destination": "client:a", "mask": "maybe"}}, "steps.0.options.mask"),
        ({"action": "record", "options": {"transcribeLanguage": "xx-XX"}}, "steps.0.options.transcribeLanguage"),
        ({"action": "record", "options": {"maxLength": -1}}, "steps.0.options.maxLength"),
        ({"action": "play", "options": {"media": []}}, "steps.0.options.media"),
        ({"action": "play", "options": {"media": ["a.wav", "/etc/b.wav"]}}, "steps.0.options.media.1"),
        ({"action": "play", "options": {"media": ["a.wav"] * 21}}, "steps.0.options.media"),
        ({"action": "play", "options": {"media": {"url": "a.wav"}}}, "steps.0.options.media"),
    ],
)
def test_a_messagebird_option_with_a_bad_value_is_refused_naming_it(options, parameter):
    with pytest.raises(CallFlowError) as refused:
        CallFlow.from_json(json.dumps({"steps": [options]}))
    assert [problem.parameter for problem in refused.value.problems] == [parameter]


def test_cli_create_warns_of_the_options_the_hub_ignores(tmp_path, capsys):
    path = tmp_path / "messagebird.json"
    path.write_text(json.dumps({"id": "mb", **MESSAGEBIRD_OPTIONS}))
    assert main(["callflows", "create", "--data-dir", str(tmp_path / "hub"), "--file", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "mb"
    lines = err.splitlines()
    assert len(lines) == 7 and all(line.startswith(f"{path}: warning: steps.") for line in lines)
    assert f"{path}: warning: steps.0.options.mask: transfer step 't': mask true is ignored" in err
