"""Moves through the API and the jobs to poll: a move done in the background, a move refused
before it began, a server killed in the middle of a move (the job says so, and its retry
finishes the move), aborts, and the job list."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tenantry import Status, Tenantry
from tenantry.services.jobs import INTERRUPTED
from tenantry.services.moves import STEPS
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem
from tests.services.test_moves import _cli, _counts, _seed, _snapshot
from tests.support import catalog_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_move_is_a_job_to_poll(api: Client, tn: Tenantry, make_tenant, make_token: MakeToken) -> None:
    token, secret = make_token("moves:write", prefix="mover")
    mover = api.as_token(secret)
    tenant = make_tenant("mv")
    before = _seed(tn, tenant, projects=6)
    rows = _snapshot(tn, tenant)
    response = mover.post(f"/v1/tenants/{tenant.slug}/move", json={"plan": "business"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "tenant.move" and job["tenant"] == tenant.slug and job["actor"] == f"token:{token.name}"
    assert job["steps"] == list(STEPS)
    done = mover.wait_job(job["id"])  # moves:write may poll its jobs
    assert done["status"] == "done", done
    assert done["steps_done"] == done["steps"] and done["step"] is None
    assert done["result"]["rows"] == before and done["result"]["to"]["isolation"] == "schema"
    assert _snapshot(tn, tenant) == rows
    assert tn.tenants.get(tenant.id).plan == "business"
    placement = mover.get(f"/v1/tenants/{tenant.slug}/placement").json()
    assert placement["active"]["tier"] == "schema" and placement["building"] is None
    moves = [e for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action.startswith("tenant.move")]
    assert {e.actor for e in moves} == {f"token:{token.name}"} and len(moves) == 2
    # listed, newest first, with the move's own durable job (kind move) beside it
    listed = mover.get("/v1/jobs", params={"tenant": tenant.slug}).json()["items"]
    assert [j["kind"] for j in listed] == ["move", "tenant.move"] and listed[1]["id"] == job["id"]
    assert listed[0]["steps_done"] == done["steps"] and listed[0]["status"] == "done"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"plan": "free"}, 422, "already lives there"),
        ({"plan": "gold"}, 404, "no plan named"),
        ({}, 422, "say where to move"),
        ({"plan": "enterprise", "cell": "nowhere"}, 422, "no cell named"),
        ({"plan": "business", "extra": 1}, 422, "extra"),
    ],
)
def test_a_refused_move_answers_its_error(api: Client, make_tenant, body: dict, status: int, fragment: str) -> None:
    tenant = make_tenant("nomv")
    problem = _problem(api.post(f"/v1/tenants/{tenant.slug}/move", json=body), status)
    assert fragment in problem["detail"]


def test_a_suspended_tenant_does_not_move(api: Client, make_tenant) -> None:
    tenant = make_tenant("susp")
    api.patch(f"/v1/tenants/{tenant.slug}", json={"status": "suspended"})
    problem = _problem(api.post(f"/v1/tenants/{tenant.slug}/move", json={"plan": "business"}), 422)
    assert "only active tenants move" in problem["detail"]


def test_abort_without_a_move(api: Client, make_tenant) -> None:
    tenant = make_tenant("noab")
    response = api.post(f"/v1/tenants/{tenant.slug}/move/abort")
    assert response.status_code == 200 and response.json() == {"aborted": False}


def test_abort_a_move_killed_midway(api: Client, tn: Tenantry, scratch, make_tenant) -> None:
    tenant = make_tenant("kab", plan="business")
    before = _seed(tn, tenant, projects=3)
    assert _cli(scratch, "tenants", "move", tenant.slug, "--plan", "free", crash="move:bulk_copy").returncode == 70
    assert api.get(f"/v1/tenants/{tenant.slug}").json()["status"] == "moving"
    assert api.get(f"/v1/tenants/{tenant.slug}/placement").json()["building"]["tier"] == "pooled"
    # the tenant is moving: its status cannot be changed meanwhile
    _problem(api.patch(f"/v1/tenants/{tenant.slug}", json={"status": "suspended"}), 409)
    response = api.post(f"/v1/tenants/{tenant.slug}/move/abort")
    assert response.json() == {"aborted": True}
    assert tn.tenants.get(tenant.id).status is Status.ACTIVE and _counts(tn, tenant) == before


def test_unknown_jobs_are_404_and_bad_ids_422(api: Client) -> None:
    assert _problem(api.get(f"/v1/jobs/{uuid.uuid4()}"), 404)["type"] == "urn:tenantry:problem:not-found"
    _problem(api.get("/v1/jobs/not-a-uuid"), 422)
    _problem(api.get("/v1/jobs?status=sleeping"), 422)
    _problem(api.get("/v1/jobs?cursor=WyJub3QgYSBkYXRlIiwgMV0"), 422)


def test_job_list_pages(api: Client, make_tenant) -> None:
    for _ in range(3):
        tenant = make_tenant("jl")
        api.post(f"/v1/tenants/{tenant.slug}/move", json={"plan": "free"})  # refused: still a failed job
    seen, url = [], "/v1/jobs?limit=2"
    while url and len(seen) < 6:
        body = api.get(url).json()
        seen += body["items"]
        url = body["next"]
    keys = [(j["created_at"], j["id"]) for j in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys) == 6
    failed = api.get("/v1/jobs", params={"status": "failed", "kind": "tenant.move"}).json()["items"]
    assert failed and all(j["status"] == "failed" and j["kind"] == "tenant.move" for j in failed)
    assert failed[0]["error_status"] == 422 and not failed[0]["resumable"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _killed_while_serving(scratch, crash: str, path: str, body: dict, secret: str) -> str | None:
    """Run ``tenantry api serve`` (set to die at ``crash``), send it one request, and wait for
    it to die; returns the id of the job it answered with (``None`` if it died first)."""
    port = _free_port()
    env = catalog_env(
        scratch,
        TENANTRY_APP="tests.model_app:Base",
        PYTHONPATH=str(ROOT),
        TENANTRY_TEST_CRASH_AFTER=crash,
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tenantry.cli.main import run; run()",
            "api",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job_id: str | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate(timeout=10)
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.2)
        try:
            response = httpx.post(f"{base}{path}", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
        except httpx.TransportError:  # died before the answer was out
            pass
        _, err = server.communicate(timeout=60)
        assert server.returncode == 70, err
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
    return job_id


def test_a_server_killed_mid_move_leaves_a_job_that_says_so(
    api: Client, tn: Tenantry, scratch, make_tenant, make_token: MakeToken
) -> None:
    """``tenantry api serve`` dies (as if killed) after the move's bulk copy: the job is then
    read as interrupted and resumable, and its retry finishes the move with every row."""
    token, secret = make_token("moves:write", prefix="killed")
    tenant = make_tenant("kill")
    before = _seed(tn, tenant, projects=5)
    rows = _snapshot(tn, tenant)
    job_id = _killed_while_serving(
        scratch, "move:bulk_copy", f"/v1/tenants/{tenant.slug}/move", {"plan": "business"}, secret
    )
    if job_id is None:
        job_id = api.get("/v1/jobs", params={"tenant": tenant.slug, "kind": "tenant.move"}).json()["items"][0]["id"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"] == INTERRUPTED
    assert job["resumable"] is True and job["steps_done"] == ["build", "capture", "bulk_copy"]
    assert job["retry"] == {
        "method": "POST",
        "path": f"/v1/tenants/{tenant.slug}/move",
        "body": {"plan": "business", "cell": None},
    }
    assert job["abort"] == f"/v1/tenants/{tenant.slug}/move/abort"
    assert job["actor"] == f"token:{token.name}"
    # the row now says so for everyone, and the tenant is served meanwhile
    with tn.admin() as conn:
        assert conn.execute("SELECT status FROM tenantry.jobs WHERE id = %s", (job_id,)).fetchone() == ("failed",)
    assert _counts(tn, tenant) == before
    retried = api.as_token(secret).post(job["retry"]["path"], json=job["retry"]["body"])
    assert retried.status_code == 202, retried.text
    done = api.wait_job(retried.json()["id"])
    assert done["status"] == "done", done
    assert done["steps_done"] == done["steps"]
    assert _snapshot(tn, tenant) == rows and tn.tenants.get(tenant.id).plan == "business"
    # the old job is no longer resumable: its operation is finished
    assert api.get(f"/v1/jobs/{job_id}").json()["resumable"] is False


def test_a_server_killed_mid_create_leaves_a_job_whose_retry_finishes_it(
    api: Client, tn: Tenantry, scratch, make_token: MakeToken
) -> None:
    _, secret = make_token("tenants:write", prefix="killed")
    slug = f"kc-{uuid.uuid4().hex[:8]}"
    request = {"slug": slug, "name": "Half Built", "plan": "business", "cell": None}
    job_id = _killed_while_serving(scratch, "create_schema", "/v1/tenants", request, secret)
    if job_id is None:
        job_id = api.get("/v1/jobs", params={"tenant": slug, "kind": "tenant.create"}).json()["items"][0]["id"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"] == INTERRUPTED and job["resumable"] is True
    assert job["steps_done"] == ["create_schema"] and job["abort"] is None
    assert job["retry"] == {"method": "POST", "path": "/v1/tenants", "body": request}
    assert api.get(f"/v1/tenants/{slug}").json()["status"] == "provisioning"
    # a retry on another plan is refused; the same request finishes the tenant
    _problem(api.post("/v1/tenants", json=request | {"plan": "enterprise"}), 409)
    retried = api.as_token(secret).post("/v1/tenants", json=job["retry"]["body"])
    assert retried.status_code == 202, retried.text
    done = api.wait_job(retried.json()["id"])
    assert done["status"] == "done" and done["steps_done"] == ["create_schema", "deploy_tables", "activate"]
    assert tn.tenants.get(slug).status is Status.ACTIVE and tn.tenants.get(slug).name == "Half Built"


def test_one_job_per_tenant_at_a_time(api: Client, tn: Tenantry, make_tenant) -> None:
    """A background job whose process is alive (its lock held) blocks another for the tenant,
    and changes to the tenant, with 409."""
    tenant = make_tenant("busy")
    runner = api.app.state.jobs
    import threading

    release = threading.Event()

    def work(started):
        started("build")
        release.wait(30)
        return {}

    submitted = runner.submit("tenant.move", tenant=tenant.slug, tenant_id=tenant.id, payload={}, actor="t", work=work)
    try:
        submitted.wait_started(10)
        running = api.get(f"/v1/jobs/{submitted.job.id}").json()
        assert running["status"] == "running" and running["step"] == "build"
        for method, path, body in (
            ("POST", f"/v1/tenants/{tenant.slug}/move", {"plan": "business"}),
            ("PATCH", f"/v1/tenants/{tenant.slug}", {"status": "suspended"}),
            ("DELETE", f"/v1/tenants/{tenant.slug}", None),
            ("POST", f"/v1/tenants/{tenant.slug}/move/abort", None),
        ):
            problem = _problem(api.request(method, path, json=body), 409)
            assert str(submitted.job.id) in problem["detail"]
    finally:
        release.set()
        runner.wait(30)
    assert api.get(f"/v1/jobs/{submitted.job.id}").json()["status"] == "done"
