"""What a valid limit is: :class:`Limits`, the schema of a plan's ``limits`` document and of a
tenant's overrides.

Pure: no I/O. Each field is checked by the same function that turns it into what is enforced
(:mod:`tenantry.core.limits`: :func:`~tenantry.core.limits.rate`,
:func:`~tenantry.core.limits.count`, :func:`~tenantry.core.limits.milliseconds`,
:func:`~tenantry.core.limits.work_mem_value`), so a document this schema accepts is one the
edge and the bind can enforce, and one it refuses would not be enforceable. Unknown keys are
refused. ``None`` (JSON ``null``) means "no limit of that kind".

>>> check_limits({"requests_per_second": 50, "work_mem": "8MB"})
{'requests_per_second': 50, 'work_mem': '8MB'}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from tenantry.core.durations import parse_duration
from tenantry.core.limits import count, milliseconds, rate, work_mem_value
from tenantry.errors import InvalidInput

__all__ = ["LIMIT_KEYS", "Limits", "check_limits", "merge_limits"]

#: the longest ``backup_every``
_LONGEST_INTERVAL = timedelta(days=366)


class Limits(BaseModel):
    """A plan's limits, or a tenant's overrides of them: every key optional, ``None`` for no
    limit of that kind, unknown keys refused.

    The edge enforces ``requests_per_second``, ``burst`` and ``concurrency``; the bind sets
    ``statement_timeout_ms``, ``idle_in_transaction_timeout_ms`` and ``work_mem`` in every
    transaction of the tenant. ``db_connections`` and ``storage_mb`` are caps that their own
    enforcement reads; ``backup_every`` and ``keep`` are the plan's backup schedule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_second: int | float | None = None
    """Requests per second, sustained (a positive number)."""
    burst: int | None = None
    """Requests that may come at once (default: one second's worth)."""
    concurrency: int | None = None
    """Requests in flight at once."""
    db_connections: int | None = None
    """Database connections the tenant holds at once."""
    statement_timeout_ms: int | None = None
    """Longest a statement may run, in milliseconds."""
    idle_in_transaction_timeout_ms: int | None = None
    """Longest a transaction may sit idle, in milliseconds."""
    work_mem: int | str | None = None
    """Memory a sort or hash may use before spilling: kilobytes (>= 64) or a size such as ``"8MB"``."""
    storage_mb: int | None = None
    """Megabytes of storage the tenant may use."""
    backup_every: str | None = None
    """How often the tenant is backed up: a duration such as ``"1d"`` or ``"6h"``."""
    keep: int | None = None
    """How many of the tenant's backups are kept."""

    @field_validator("requests_per_second", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        rate(value, "requests_per_second")
        return value

    @field_validator("burst", "concurrency", "db_connections", "storage_mb", "keep", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        return count(value, str(info.field_name))

    @field_validator("statement_timeout_ms", "idle_in_transaction_timeout_ms", mode="before")
    @classmethod
    def _ms(cls, value: Any, info: ValidationInfo) -> Any:
        return value if value is None else milliseconds(value, str(info.field_name))

    @field_validator("work_mem", mode="before")
    @classmethod
    def _work_mem(cls, value: Any) -> Any:
        if value is not None:
            work_mem_value(value)
        return value

    @field_validator("backup_every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"backup_every must be a duration such as '1d' or '6h', or null, not {value!r}")
        try:
            every = parse_duration(value)
        except InvalidInput as err:
            raise ValueError(f"backup_every: {err}") from None
        except OverflowError:
            every = None
        if every is None or every > _LONGEST_INTERVAL:
            raise ValueError(f"backup_every must be at most {_LONGEST_INTERVAL.days} days, not {value[:40]!r}")
        return value.strip().lower().replace(" ", "")


#: every key a limits document may have
LIMIT_KEYS: tuple[str, ...] = tuple(Limits.model_fields)


def check_limits(document: Mapping[str, Any], *, what: str = "limits") -> dict[str, Any]:
    """``document`` checked against :class:`Limits`: the keys it gives, with their values
    normalised (``None`` kept: it means "no limit"). Raises :class:`InvalidInput` whose
    message names the first bad field (``limits.burst: ...``)."""
    if not isinstance(document, Mapping):
        raise InvalidInput(f"{what} must be an object of limits, not {type(document).__name__}")
    unknown = sorted(str(k) for k in document if k not in Limits.model_fields)
    if unknown:
        raise InvalidInput(f"{what}: unknown key {unknown[0][:60]!r} (keys: {', '.join(sorted(LIMIT_KEYS))})")
    try:
        model = Limits.model_validate(dict(document))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        if message.startswith(field):  # the check names its key already
            raise InvalidInput(f"{what}.{message}") from None
        raise InvalidInput(f"{what}.{field}: {message}") from None
    return model.model_dump(include=set(document))


def merge_limits(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``change``'s keys set over it (a checked document each): what a partial
    update of a plan's limits stores."""
    return {**base, **change}
