"""Crash points for the fault tests of durable control-plane work.

``TENANTRY_TEST_CRASH_AFTER=<point>`` makes the process exit at once (no cleanup, like a
kill) when it reaches that point, right after the step's completion is recorded. Points are
provisioning steps (``create_schema``, ``deploy_tables``, …), move steps (``move:freeze``,
``move:flip``, …) and the steps of building and dropping spares (``spare:create_schema``,
``spare:dropping``, …). The variable is read when a point is reached, never at import.
"""

from __future__ import annotations

import os

__all__ = ["CRASH_EXIT_CODE", "crash_point"]

CRASH_EXIT_CODE = 70


def crash_point(name: str) -> None:
    if os.environ.get("TENANTRY_TEST_CRASH_AFTER") == name:
        os._exit(CRASH_EXIT_CODE)
