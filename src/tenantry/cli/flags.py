"""``tenantry flags …``: feature flags, their rules, rollouts, kill switch and schedule."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.tenant_config import FlagRecord

__all__ = ["app", "parse_rollout"]

app = typer.Typer(help="Create, change, kill and evaluate feature flags.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KeyArg = Annotated[str, typer.Argument(help="The flag's key.", show_default=False)]
KindOpt = Annotated[str | None, typer.Option("--kind", help="boolean (default) or multivariate.")]
VariantsOpt = Annotated[
    str | None, typer.Option("--variants", help='Multivariate: JSON object, {"a": "blue", "b": "green"}.')
]
DefaultOpt = Annotated[
    str | None, typer.Option("--default", help="Variant served when no rule matches and no rollout.")
]
OffOpt = Annotated[str | None, typer.Option("--off", help="Multivariate: variant served while killed or off schedule.")]
RolloutOpt = Annotated[
    str | None,
    typer.Option("--rollout", help="Percent on (boolean: 25), or a=50,b=50, or a JSON object; none: no rollout."),
]
RulesOpt = Annotated[str | None, typer.Option("--rules", help="JSON list of rules, or @file.json; [] clears.")]
EnableOpt = Annotated[str | None, typer.Option("--enable-at", help="ISO 8601 time the flag turns on; none: clear.")]
DisableOpt = Annotated[str | None, typer.Option("--disable-at", help="ISO 8601 time the flag turns off; none: clear.")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the flag is for.")]


def _json(text: str, what: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as err:
            raise InvalidInput(f"cannot read {what} from {text[1:]!r}: {err.strerror}") from err
    try:
        return json.loads(text)
    except ValueError as err:
        raise InvalidInput(f"{what} is not valid JSON: {err}") from err


def _none(text: str) -> bool:
    return text.strip().lower() in ("none", "null", "")


def parse_rollout(text: str) -> Any:
    """``25`` (boolean: percent on), ``a=50,b=50``, a JSON object, or ``none``."""
    if _none(text):
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        return _json(stripped, "--rollout")
    try:
        return float(stripped)
    except ValueError:
        pass
    shares: dict[str, float] = {}
    for part in stripped.split(","):
        name, sep, share = part.partition("=")
        try:
            shares[name.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InvalidInput(f"--rollout {text[:60]!r} must be a percentage (25), a=50,b=50, or a JSON object")
    return shares


def _definition(
    kind: str | None,
    variants: str | None,
    default: str | None,
    off: str | None,
    rollout: str | None,
    rules: str | None,
    enable_at: str | None,
    disable_at: str | None,
    description: str | None,
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if kind is not None:
        found["kind"] = kind
    if variants is not None:
        found["variants"] = _json(variants, "--variants")
    if default is not None:
        found["default"] = default
    if off is not None:
        found["off"] = off
    if rollout is not None:
        found["rollout"] = parse_rollout(rollout)
    if rules is not None:
        found["rules"] = _json(rules, "--rules")
    for name, text in (("enable_at", enable_at), ("disable_at", disable_at)):
        if text is not None:
            found[name] = None if _none(text) else text.strip()
    if description is not None:
        found["description"] = description
    return found


def _state(record: FlagRecord) -> str:
    spec = record.spec
    if spec.killed:
        return "KILLED"
    parts = []
    if spec.rollout:
        parts.append("rollout " + ", ".join(f"{k} {v:g}%" for k, v in spec.rollout.items()))
    else:
        parts.append(f"default {spec.default}")
    if spec.rules:
        parts.append(f"{len(spec.rules)} rule(s)")
    if spec.enable_at or spec.disable_at:
        start = spec.enable_at.isoformat() if spec.enable_at else "..."
        end = spec.disable_at.isoformat() if spec.disable_at else "..."
        parts.append(f"scheduled {start} to {end}")
    return "; ".join(parts)


def _print(record: FlagRecord, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(record.to_dict())
    else:
        console.print(f"flag [bold]{record.key}[/] {verb}: {_state(record)}")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every flag, with what it serves."""
    records = get_state(ctx).tenantry().flags.list()
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    if not records:
        console.print("no flags yet: create one with `tenantry flags create KEY`")
        return
    table(
        None,
        ["key", "kind", "state", "updated"],
        [(r.key, r.spec.kind, _state(r), r.updated_at.strftime("%Y-%m-%d %H:%M")) for r in records],
    )


