"""``tenantry demo``: the example tracker, three tenants on three tiers, one command.

On a fresh machine (the embedded server, no configuration) it initialises the catalog, deploys
the tracker's tables, creates ``acme`` (plan free: pooled tables), ``globex`` (business: its
own schema) and ``initech`` (enterprise: its own database) unless they exist, seeds each that
has no data yet, gives each its own brand (colours, fonts, logo) unless it has one, makes
them differ in features (the ``csv-export`` flag on for globex, the ``webhooks`` plugin on for
the enterprise plan) unless that was set before, then serves the tracker at
``http://<slug>.localhost:<port>/`` and the admin API (when this build has one) from one
process, with the apps' lifespans (the tracker's webhook sender runs). The report ends with
the CLI as this shell runs it, the ``export`` lines it needs for the demo's data, commands to
try, and where a tenant made with the CLI gets its first member (its site's sign-in page
offers to create the first account). Ctrl-C or SIGTERM stops both servers, closes the pools
and exits 0; running it again reuses the data.

The tracker lives in ``examples/tracker`` of a source checkout; the web stack comes from the
``web`` extra (``pip install -e ".[web]"``).
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import shlex
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli.output import console, emit_json, runnable
from tenantry.cli.state import get_state
from tenantry.core.model import Status
from tenantry.errors import ConfigurationError, Conflict, TenantExists, TenantryError

if TYPE_CHECKING:
    from tenantry.app import Tenantry
    from tenantry.settings import Settings

__all__ = ["DEMO_TENANTS", "NEW_TENANT", "DemoTenant", "demo"]


@dataclass(frozen=True, slots=True)
class DemoTenant:
    slug: str
    name: str
    plan: str
    login: str
    """A seeded member to sign in as."""


DEMO_TENANTS = (
    DemoTenant("acme", "Acme Corporation", "free", "wile@acme.example"),
    DemoTenant("globex", "Globex Corporation", "business", "hank@globex.example"),
    DemoTenant("initech", "Initech", "enterprise", "bill@initech.example"),
)
#: the tracker's tables, for a CLI that builds placements (business and enterprise tenants)
TRACKER_APP = "examples.tracker.models:Base"
#: the tenant the report suggests making with the CLI
NEW_TENANT = "initrode"


def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Port of the tracker (0: any free port).")] = 8000,
    admin_port: Annotated[int, typer.Option("--admin-port", help="Port of the admin API (0: any free port).")] = 8001,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    no_seed: Annotated[
        bool, typer.Option("--no-seed", help="Create the tenants but write no sample data or brands.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the URLs as JSON, then serve.")] = False,
) -> None:
    """Run the example tracker with three tenants on three tiers, and the admin API."""
    from tenantry.app import Tenantry

    tracker = _load_tracker()
    from tenantry.cli import serving  # after _load_tracker, which explains a missing web extra

    # the demo runs an app of its own: the shell's TENANTRY_APP, _MIGRATIONS and _PLUGINS name
    # another (the user's), whose migrations would refuse the tracker's plugin tables
    settings = get_state(ctx).settings().with_changes(app=None, migrations=None, plugins=())
    tn = Tenantry(
        settings,
        metadata=tracker.models.Base.metadata,
        actor=f"demo:{getpass.getuser()}",
        plugins=tracker.features.plugins(),
    )
    sockets: list[socket.socket] = []
    # until the servers run, SIGTERM interrupts like Ctrl-C (pools closed, one line, exit 130)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        admin = _admin_api(tn)
        sockets.append(serving.listen(host, port, "--port"))
        if admin.app is not None:
            sockets.append(serving.listen(host, admin_port, "--admin-port"))
        tn.schema.init()
        tn.plugins.deploy()  # the plugins' tables in placements an older demo built without them
        if admin.app is not None:
            admin = AdminApi(app=admin.app, token=_demo_token(tn))
        tenants = [
            _ensure_tenant(
                tn, spec, seed=None if no_seed else tracker.seed.seed, brand=None if no_seed else tracker.brands.brand
            )
            for spec in DEMO_TENANTS
        ]
        if not no_seed:
            tracker.features.ensure_features(tn)
        for t in tenants:
            t["features"] = _features(tn, tracker.features, t["slug"])
        ports = [s.getsockname()[1] for s in sockets]
        report = {
            "tenants": [t | {"url": _url(f"{t['slug']}.localhost", ports[0])} for t in tenants],
            "admin_api": None
            if admin.app is None
            else {"url": _url(_shown_host(host), ports[1]), "token": admin.token},
            "admin_api_unavailable": admin.reason,
            "database": "external" if tn.settings.database_url else "embedded",
            "cli": _cli(tn.settings, tracker.root),
            # a tenant made with the CLI has nobody in it: its site offers the first account
            "new_tenant": {"slug": NEW_TENANT, "url": _url(f"{NEW_TENANT}.localhost", ports[0])},
        }

        def ready() -> None:
            if as_json:
                emit_json(report)
            else:
                _print_report(report)
            sys.stdout.flush()

        # http://localhost:<port>/ names no tenant: the demo lists its sites there
        tracker_app = tracker.app.create_app(tn, no_tenant_page=tracker.app.site_directory(tn))
        servers = [serving.server(tracker_app, sockets[0])]
        if admin.app is not None:
            servers.append(serving.server(admin.app, sockets[1]))
        asyncio.run(serving.serve(list(zip(servers, sockets)), on_ready=ready, on_stop=tn.aclose))
    finally:
        for sock in sockets:
            sock.close()
        tn.close()
        signal.signal(signal.SIGTERM, previous)
    typer.echo("demo stopped", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- the example app --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Tracker:
    app: ModuleType
    models: ModuleType
    seed: ModuleType
    brands: ModuleType
    features: ModuleType
    root: Path
    """The source checkout it was imported from."""


def _load_tracker() -> _Tracker:
    """Import ``examples.tracker`` from the source checkout this tenantry runs from."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "examples" / "tracker" / "app.py").is_file():
        raise ConfigurationError(
            "tenantry demo runs the example app in examples/tracker of a source checkout, and"
            f" there is none next to this installation ({root}); clone the repository and run"
            " `bash scripts/demo`"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        app, models, seed, brands, features = (
            importlib.import_module(f"examples.tracker.{name}")
            for name in ("app", "models", "seed", "brands", "features")
        )
    except ImportError as err:
        raise ConfigurationError(f'the demo needs the web extra ({err.name or err}): pip install -e ".[web]"') from err
    loaded = _Tracker(app, models, seed, brands, features, root)
    found = Path(loaded.app.__file__ or "").resolve()
    if not found.is_relative_to(root):
        raise ConfigurationError(f"examples.tracker was imported from {found}, not from {root}")
    return loaded


def _ensure_tenant(tn: Tenantry, spec: DemoTenant, *, seed: Any, brand: Any = None) -> dict[str, Any]:
    """Create the tenant unless it exists (finishing a half-built one), seed it if it has no
    data yet and brand it if it has no brand yet; return what the report shows of it."""
    created = True
    try:
        tenant = tn.tenants.create(spec.slug, name=spec.name, plan=spec.plan)
    except TenantExists:
        created = False
        tenant = tn.tenants.get(spec.slug)
    except Conflict:
        # half-built on another plan by an earlier run: finish it on that plan
        tenant = tn.tenants.create(spec.slug, name=spec.name, plan=tn.tenants.get(spec.slug).plan)
    seeded = branded = False
    if seed is not None and tenant.status is Status.ACTIVE:
        seeded = bool(seed(tn, spec.slug))
    if brand is not None and tenant.status is Status.ACTIVE:
        branded = bool(brand(tn, spec.slug))
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "plan": tenant.plan,
        "tier": tn.plans.get(tenant.plan).isolation.value,
        "status": tenant.status.value,
        "created": created,
        "seeded": seeded,
        "branded": branded,
        # None: nobody to sign in as yet (no sample data), the site offers the first account
        "login": spec.login if tenant.status is Status.ACTIVE and _is_member(tn, spec) else None,
    }


