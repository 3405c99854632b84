"""The benchmark's 20-table app (``bench/provisioning.py``: ``app_tables()``) as Django models.

The same tables, columns, foreign keys and indexes as tenantry's SQLAlchemy declaration, less
``tenant_id``: with django-tenants each tenant's tables live in its own schema, so the primary
key is ``id`` alone, a foreign key is ``parent_id`` alone (Django indexes it) and an index is on
the column alone.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from provisioning import app_tables

MODULE = __name__


def _field(kind: str, nullable: bool) -> models.Field[Any, Any]:
    common = {"null": nullable}
    if kind == "text":
        return models.TextField(**common)
    if kind == "name":
        return models.CharField(max_length=200, **common)
    if kind == "int":
        return models.IntegerField(**common)
    if kind == "big":
        return models.BigIntegerField(**common)
    if kind == "flag":
        return models.BooleanField(**common)
    if kind == "at":
        return models.DateTimeField(**common)
    if kind == "day":
        return models.DateField(**common)
    if kind == "amount":
        return models.DecimalField(max_digits=12, decimal_places=2, **common)
    if kind == "data":
        return models.JSONField(**common)
    if kind == "ref":
        return models.UUIDField(**common)
    raise ValueError(f"unknown column kind {kind!r}")


def _models() -> dict[str, type[models.Model]]:
    made: dict[str, type[models.Model]] = {}
    for spec in app_tables():
        meta = type(
            "Meta",
            (),
            {
                "db_table": spec.name,
                "indexes": [models.Index(fields=[name], name=f"{spec.name}_by_{name}") for name in spec.indexed],
            },
        )
        attrs: dict[str, Any] = {"__module__": MODULE, "Meta": meta}
        for column in spec.columns:
            attrs[column.name] = _field(column.kind, column.nullable)
        if spec.parent is not None:
            attrs["parent"] = models.ForeignKey(made[spec.parent], on_delete=models.CASCADE, related_name="+")
        made[spec.name] = type(spec.model, (models.Model,), attrs)
    return made


MODELS = _models()
globals().update({model.__name__: model for model in MODELS.values()})