@app.command("show")
def show(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """One flag's whole definition."""
    record = get_state(ctx).tenantry().flags.get(key)
    if as_json:
        emit_json(record.to_dict())
    else:
        typer.echo(json.dumps(record.to_dict(), indent=2))


@app.command("create")
def create(
    ctx: typer.Context,
    key: KeyArg,
    kind: KindOpt = None,
    variants: VariantsOpt = None,
    default: DefaultOpt = None,
    off: OffOpt = None,
    rollout: RolloutOpt = None,
    rules: RulesOpt = None,
    enable_at: EnableOpt = None,
    disable_at: DisableOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a flag (a boolean flag starts off). Creating it again the same way is a no-op."""
    definition = {
        "key": key,
        **_definition(kind, variants, default, off, rollout, rules, enable_at, disable_at, description),
    }
    _print(get_state(ctx).tenantry().flags.create(definition), as_json, "ready")


@app.command("set")
def set_(
    ctx: typer.Context,
    key: KeyArg,
    kind: KindOpt = None,
    variants: VariantsOpt = None,
    default: DefaultOpt = None,
    off: OffOpt = None,
    rollout: RolloutOpt = None,
    rules: RulesOpt = None,
    enable_at: EnableOpt = None,
    disable_at: DisableOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Change some of a flag's fields; the whole new definition is validated first."""
    changes = _definition(kind, variants, default, off, rollout, rules, enable_at, disable_at, description)
    if not changes:
        raise InvalidInput("nothing to change: give --rollout, --rules, --default, --enable-at, ...")
    _print(get_state(ctx).tenantry().flags.update(key, changes), as_json, "updated")


@app.command("kill")
def kill(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """Kill switch: serve the off variant everywhere, now."""
    _print(get_state(ctx).tenantry().flags.kill(key), as_json, "killed")


@app.command("unkill")
def unkill(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """Undo the kill switch: the rules and rollout apply again."""
    _print(get_state(ctx).tenantry().flags.unkill(key), as_json, "revived")


@app.command("delete")
def delete(
    ctx: typer.Context,
    key: KeyArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm: apps then find no such flag.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a flag. Asks for --yes. Deleting a missing flag is a no-op."""
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"deleting flag {key!r} makes apps fall back to their defaults; pass --yes to confirm")
        typer.confirm(f"Delete flag {key!r}?", abort=True)
    deleted = get_state(ctx).tenantry().flags.delete(key)
    if as_json:
        emit_json({"key": key, "deleted": deleted})
    else:
        console.print(f"deleted flag [bold]{key}[/]" if deleted else f"no flag {key!r}; nothing to do")


@app.command("eval")
def eval_(
    ctx: typer.Context,
    key: KeyArg,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant's slug or id.", show_default=False)],
    user: Annotated[str | None, typer.Option("--user", help="A user of the tenant (for per-user rollouts).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """What the flag serves a tenant (and user) now, and why."""
    from tenantry.tenant_config.evaluation import check_key

    result = get_state(ctx).tenantry().flags.evaluate(check_key(key), tenant=tenant, user=user)
    if as_json:
        emit_json({**result.to_dict(), "tenant": tenant, "user": user})
        return
    why = result.reason.lower().replace("_", " ")
    if result.rule is not None:
        why += f" (rule {result.rule})"
    typer.echo(f"{key} = {json.dumps(result.value)} (variant {result.variant}; {why})")
