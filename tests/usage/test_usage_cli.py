"""``tenantry usage``: the usage table per tenant and the top N as JSON, hot tenants, storage
measured and shown; a bad value exits 2 with one line naming the option."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tenantry import Tenant, Tenantry


@pytest.fixture(autouse=True)
def _no_flusher(tn: Tenantry) -> None:
    """The session's flusher (started by any edge an earlier test built) stopped: the tests
    flush by hand, and a flush of the thread's in between would split what they count."""
    tn.usage.close()


def test_usage_top_hot_and_storage(
    tn: Tenantry, make_tenant: Callable[..., Tenant], cli: Callable[..., tuple[int, str, str]]
) -> None:
    a, b = make_tenant("cliu"), make_tenant("cliu")
    assert tn.usage.meter is not None
    tn.usage.flush()
    for _ in range(5):
        tn.usage.meter.request(a.id, 200, 0.001)
    tn.usage.meter.request(b.id, 404, 0.001)
    tn.usage.meter.transaction(a.id, 1000.0)  # (more than every other test counts: hot whatever ran before)
    tn.usage.flush()
    code, out, err = cli("usage", "--tenant", a.slug, "--since", "10m", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["tenant"], r["requests"]) for r in doc["tenants"]] == [(a.slug, 5)]  # a's only
    code, out, _ = cli("usage", "--top", "1000", "--since", "10m", "--json")
    ranked = [r["tenant"] for r in json.loads(out)["tenants"] if r["tenant"] in (a.slug, b.slug)]
    assert code == 0 and ranked == [a.slug, b.slug]
    code, out, _ = cli("usage", "--since", "10m")
    assert code == 0 and "usage since" in out and "requests" in out
    code, out, _ = cli("usage", "hot", "--share", "0.5", "--since", "1m", "--json")
    assert code == 0 and a.slug in [h["tenant"] for h in json.loads(out)["tenants"]]
    code, out, err = cli("usage", "storage", "--measure", "--tenant", a.slug, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["measured"]["tenants"] >= 2 and [r["tenant"] for r in doc["tenants"]] == [a.slug]
    code, out, _ = cli("usage", "maintain", "--json")
    assert code == 0 and json.loads(out)["retention_days"] == 31


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["usage", "--since", "yesterday"], "--since"),
        (["usage", "--top", "0"], "--top"),
        (["usage", "--by", "bytes"], "--by"),
        (["usage", "hot", "--share", "2"], "--share"),
        (["usage", "storage", "--method", "guess"], "--method"),
        (["usage", "maintain", "--retention-days", "0"], "--retention-days"),
    ],
)
def test_bad_values_exit_2_naming_the_option(
    cli: Callable[..., tuple[int, str, str]], args: list[str], field: str
) -> None:
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and field in err, err
