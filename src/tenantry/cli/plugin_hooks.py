"""``tenantry plugins hooks …``: the queue of plugins' lifecycle hook calls.

Every tenant change queues its plugins' calls in the catalog; app processes deliver them.
These commands show the queue, deliver from the CLI (``run``, ``run --follow`` as a worker
of its own: it needs the plugins, ``TENANTRY_PLUGINS``), queue failed calls again and remove
old finished ones.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.core.durations import parse_duration
from tenantry.core.hooks import POLL_SECONDS, STATUSES
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.plugins.hooks import RunReport

__all__ = ["app"]

app = typer.Typer(
    help="The queue of plugins' lifecycle hook calls: list, run, retry, purge, unsubscribe.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PluginOpt = Annotated[str | None, typer.Option("--plugin", help="Only this plugin's calls.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Only the calls about this tenant (slug or id).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    plugin: PluginOpt = None,
    tenant: TenantOpt = None,
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only calls in this state: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Queued calls, newest first, with a count per plugin and state."""
    tn = get_state(ctx).tenantry()
    found = tn.plugins.hooks(plugin=plugin, tenant=tenant, status=status, limit=limit)
    counts = tn.plugins.hook_summary()
    if as_json:
        emit_json({"counts": counts, "calls": [h.to_dict() for h in found]})
        return
    if not counts:
        console.print("no hook calls queued")
        return
    console.print(
        "; ".join(f"{name}: " + ", ".join(f"{n} {s}" for s, n in by.items()) for name, by in counts.items()),
        markup=False,
    )
    if not found:
        console.print("no calls match")
        return
    table(
        None,
        ["id", "plugin", "event", "tenant", "status", "tries", "created", "error"],
        [
            (
                h.id,
                h.plugin,
                h.event,
                h.tenant,
                h.status,
                h.attempts,
                h.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                (h.last_error or "")[:100],
            )
            for h in found
        ],
    )


@app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(help="Ids of failed calls (from `list`).", show_default=False)
    ] = None,
    plugin: PluginOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue failed calls again (these ids, or every failed call of a plugin or tenant),
    due now with fresh retries."""
    retried = get_state(ctx).tenantry().plugins.retry_hooks(ids or None, plugin=plugin, tenant=tenant)
    if as_json:
        emit_json({"retried": retried})
        return
    console.print(
        f"{len(retried)} failed call(s) queued again" if retried else "no failed call matched; nothing changed"
    )


@app.command("purge")
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Finished more than this long ago (90m, 2d, 1w).")
    ] = "7d",
    failed: Annotated[
        bool, typer.Option("--failed", help="Failed calls too (they are kept for retry otherwise).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete finished calls (done, skipped; failed with --failed) older than --older-than."""
    seconds = parse_duration(older_than).total_seconds()
    count = get_state(ctx).tenantry().plugins.purge_hooks(older_than=seconds, include_failed=failed)
    if as_json:
        emit_json({"deleted": count})
        return
    console.print(f"{count} finished call(s) deleted")


@app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The plugin no app process runs any more.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Stop queueing calls for a plugin that was removed from the app (its pending calls are
    skipped). A process that still runs it subscribes it again."""
    events, skipped = get_state(ctx).tenantry().plugins.unsubscribe_hooks(name)
    if as_json:
        emit_json({"plugin": name, "events": events, "skipped": skipped})
        return
    if not events and not skipped:
        console.print(f"{name} was not subscribed; nothing changed", markup=False)
        return
    console.print(f"{name}: no longer queued for {events} event(s); {skipped} pending call(s) skipped", markup=False)


def _line(report: RunReport) -> str:
    return ", ".join(f"{n} {what}" for what, n in report.to_dict().items())


@app.command("run")
def run(
    ctx: typer.Context,
    follow_: Annotated[bool, typer.Option("--follow", help="Keep delivering as calls arrive, until Ctrl-C.")] = False,
    poll: Annotated[
        float, typer.Option("--poll", min=0.1, help="Seconds between looks at the queue with --follow.")
    ] = POLL_SECONDS,
    as_json: JsonFlag = False,
) -> None:
    """Deliver the due calls of the plugins this CLI runs (TENANTRY_PLUGINS): once, or
    with --follow as a worker of its own."""
    tn = get_state(ctx).tenantry()
    if not tn.plugins.hook_handlers():
        raise InvalidInput("no plugin with lifecycle hooks runs here: name the app's plugins in TENANTRY_PLUGINS")
    if not follow_:
        report = tn.plugins.deliver()
        if as_json:
            emit_json(report.to_dict())
        else:
            console.print(f"delivered: {_line(report)}" if report.total else "no call was due")
        return
    stop = threading.Event()

    def on_pass(report: RunReport) -> None:
        if not report.total:
            return
        if as_json:
            emit_json(report.to_dict())
        else:
            console.print(f"delivered: {_line(report)}")

    if not as_json:
        console.print(f"delivering the hooks of {', '.join(tn.plugins.hook_handlers())}; Ctrl-C stops")
    try:
        tn.plugins.follow_hooks(stop, poll=poll, on_pass=on_pass)
    except KeyboardInterrupt:
        stop.set()