def _is_member(tn: Tenantry, spec: DemoTenant) -> bool:
    """Whether the tenant has the member the report tells to sign in as."""
    with tn.tenant(spec.slug), tn.connection() as conn:
        return conn.execute("SELECT 1 FROM tracker_members WHERE email = %s", (spec.login,)).fetchone() is not None


def _features(tn: Tenantry, features: ModuleType, slug: str) -> dict[str, bool]:
    """What the tenant's site offers beyond the basics (nothing while it cannot be served)."""
    try:
        with tn.tenant(slug):
            return {
                features.CSV_EXPORT: tn.flags.enabled(features.CSV_EXPORT),
                features.WEBHOOKS: tn.plugins.is_enabled(features.WEBHOOKS),
            }
    except TenantryError:
        return {}


def _cli(settings: Settings, root: Path) -> dict[str, Any]:
    """How to use the CLI on the demo's data from this shell: the command (runnable outside
    the venv), the environment it needs (the tracker's tables, importable from here; the
    data directory when it is not the default) and commands to try."""
    environment = {"TENANTRY_APP": TRACKER_APP}
    if Path.cwd().resolve() != root:
        environment["PYTHONPATH"] = str(root)
    if settings.database_url is None and settings.data_dir is not None:
        environment["TENANTRY_DATA_DIR"] = str(settings.data_dir)
    command = runnable()
    return {
        "command": command,
        "environment": environment,
        "exports": [f"export {name}={shlex.quote(value)}" for name, value in environment.items()],
        "try": [
            f"{command} plugins enable webhooks --tenant acme",
            f"{command} flags eval csv-export --tenant acme",
            f"{command} tenants create {NEW_TENANT} --plan business",
        ],
    }


