"""Per-tenant backups: archives of one tenant's rows and catalog state, and restores.

* :mod:`.archive` — the archive format (manifest, one compressed file per table), local storage;
* :mod:`.objects` — storage in S3 and other object stores (obstore);
* :mod:`.crypto` — encryption at rest, chunked AES-256-GCM;
* :mod:`.dump` — taking a backup from one snapshot;
* :mod:`.load` — loading and checking an archive's rows;
* :mod:`.state` — the tenant's catalog state in an archive;
* :mod:`.restore` — restoring as a new tenant, as resumable steps;
* :mod:`.inplace` — restoring over the tenant, with a short write block;
* :mod:`.schedule` — schedules and retention per plan (``run-due``, ``prune``);
* :mod:`.export` — exporting a tenant's rows as JSON Lines or CSV;
* :mod:`.service` — ``tn.backups``.

See ``docs/backups.md``.
"""

from __future__ import annotations

from tenantry.services.backups.service import Backup, BackupService, VerifyReport

__all__ = ["Backup", "BackupService", "VerifyReport"]
