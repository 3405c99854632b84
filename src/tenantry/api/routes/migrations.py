"""``/v1/migrations``: where the app's migrations stand on every placement (read only: running
them is `tenantry migrate`'s work, with its worker processes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import MigrationStatusOut

__all__ = ["router"]

router = APIRouter(prefix="/migrations", tags=["migrations"])

Read = Annotated[Principal, Depends(require("migrations:read"))]


@router.get("", response_model=MigrationStatusOut, responses=problems())
def migration_status(tn: TN, _: Read) -> MigrationStatusOut:
    """What `tenantry migrate status` shows, from the catalog alone: placements per revision,
    those behind the head, those whose last migration failed. Scope: `migrations:read`."""
    from tenantry.services import app_migrations  # alembic loads only when needed

    return MigrationStatusOut.model_validate(app_migrations.status(tn.plane).to_dict())
