"""Fixtures of the web edge's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from tenantry import Tenantry

T = TypeVar("T")


@pytest.fixture
def run(tn: Tenantry) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine on a fresh event loop, closing the async pools it opened in that loop."""

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        async def main() -> T:
            try:
                return await coro
            finally:
                await tn.router.aclose()

        return asyncio.run(main())

    return runner
