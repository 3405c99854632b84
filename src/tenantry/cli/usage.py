"""``tenantry usage``: what tenants use (requests, time, transactions, storage), the busiest,
the hot ones, and storage measurement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tenantry.cli.output import emit_json, table
from tenantry.cli.state import get_state
from tenantry.core.durations import parse_since
from tenantry.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(
    help="Per-tenant usage (requests, time, transactions, storage), the top and hot tenants; measure storage.",
    invoke_without_command=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SinceOpt = Annotated[
    str, typer.Option("--since", help="From how long ago (90s, 15m, 2h, 1d) or an ISO 8601 time with a zone.")
]
_BY = ("requests", "request_ms", "transactions", "db_ms", "rows_written", "requests_4xx", "requests_5xx")


def _since(text: str) -> datetime:
    return parse_since(text, datetime.now(UTC), field="--since")


def _by(text: str) -> str:
    if text not in _BY:
        raise InvalidInput(f"--by {text[:40]!r} must be one of {', '.join(_BY)}")
    return text


def _mb(value: Any) -> str:
    return "" if value is None else f"{value / 1048576:,.2f}"


@app.callback()
def usage(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (slug or id).")] = None,
    since: SinceOpt = "1h",
    top: Annotated[int | None, typer.Option("--top", help="Only the N busiest tenants (1-10000).")] = None,
    by: Annotated[str, typer.Option("--by", help=f"What --top ranks by: {', '.join(_BY)}.")] = "requests",
    as_json: JsonFlag = False,
) -> None:
    """Usage per tenant since --since, busiest first: requests by status class, request time,
    transactions and database time (as the app's processes flushed them), and the last
    measured storage."""
    if ctx.invoked_subcommand is not None:
        return
    moment, ranked = _since(since), _by(by)
    if top is not None and not 1 <= top <= 10_000:
        raise InvalidInput(f"--top must be from 1 to 10000, not {top}")
    tn = get_state(ctx).tenantry()
    rows = tn.usage.top(top, since=moment, by=ranked) if top is not None else tn.usage.usage(tenant, since=moment)
    if tenant is not None and top is not None:
        rows = [r for r in rows if tenant in (r["tenant"], r["tenant_id"])]
    if as_json:
        emit_json({"since": moment.isoformat(), "tenants": rows})
        return
    table(
        f"usage since {moment:%Y-%m-%d %H:%M:%S %Z}",
        ["tenant", "requests", "4xx", "5xx", "req ms", "tx", "db ms", "MB"],
        [
            (
                r["tenant"],
                r["requests"],
                r["requests_4xx"],
                r["requests_5xx"],
                f"{r['request_ms']:,.0f}",
                r["transactions"],
                f"{r['db_ms']:,.0f}",
                _mb(r["storage_bytes"]),
            )
            for r in rows
        ],
    )


@app.command("hot")
def hot(
    ctx: typer.Context,
    share: Annotated[
        float, typer.Option("--share", help="The share of its cell's load (0-1] that makes a tenant hot.")
    ] = 0.2,
    since: SinceOpt = "1h",
    by: Annotated[str, typer.Option("--by", help=f"The load: {', '.join(_BY)}.")] = "db_ms",
    as_json: JsonFlag = False,
) -> None:
    """Tenants that took at least --share of their cell's load since --since, each with a
    suggested plan or cell move (a suggestion only: nothing is moved)."""
    if not 0 < share <= 1:
        raise InvalidInput(f"--share must be above 0 and at most 1, not {share}")
    found = get_state(ctx).tenantry().usage.hot(share, since=_since(since), by=_by(by))
    if as_json:
        emit_json({"share": share, "by": by, "tenants": found})
        return
    table(
        f"tenants over {share:.0%} of their cell's {by}",
        ["tenant", "plan", "cell", "share", "suggestion"],
        [(h["tenant"], h["plan"], h["cell"], f"{h['share']:.0%}", h["suggestion"]) for h in found],
    )


@app.command("storage")
def storage(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (slug or id).")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="Measure every tenant first (one pass).")] = False,
    method: Annotated[
        str,
        typer.Option("--method", help="Pooled tenants: exact (their rows' bytes) or estimate (rows x bytes per row)."),
    ] = "exact",
    as_json: JsonFlag = False,
) -> None:
    """Each tenant's last measured storage, its plan's storage_mb and whether it is over it
    (over it, its writes are refused and its reads go on)."""
    if method not in ("exact", "estimate"):
        raise InvalidInput(f"--method {method[:40]!r} must be exact or estimate")
    tn = get_state(ctx).tenantry()
    report = tn.usage.measure_storage(method=method) if measure else None  # type: ignore[arg-type]
    rows = tn.usage.storage(tenant)
    if as_json:
        emit_json({"measured": None if report is None else report.to_dict(), "tenants": rows})
        return
    if report is not None:
        typer.echo(f"measured {report.tenants} tenants in {report.seconds:.2f} s ({report.method})")
    table(
        "storage",
        ["tenant", "MB", "quota MB", "over", "method", "measured at"],
        [
            (
                r["tenant"],
                _mb(r["bytes"]),
                "" if r["storage_mb"] is None else f"{r['storage_mb']:,.0f}",
                "yes" if r["over_quota"] else "",
                r["method"],
                r["measured_at"][:19],
            )
            for r in rows
        ],
    )


@app.command("maintain")
def maintain(
    ctx: typer.Context,
    retention_days: Annotated[
        int | None, typer.Option("--retention-days", help="Days of usage kept (default TENANTRY_USAGE_RETENTION_DAYS).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make the usage table's daily partitions ahead and drop those older than the retention."""
    if retention_days is not None and retention_days < 1:
        raise InvalidInput(f"--retention-days must be >= 1, not {retention_days}")
    done = get_state(ctx).tenantry().usage.maintain(retention_days=retention_days)
    if as_json:
        emit_json(done)
        return
    typer.echo(
        f"partitions made: {done['created']}; dropped: {', '.join(done['dropped']) or 'none'}"
        f" (keeping {done['retention_days']} days)"
    )