def _url(host: str, port: int) -> str:
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


def _shown_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _print_report(report: dict[str, Any]) -> None:
    where = "the embedded server" if report["database"] == "embedded" else "TENANTRY_DATABASE_URL"
    console.print("[bold]tenantry demo[/]: the example tracker, three tenants on three tiers")
    console.print(f"PostgreSQL: {where}\n")
    for t in report["tenants"]:
        note = (
            ""
            if t["status"] == "active"
            else f"  [red]{t['status']}: `{report['cli']['command']} tenants resume {t['slug']}`[/]"
        )
        fresh = " [green](new)[/]" if t["created"] else ""
        on = ", ".join(name for name, enabled in t.get("features", {}).items() if enabled) or "no extras"
        how = f"sign in as {t['login']}" if t["login"] else "no members yet: create the first account there"
        console.print(f"  {t['name']:<20} {t['plan']} ({t['tier']}){fresh}  {on}\n    {t['url']}  {how}{note}")
    api = report["admin_api"]
    if api is None:
        console.print(f"\n  admin API: unavailable in this build ({report['admin_api_unavailable']})")
    else:
        console.print(f"\n  admin API: {api['url']}  (docs: {api['url'].rstrip('/')}/docs)")
        if api["token"]:
            # one line, however narrow the terminal: it is meant to be copied
            curl = f"curl -H 'Authorization: Bearer {api['token']}' {api['url'].rstrip('/')}/v1/tenants"
            console.print(f"    {curl}", soft_wrap=True, markup=False, highlight=False)
        else:
            console.print("    no API token was created by this build")
    cli = report["cli"]
    # one line each, however narrow the terminal: they are meant to be copied
    console.print("\nThe CLI on this data, from this shell:")
    for line in [*cli["exports"], *cli["try"]]:
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    new = report["new_tenant"]
    console.print(
        f"\nA tenant made with `tenants create` has nobody in it yet: its site ({new['url']} for {new['slug']})"
        " offers to create its first account, who becomes its owner and adds the others."
    )
    console.print("\nCtrl-C stops the demo; running it again reuses the data.")


# -- the admin API ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AdminApi:
    """The admin HTTP API as the demo serves it: the ASGI app and a token to call it with, or
    why it is unavailable."""

    app: Any = None
    token: str | None = None
    reason: str | None = None


_DEMO_TOKEN = "demo-"


def _demo_token(tn: Tenantry) -> str:
    """A fresh admin token for this run (a week long); the last run's demo tokens are revoked,
    since their secrets were only ever printed."""
    for token in tn.tokens.list():
        if token.name.startswith(_DEMO_TOKEN):
            tn.tokens.revoke(token.id)
    name = f"{_DEMO_TOKEN}{datetime.now(UTC):%Y%m%d-%H%M%S-%f}"
    _, secret = tn.tokens.create(name, ["admin"], expires_in=timedelta(days=7))
    return secret


def _admin_api(tn: Tenantry) -> AdminApi:
    """The admin API app when this build has ``tenantry.api``; else why not."""
    try:
        api = importlib.import_module("tenantry.api")
    except ImportError as err:
        return AdminApi(reason=f"{err.name or 'tenantry.api'} is not installed")
    factory = getattr(api, "create_admin_app", None)
    if factory is None:
        return AdminApi(reason="tenantry.api has no create_admin_app")
    return AdminApi(app=factory(tn))
