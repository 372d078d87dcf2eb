"""schemathesis against the served /openapi.json: no 5xx and no response off its schema, with
and without an admin token (with one, the admin operations are exercised past their 401)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from serving_fixtures import ADMIN, Server, build_registry, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 20
"""Generated requests per operation and token: bounded, and the same ones every run
(derandomized: hypothesis derives them from the test, not from a clock)."""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("fuzz")
    build_registry(home)
    yield from running(home)


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("token", [None, ADMIN], ids=["no-token", "admin-token"])
def test_api_conforms_to_its_schema(
    fuzz_server: Server, token: str | None, mode: schemathesis.GenerationMode
) -> None:
    """Every generated request (bodies, parameters and headers that fit the schema, and ones
    that do not), on every operation, gets an answer that is not a 5xx (but a documented 503)
    and fits the documented status codes, content types and response schemas."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {token}"} if token else None
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    unbreakable: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=checks, headers=headers)

        try:
            run()
        except Unsatisfiable:  # nothing to break: no parameters and no body to make wrong
            unbreakable.append(operation.label)
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")

    assert failures == []
    assert len(operations) == 24  # every documented operation was exercised
    # no request breaks the schema of an operation whose only inputs are free-text path
    # parameters; every operation with a body got bodies that break it
    with_body = [o.label for o in operations if o.body]
    assert with_body
    assert not set(with_body) & set(unbreakable)
