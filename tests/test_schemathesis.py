"""Property-based checks of /api/v1 against its own OpenAPI document (schemathesis): no server errors,
and responses that conform to the documented status codes, content types and schemas.

schemathesis' pytest plugin (`from_fixture`) does not work with pytest 9 yet, so each operation's
hypothesis strategy is driven here directly."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from test_roles import world  # noqa: F401  (the same library and users)

EXAMPLES = 60
#: rules across parameters (from ≤ to, amount_min ≤ amount_max) that JSON Schema cannot state: a request
#: breaking them is schema-valid yet rightly answered 400, so "valid data is accepted" does not hold there
#: (statistics: also the dimensions each database has, and organisations slice by one)
CROSS_FIELD_RULES = {"/api/v1/search", "/api/v1/stats/cases", "/api/v1/stats/cases.csv", "/api/v1/stats/cases.xlsx",
                     "/api/v1/stats/databases/{database}", "/api/v1/stats/databases/{database}.csv",
                     "/api/v1/stats/databases/{database}.xlsx"}


def _not_applicable(case) -> list:
    """Checks whose premise fails for this case (see CROSS_FIELD_RULES; in a query string every value is
    text, so a 'boolean' or 'integer' cause is the valid cause 'false' or '12', not invalid data)."""
    excluded = [positive_data_acceptance] if case.operation.path in CROSS_FIELD_RULES else []
    if case.method == "GET" and case.query:
        excluded.append(negative_data_rejection)
    return excluded


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_documented_promises(world, mode):  # noqa: F811
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world[0])
    headers = {"Authorization": f"Bearer {world[2]['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers, excluded_checks=_not_applicable(case))

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, "only an operation without inputs has no invalid request"
