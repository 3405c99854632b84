"""schemathesis against the published OpenAPI spec: generated requests to every operation, with
an admin token, on a catalog of their own; no 5xx, every answer as the spec says (status
code, content type, headers, body schema), and invalid requests refused with a 4xx.

``POST /v1/cells`` is left out: it connects to the server its body names, and generated
connection strings must not reach anything outside this machine. ``POST
/v1/domains/{hostname}/verify`` stays in, with checkers that refuse at once (:class:`Refuse`):
the default ones would send HTTP requests and DNS queries for generated hostnames to the
internet, and wait on their timeouts. The Tenantry knows the test app's config schema, so the
config operations validate against it. Each operation runs ``MAX_EXAMPLES`` examples, which
keeps the run around a minute, on the run's first server only (see :func:`fuzzed`).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tenantry import Tenantry, Verdict
from tenantry.api import create_admin_app
from tenantry.services.domain_checks import Method
from tenantry.testing import servers
from tests.config.app_config import AppConfig
from tests.model_app import Base
from tests.support import Scratch

MAX_EXAMPLES = 10  # per operation and mode: ~70 operations, one server (CI time: lean)


class Refuse:
    """A domain checker that touches no network: every check fails at once."""

    def __init__(self, method: Method) -> None:
        self.method: Method = method

    def check(self, hostname: str, token: str) -> Verdict:
        return Verdict(False, f"{hostname} is not checked in this test")


@pytest.fixture(scope="module")
def fuzzed(server_url: str, tenantry_server: str, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """The app over a catalog of its own (whatever the generated requests do stays there),
    with a few tenants to find, and an admin token. On the run's first server only: the
    contract does not change with the server, and the other API tests run on every server
    (this fuzz is the suite's slowest file: CI time)."""
    first = servers(request.config)[0]
    if tenantry_server != first:
        pytest.skip(f"the API's contract is fuzzed on the run's first server ({first})")
    scratch = Scratch(server_url)
    tn = Tenantry(scratch.settings(), metadata=Base.metadata, actor="schemathesis", config=AppConfig)
    try:
        tn.schema.init()
        for slug in ("acme", "globex", "initech"):
            tn.tenants.create(slug)
        tn.domains.add("shop.acme.com", "acme")
        tn.flags.create({"key": "new-dashboard", "rollout": 50})
        tn.plugins.enable("webhooks", tenant="acme")
        tn.plugins.report_error("webhooks", "on_tenant_created", RuntimeError("boom"), tn.tenants.get("acme").id)
        _, secret = tn.tokens.create("fuzzer", ["admin"])
        app = create_admin_app(tn, domain_checkers={"http": Refuse("http"), "dns": Refuse("dns")})
        yield app, secret
        app.state.jobs.close()
    finally:
        tn.close()
        scratch.drop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_the_api_keeps_to_its_spec(fuzzed: tuple[Any, str], mode: GenerationMode) -> None:
    """Valid requests: no 5xx, answers as specified. Invalid ones (wrong types, missing
    fields, values out of range): refused with a 4xx problem document, never a 5xx."""
    app, secret = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(method="POST", path="/v1/cells")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.path in ("/healthz", "/readyz"):
            continue  # no parameters and no token: nothing to make invalid
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Any) -> None:
            if any(isinstance(value, (list, dict)) for value in (case.query or {}).values()):
                # an array or object in the query arrives as something valid: an empty one as
                # nothing at all, an array as repeated values of which a one-value parameter
                # takes one (`prefix=[false]` is sent as `prefix=false`, a valid prefix), an
                # object as other parameters; the check would fail the valid request that arrives
                reject()
            # schema-valid is not always acceptable: a slug the naming rules refuse, a cursor
            # of another list, a plan that does not exist are 4xx by design
            case.call_and_validate(
                headers={"Authorization": f"Bearer {secret}"}, excluded_checks=[positive_data_acceptance]
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as err:  # every operation is tried; all failures are reported
            failures[operation.label] = "".join(traceback.format_exception_only(err))[-3000:]
    assert operations >= 50
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
