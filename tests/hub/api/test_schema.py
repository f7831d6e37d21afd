"""Schemathesis against the Voice API: no request it makes gets a 5xx, every answer keeps to the
OpenAPI schema, and what the schema forbids is refused. Bounded (examples per operation) so that
the run takes well under a minute.

Schema-valid bodies may still be refused (422): a step's options depend on its action, and a
schema does not say so; hence no ``positive_data_acceptance``.

One app serves every operation's run (schemathesis keeps an ASGI app's lifespan running until
the process ends, and ``schemathesis.pytest.from_fixture`` fails under pytest 9); each run gets
a database of its own by swapping the app's storage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from intercom.auth import ADMIN
from intercom.hub import HubConfig, Storage, blocking, create_app
from intercom.hub.call_service import CallService
from intercom.hub.registrar import Registrar

from .call_log import door_call

MAX_EXAMPLES = 50  # per operation: 19 operations, ~50 s in all on a busy 2-core box

_SHELL = tempfile.TemporaryDirectory(prefix="voice-api-schema-")
APP = create_app(HubConfig(data_dir=_SHELL.name))
_READER = blocking(APP.state.storage.create_key("schema reader", ADMIN))  # the schema is for admin keys only
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, headers={"Authorization": f"AccessKey {_READER.secret}"}
).include(path_regex="^/v1/")
# Unknown query parameters are ignored, as most APIs do; do not count them as refusable.
schema.config.generation.update(allow_extra_parameters=False)
# A body over the hub's request-body limit is refused with 413 before it is read, whatever it holds.
_REJECTION = schema.config.checks.negative_data_rejection
_REJECTION.expected_statuses = [*_REJECTION.expected_statuses, "413"]


@pytest.fixture
def headers(tmp_path) -> Iterator[dict[str, str]]:
    """A fresh database with a call in its log, and the header that opens it."""
    shell = APP.state.storage, APP.state.calls
    storage = Storage(tmp_path / "hub")
    key = blocking(storage.create_key("schemathesis", ADMIN))
    blocking(door_call(storage))
    config = APP.state.config
    # The real call service: a call it is asked to make rings nobody (no client is registered)
    # and ends at once, logged with its reason.
    APP.state.storage = storage
    APP.state.calls = CallService(config, Registrar(config, storage.get_key), storage, storage.get_key)
    yield {"Authorization": f"AccessKey {key.secret}"}
    APP.state.storage, APP.state.calls = shell
    storage.close()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_keeps_to_its_schema(case, headers):
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
