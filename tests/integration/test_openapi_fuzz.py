"""schemathesis against the served /openapi.json: no 5xx and no response off its schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from serving_fixtures import Server, build_registry, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("fuzz")
    build_registry(home)
    yield from running(home)


def test_api_conforms_to_its_schema(fuzz_server: Server) -> None:
    """Every generated request, on every operation, gets an answer that is not a 5xx and fits
    the documented status codes, content types and response schemas."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=checks)

        run()

    assert len(operations) == 22  # every documented operation was exercised
