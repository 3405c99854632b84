"""``/v1/cells``: the PostgreSQL servers that hold tenant data; add one, drain one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import CellIn, CellOut, CellPage, CellPatch, Text
from tenantry.db.catalog.cells import Cell
from tenantry.errors import NotFound

__all__ = ["router"]

router = APIRouter(prefix="/cells", tags=["cells"])

Read = Annotated[Principal, Depends(require("cells:read"))]
Write = Annotated[Principal, Depends(require("cells:write"))]
Name = Annotated[Text, Path(max_length=100, description="The cell's name.")]


def cell_out(cell: Cell) -> CellOut:
    return CellOut.model_validate(cell.to_dict())


@router.get("", response_model=CellPage, responses=problems())
def list_cells(tn: TN, _: Read) -> CellPage:
    """Every cell, with how many placements it holds (a short list: not paged). Scope: `cells:read`."""
    return CellPage(items=[cell_out(c) for c in tn.cells.list()])


@router.get("/{name}", response_model=CellOut, responses=problems(404))
def get_cell(tn: TN, _: Read, name: Name) -> CellOut:
    """One cell. Scope: `cells:read`."""
    return cell_out(tn.cells.get(name))


@router.post(
    "",
    status_code=201,
    response_model=CellOut,
    responses={
        200: {"model": CellOut, "description": "The cell was registered already, with this server."},
        **problems(400, 409),
    },
)
def add_cell(tn: TN, _: Write, body: CellIn, response: Response) -> CellOut:
    """Register a PostgreSQL server as a cell (its roles are created there). Adding the same
    name and server again answers 200 and changes nothing. Scope: `cells:write`."""
    try:
        tn.cells.get(body.name)
        existed = True
    except NotFound:
        existed = False
    cell = tn.cells.add(body.name, body.dsn.get_secret_value(), capacity=body.capacity, labels=body.labels)
    if existed:
        response.status_code = 200
    response.headers["Location"] = f"/v1/cells/{cell.name}"
    return cell_out(cell)


@router.patch("/{name}", response_model=CellOut, responses=problems(400, 404))
def change_status(tn: TN, _: Write, name: Name, body: CellPatch) -> CellOut:
    """Drain a cell (it takes no new tenants; its tenants stay until moved) or make it take
    tenants again. Scope: `cells:write`."""
    if body.status == "draining":
        return cell_out(tn.cells.drain(name))
    return cell_out(tn.cells.undrain(name))
