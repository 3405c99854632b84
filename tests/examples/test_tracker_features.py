"""The tracker's tenants differ in a feature flag (csv-export) and a plugin (webhooks) as well
as their brand; the pages follow a change made with the CLI in another process within a
second; the plugin's events are queued in the tracker's own transactions and delivered signed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import Session

from examples.tracker import features
from examples.tracker.app import create_app
from examples.tracker.models import Base, Project
from examples.tracker.seed import seed
from tenantry import Tenantry
from tenantry.contrib.webhooks import Delivery, deliver_pending, verify
from tests.examples.support import LOGIN, TENANTS, csrf_of, lift_edge_limits
from tests.plugins.receiver import Receiver
from tests.support import Scratch, run_cli

WITHIN = 1.0
SECRET = "whsec_aW5pdGVjaC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyE="


@dataclass
class Site:
    tn: Tenantry
    app: FastAPI
    runner: asyncio.Runner
    db: Scratch

    def page(self, slug: str, path: str, *, signed_in: bool = True) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=f"http://{slug}.localhost"
            ) as client:
                if signed_in:
                    assert (await client.post("/login", data={"email": LOGIN[slug]})).status_code == 303
                return await client.get(path)

        return self.runner.run(go())

    def post(self, slug: str, path: str, data: dict[str, str], *, form_page: str) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=f"http://{slug}.localhost"
            ) as client:
                assert (await client.post("/login", data={"email": LOGIN[slug]})).status_code == 303
                token = csrf_of((await client.get(form_page)).text)
                return await client.post(path, data={**data, "csrf": token})

        return self.runner.run(go())


@pytest.fixture(scope="module")
def site(server_url: str) -> Iterator[Site]:
    """The tracker with its plugins on a database of its own: acme, globex, initech seeded and
    made to differ as the demo does."""
    db = Scratch(server_url)
    tn = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest", plugins=features.plugins(allow_private=True))
    runner = asyncio.Runner()
    try:
        tn.schema.init()
        lift_edge_limits(tn)
        for slug, plan in TENANTS.items():
            tn.tenants.create(slug, name=f"{slug.title()} Corporation", plan=plan)
            seed(tn, slug)
        assert features.ensure_features(tn) == {"flag_created": True, "plugin_enabled": True}
        assert features.ensure_features(tn) == {"flag_created": False, "plugin_enabled": False}  # once only
        yield Site(tn=tn, app=create_app(tn), runner=runner, db=db)
    finally:
        try:
            runner.run(tn.aclose())
        finally:
            runner.close()
            db.drop()


def _project_id(site: Site, slug: str) -> int:
    with site.tn.tenant(slug), Session(site.tn.engine()) as session:
        found = session.scalar(sa.select(Project.id).order_by(Project.id).limit(1))
    assert found is not None
    return found


def _deliveries(site: Site, slug: str) -> list[Delivery]:
    with site.tn.tenant(slug), Session(site.tn.engine()) as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


def test_tenants_differ_in_features_and_plugins(site: Site) -> None:
    shown = {}
    for slug in TENANTS:
        dashboard = site.page(slug, "/").text
        project = site.page(slug, f"/projects/{_project_id(site, slug)}").text
        shown[slug] = ('id="nav-webhooks"' in dashboard, 'id="export-csv"' in project)
    assert shown == {"acme": (False, False), "globex": (False, True), "initech": (True, False)}
    assert site.page("acme", "/webhooks").status_code == 404
    assert site.page("initech", "/webhooks").status_code == 200
    assert site.page("acme", f"/projects/{_project_id(site, 'acme')}/tasks.csv").status_code == 404
    exported = site.page("globex", f"/projects/{_project_id(site, 'globex')}/tasks.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["task", "title", "status", "priority", "assignee", "due"] and len(rows) > 1
    # the plugin's own routes: signed-in members of a tenant that has it, no one else
    assert site.page("initech", "/_plugins/webhooks/", signed_in=False).status_code == 403
    assert site.page("initech", "/_plugins/webhooks/").json()["plugin"] == "webhooks"
    assert site.page("acme", "/_plugins/webhooks/").status_code == 404


def test_csv_cells_are_not_formulas(site: Site) -> None:
    project_id = _project_id(site, "globex")
    response = site.post(
        "globex", f"/projects/{project_id}/tasks", {"title": '=HYPERLINK("x")'}, form_page=f"/projects/{project_id}"
    )
    assert response.status_code == 303
    rows = list(csv.reader(io.StringIO(site.page("globex", f"/projects/{project_id}/tasks.csv").text)))
    assert ['\'=HYPERLINK("x")'] == [r[1] for r in rows if "HYPERLINK" in r[1]]


def test_new_projects_and_tasks_become_signed_webhooks(site: Site) -> None:
    with Receiver() as receiver:
        site.tn.config.set("webhooks", {"url": receiver.url + "/inbox", "secret": SECRET}, tenant="initech")
        before = len(_deliveries(site, "initech"))
        created = site.post("initech", "/projects", {"name": "Flair Audit", "key": "FLR"}, form_page="/projects")
        assert created.status_code == 303
        project_id = int(created.headers["location"].rsplit("/", 1)[1])
        added = site.post(
            "initech",
            f"/projects/{project_id}/tasks",
            {"title": "Count the flair", "priority": "high"},
            form_page=f"/projects/{project_id}",
        )
        assert added.status_code == 303
        duplicate = site.post("initech", "/projects", {"name": "Again", "key": "FLR"}, form_page="/projects")
        assert duplicate.status_code == 422  # refused: its event was never queued either
        acme = site.post("acme", "/projects", {"name": "Rocket Sled", "key": "RSL"}, form_page="/projects")
        assert acme.status_code == 303 and _deliveries(site, "acme") == []  # no plugin, no queue
        rows = _deliveries(site, "initech")[before:]
        assert [r.event for r in rows] == ["project.created", "task.created"]
        real = site.tn.plugins.tenants
        site.tn.plugins.tenants = lambda name: [t for t in real(name) if t[1] == "initech"]  # type: ignore[method-assign]
        try:
            report = deliver_pending(site.tn)
        finally:
            del site.tn.plugins.tenants
        assert report.delivered == 2
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [(b["type"], b["tenant"]) for b in bodies] == [("project.created", "initech"), ("task.created", "initech")]
    assert bodies[0]["data"]["key"] == "FLR" and bodies[1]["data"]["title"] == "Count the flair"
    assert all(verify(SECRET, r.headers, r.body) for r in receiver.received)
    page = site.page("initech", "/webhooks").text
    assert "project.created" in page and receiver.url in page and SECRET not in page


def _cli(db: Scratch, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(db, *args)


def test_cli_changes_show_in_a_running_app_within_a_second(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """Another process of the app (its own Tenantry and caches) serves acme while the CLI, in
    a process of its own, switches the plugin and the flag on for acme."""
    running = Tenantry(site.db.settings(), metadata=Base.metadata, plugins=features.plugins())
    app = create_app(running)
    view = Site(tn=running, app=app, runner=site.runner, db=site.db)
    project = f"/projects/{_project_id(site, 'acme')}"

    def looks() -> tuple[bool, bool]:
        return 'id="nav-webhooks"' in view.page("acme", "/").text, 'id="export-csv"' in view.page("acme", project).text

    try:
        assert looks() == (False, False)  # warm: both answers now come from the caches
        assert running.plane._listener is not None and running.plane._listener.listening.wait(10)
        timings = {}
        for what, args in {
            "plugin": ("plugins", "enable", "webhooks", "--tenant", "acme"),
            "flag": (
                "flags",
                "set",
                "csv-export",
                "--rules",
                json.dumps(
                    [{"when": [{"attribute": "tenant", "op": "in", "value": ["globex", "acme"]}], "variant": "on"}]
                ),
            ),
        }.items():
            wanted = (True, what == "flag")
            done = _cli(site.db, *args)
            exited = time.monotonic()
            assert done.returncode == 0, done.stderr
            while looks() != wanted:
                assert time.monotonic() - exited < 5, f"the {what} change never showed"
                time.sleep(0.01)
            timings[what] = time.monotonic() - exited
        assert max(timings.values()) < WITHIN
        assert view.page("acme", "/webhooks").status_code == 200
        assert 'id="nav-webhooks"' not in view.page("globex", "/").text  # only acme changed
        with capsys.disabled():
            print(
                "\n  CLI change -> running tracker: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
            )
    finally:
        site.runner.run(running.aclose())
        assert _cli(site.db, "plugins", "reset", "webhooks", "--tenant", "acme").returncode == 0
        globex_only = [{"when": [{"attribute": "tenant", "op": "in", "value": ["globex"]}], "variant": "on"}]
        assert _cli(site.db, "flags", "set", "csv-export", "--rules", json.dumps(globex_only)).returncode == 0
