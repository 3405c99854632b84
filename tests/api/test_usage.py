"""``/v1/tenants/{t}/usage``, ``/v1/usage/top`` and ``/v1/usage/hot``: a tenant's usage and
storage (never another's), the busiest and the hot tenants; the ``usage:read`` scope; 422
problem documents for bad parameters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tenantry import Tenant, Tenantry
from tests.api.support import Client, MakeToken


@pytest.fixture(autouse=True)
def _no_flusher(tn: Tenantry) -> None:
    """The session's flusher (started by any edge an earlier test built) stopped: the tests
    flush by hand, and a flush of the thread's in between would split what they count."""
    tn.usage.close()


@pytest.fixture
def counted(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> tuple[Tenant, Tenant]:
    """Two tenants with usage flushed: 7 requests (2 of them 404) and 2 requests."""
    a, b = make_tenant("apiu"), make_tenant("apiu")
    assert tn.usage.meter is not None
    tn.usage.flush()
    for status in (200, 200, 200, 201, 302, 404, 404):
        tn.usage.meter.request(a.id, status, 0.002)
    tn.usage.meter.request(b.id, 200, 0.001)
    tn.usage.meter.request(b.id, 500, 0.001)
    tn.usage.meter.transaction(a.id, 0.004)
    tn.usage.flush()
    return a, b


def test_a_tenants_usage_and_nobody_elses(api: Client, counted: tuple[Tenant, Tenant]) -> None:
    a, b = counted
    doc = api.get(f"/v1/tenants/{a.slug}/usage", params={"since": "10m"}).json()
    assert doc["tenant"] == a.slug and doc["usage"]["tenant"] == a.slug
    assert (doc["usage"]["requests"], doc["usage"]["requests_2xx"], doc["usage"]["requests_4xx"]) == (7, 4, 2)
    assert doc["usage"]["transactions"] == 1
    other = api.get(f"/v1/tenants/{b.id}/usage", params={"since": "10m"}).json()
    assert other["usage"]["tenant"] == b.slug and other["usage"]["requests"] == 2
    assert other["usage"]["requests_5xx"] == 1
    top = api.get("/v1/usage/top", params={"n": 1000, "since": "10m"}).json()
    mine = [i for i in top["items"] if i["tenant"] in (a.slug, b.slug)]
    assert [(i["tenant"], i["requests"]) for i in mine] == [(a.slug, 7), (b.slug, 2)]
    hot = api.get("/v1/usage/hot", params={"share": 1, "by": "requests", "since": "10s"}).json()
    assert hot["by"] == "requests" and all(h["share"] >= 1 for h in hot["items"])


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/v1/usage/top", {"n": 0}),
        ("/v1/usage/top", {"by": "nonsense"}),
        ("/v1/usage/top", {"since": "yesterday"}),
        ("/v1/usage/hot", {"share": 1.5}),
        ("/v1/usage/hot", {"share": 0}),
        ("/v1/tenants/acme/usage", {"since": "2026-01-01T00:00:00"}),
    ],
)
def test_bad_parameters_are_422_problems(api: Client, url: str, params: dict[str, object]) -> None:
    answer = api.get(url, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_unknown_tenant_is_404_and_the_scope_is_needed(api: Client, make_token: MakeToken) -> None:
    assert api.get("/v1/tenants/no-such-tenant-here/usage").status_code == 404
    _, reader = make_token("tenants:read")
    refused = api.as_token(reader).get("/v1/usage/top")
    assert refused.status_code == 403 and refused.json()["scope"] == "usage:read"
    _, usage = make_token("usage:read")
    assert api.as_token(usage).get("/v1/usage/top").status_code == 200
