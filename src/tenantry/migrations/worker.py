"""The worker process: ``python -m tenantry.migrations.worker``.

Reads one :class:`~tenantry.migrations.runner.Work` per line (JSON) on stdin, runs it, and
answers one :class:`~tenantry.migrations.runner.Outcome` per line on stdout; exits at end of
input. Whatever a migration script prints goes to stderr, never into the answers.
"""

from __future__ import annotations

import json
import os
import sys

from tenantry.migrations.runner import Work, run_work

__all__ = ["main"]


def main() -> None:
    """Serve work from stdin until it closes."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        outcome = run_work(Work.from_dict(json.loads(line)))
        answers.write(json.dumps(outcome.to_dict()) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
