"""What ``migrate`` and ``migrate status`` answer, and the error a run with failures raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tenantry.db.catalog.app_revisions import Failure, Tracked
from tenantry.errors import MigrationFailed

__all__ = ["MigrationFailed", "MigrationReport", "PlacementResult", "StatusReport"]

Result = Literal["migrated", "failed", "planned", "skipped", "stamped", "behind"]


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """One placement in a report: where it is, from which revision to which, and how it went."""

    slug: str | None
    """The tenant; ``None`` for the pooled schema (every pooled tenant)."""
    tier: str
    cell: str
    database: str | None
    schema: str
    from_revision: str | None
    to_revision: str | None
    result: Result
    steps: tuple[str, ...] = ()
    """Revisions applied (or, planned, to apply), oldest first."""
    error: str | None = None
    failed_revision: str | None = None
    secured: tuple[str, ...] = ()
    """Tables given row-level security (and grants) after the migration: the new ones."""
    seconds: float = 0.0

    @classmethod
    def of(cls, placement: Tracked, result: Result, to_revision: str | None, **extra: Any) -> PlacementResult:
        return cls(
            placement.slug,
            placement.tier,
            placement.cell,
            placement.database,
            placement.schema,
            placement.revision,
            to_revision,
            result,
            **extra,
        )

    @property
    def label(self) -> str:
        """The tenant's slug, or ``pooled`` (the shared schema)."""
        return self.slug or "pooled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "tier": self.tier,
            "cell": self.cell,
            "database": self.database,
            "schema": self.schema,
            "from": self.from_revision,
            "to": self.to_revision,
            "result": self.result,
            "steps": list(self.steps),
            "error": self.error,
            "failed_revision": self.failed_revision,
            "secured": list(self.secured),
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class MigrationReport:
    """A run of ``migrate``: every placement it considered, and what became of those behind."""

    head: str | None
    total: int
    """Placements considered (the pooled schema counts once)."""
    up_to_date: int
    """Of those, recorded at the head before the run."""
    results: list[PlacementResult] = field(default_factory=list)
    dry_run: bool = False
    from_catalog: bool = False
    """Answered from the catalog alone: no placement was connected to."""
    jobs: int = 1
    seconds: float = 0.0

    def _with(self, result: Result) -> list[PlacementResult]:
        return [r for r in self.results if r.result == result]

    @property
    def migrated(self) -> list[PlacementResult]:
        return self._with("migrated")

    @property
    def failed(self) -> list[PlacementResult]:
        return self._with("failed")

    @property
    def skipped(self) -> list[PlacementResult]:
        return self._with("skipped")

    def counts(self) -> dict[str, int]:
        """Placements per outcome, as the audit log records a run."""
        counts = {"total": self.total, "up_to_date": self.up_to_date}
        results: tuple[Result, ...] = ("migrated", "failed", "planned", "skipped", "stamped")
        for result in results:
            counts[result] = len(self._with(result))
        return counts

    def raise_for_failures(self) -> None:
        """Raise :class:`MigrationFailed` naming the failed placements, if any."""
        failed = self.failed
        if failed:
            shown = "; ".join(f"{r.label}: {r.error}" for r in failed[:5])
            more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise MigrationFailed(
                f"{len(failed)} of {len(self.results)} placement(s) failed and were rolled back"
                f" ({shown}{more}); fix the cause and rerun `tenantry migrate` to retry them"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "dry_run": self.dry_run,
            "from_catalog": self.from_catalog,
            "jobs": self.jobs,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "placements": [r.to_dict() for r in self.results],
        }


@dataclass(slots=True)
class StatusReport:
    """Where the placements are, by the catalog: counts per revision, who is behind, who failed."""

    head: str | None
    revisions: dict[str, int]
    """Revision (``untracked`` for none) -> live placements at it; the pooled schema counts once."""
    behind: list[PlacementResult]
    failed: list[Failure]

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "revisions": self.revisions,
            "behind": [r.to_dict() for r in self.behind],
            "failed": [f.to_dict() for f in self.failed],
        }
