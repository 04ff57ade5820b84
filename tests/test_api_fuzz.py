"""Property-based run of the whole API over its own OpenAPI schema (schemathesis, in-process).

Every operation in /api/schema/ gets generated valid and invalid requests with a real token;
none may answer 5xx, and every answer must match the documented status codes and bodies.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from trackdesk.wsgi import application

from .factories import AffiliateFactory, ClickFactory, OfferFactory

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Modest, so the whole run stays within seconds; CI runs it on every push. FUZZ_EXAMPLES raises
# it for the figure in docs/security-and-reliability.md (run with -s to see the count).
EXAMPLES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the database connection after each request (Django's own test
    client switches that off too): it would close the connection holding the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def auth(api_user):
    return {"Authorization": f"Token {Token.objects.create(user=api_user).key}"}


def operation_failures(operation, mode, auth, calls: list) -> list[str]:
    """The first failure schemathesis finds for one operation in one mode (valid/invalid data).
    Each request made is appended to `calls` (for the count the docs give)."""
    failures = []

    @EXAMPLES
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        if failures:
            return
        calls.append(operation.label)
        try:
            case.call_and_validate(headers=auth, checks=CHECKS)
        # Collected, not raised: one run reports every failing operation.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} ({mode.value} data): {exc}")

    run()
    return failures


def test_api_answers_without_server_errors_and_as_documented(keep_test_connection, auth):
    offer = OfferFactory()  # some rows to find, so reads and writes get past "not found"
    ClickFactory(offer=offer, affiliate=AffiliateFactory())
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, headers=auth)

    failures, calls, operations = [], [], set()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.add(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += operation_failures(operation, mode, auth, calls)
    print(f"\nfuzz: {len(calls)} requests, {len(operations)} operations, {len(failures)} failing")
    assert set(calls) == operations  # every operation of the schema was exercised
    assert not failures, "\n\n".join(failures)
