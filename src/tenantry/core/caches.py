"""One cache for what a process knows of the catalog: :class:`CatalogCache`.

Pure: no I/O. Every per-process cache of catalog facts (tenant lookups, hostnames, cells,
config and flag views, plugin enablement, brands) is a :class:`CatalogCache`, so they share
one set of rules:

* **TTL**: an entry is served for ``ttl`` seconds from the moment its load began, at most
  (the catalog listener's events drop it sooner; the TTL is only the backstop).
* **Listener down**: while the catalog listener is not connected (``trusted()`` is false) no
  event would drop an entry once stale, so an entry is served only if its load began less than
  :data:`UNTRUSTED_SECONDS` ago. That is zero: nothing is served from the cache while the
  listener is away, the strictest rule any of the caches had (a binding must not outlive a
  suspension or a move that this process was not told of).
* **Generation guard**: every invalidation (:meth:`~CatalogCache.drop`,
  :meth:`~CatalogCache.drop_tagged`, :meth:`~CatalogCache.drop_where`,
  :meth:`~CatalogCache.clear`) bumps a counter; a load takes a :class:`Ticket` before it reads
  the catalog, and :meth:`~CatalogCache.put` refuses its result if any invalidation came
  meanwhile, since that result may be older than the change the event announced.
* **Size bound**: at most ``size`` entries; the ones loaded first are dropped first, and a
  dropped one is simply loaded again when asked for.
* **Tags**: an entry may carry tags (a tenant id, ``("plan", name)``, ...) so that an event
  about a tenant or a plan drops its entries without reading the whole cache.

Thread-safe: reads take no lock (one ``dict`` lookup and a clock read, for the request path);
writes and invalidations take a short lock that is never held while loading, so async code may
call :meth:`~CatalogCache.get` on the event loop and run the loader in a thread
(:meth:`~CatalogCache.begin` then :meth:`~CatalogCache.put`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Generic, TypeVar

__all__ = ["UNKNOWN_SIZE", "UNKNOWN_TTL", "UNTRUSTED_SECONDS", "CatalogCache", "Ticket"]

#: seconds an entry may be served after its load began while the catalog listener is not
#: connected (no event would drop it once stale): none
UNTRUSTED_SECONDS = 0.0

#: tenant keys and hostnames the catalog does not know are remembered so that junk requests
#: (random subdomains or Host headers) do not each cost a catalog read: a few, briefly, and
#: apart from the caches of known ones, which they would otherwise push out. Catalog events
#: drop them, so a tenant or domain made elsewhere is found within a second.
UNKNOWN_SIZE = 1024
UNKNOWN_TTL = 5.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken by :meth:`CatalogCache.begin` before a load reads the catalog."""

    generation: int
    started: float
    """``time.monotonic()`` when the load began: the entry's age counts from here."""


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    started: float
    expires: float
    tags: tuple[Hashable, ...]


def _always() -> bool:
    return True


class CatalogCache(Generic[K, V]):
    """A per-process cache of catalog facts, keyed by ``K`` (see the module docs).

    ``ttl`` and ``size`` as the owner's settings say (``tenant_cache_ttl``,
    ``tenant_cache_size``); ``trusted`` answers whether the catalog listener is connected now;
    ``tags`` gives the tags of an entry being stored, for :meth:`drop_tagged`. ``clock`` is
    ``time.monotonic`` (tests pass their own).
    """

    def __init__(
        self,
        name: str,
        *,
        ttl: float,
        size: int,
        trusted: Callable[[], bool] = _always,
        tags: Callable[[K, V], Iterable[Hashable]] | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.size = max(1, size)
        self._trusted = trusted
        self._tags = tags
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._entries: dict[K, _Entry[V]] = {}
        self._tagged: dict[Hashable, set[K]] = {}
        #: reads answered from the cache, and reads that were not (for the hit ratio in the
        #: metrics; counted without a lock, so a few may be lost to races between threads)
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<CatalogCache {self.name}: {len(self._entries)}/{self.size}, ttl {self.ttl:g} s>"

    @property
    def generation(self) -> int:
        """How many invalidations this cache has seen (each fails the loads in flight)."""
        return self._generation

    # -- reads --------------------------------------------------------------------------------
    def get(self, key: K) -> V | None:
        """The entry for ``key`` while it may be served (see the module docs), else ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        now = self._clock()
        if now >= entry.expires or (now - entry.started >= UNTRUSTED_SECONDS and not self._trusted()):
            self.misses += 1
            return None
        self.hits += 1
        return entry.value

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The entry for ``key``, else ``load()``'s result (called in this thread, with no lock
        held), kept unless an invalidation raced it."""
        hit = self.get(key)
        if hit is not None:
            return hit
        ticket = self.begin()
        value = load()
        self.put(key, value, ticket)
        return value

    def __len__(self) -> int:
        """Entries held, servable or not."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether an entry is held for ``key``, servable or not."""
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """The keys held, oldest first (a copy: safe while others change the cache)."""
        return iter(list(self._entries))

    def items(self) -> list[tuple[K, V]]:
        """``(key, value)`` of every entry held, servable or not, oldest first (a copy)."""
        return [(key, entry.value) for key, entry in list(self._entries.items())]

    def peek(self, key: K) -> V | None:
        """The value held for ``key`` whether or not it may be served (for tests and tools)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def expires(self, key: K) -> float | None:
        """When the entry for ``key`` stops being served at the latest (``clock()`` time)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.expires

    # -- writes -------------------------------------------------------------------------------
    def begin(self) -> Ticket:
        """Take before reading the catalog; hand to :meth:`put` with what was read."""
        return Ticket(self._generation, self._clock())

    def put(self, key: K, value: V, ticket: Ticket) -> bool:
        """Keep ``value`` under ``key`` unless an invalidation came since ``ticket`` was taken
        (then it may be staler than what the event announced). Whether it was kept."""
        tags = tuple(self._tags(key, value)) if self._tags is not None else ()
        with self._lock:
            if ticket.generation != self._generation:
                return False
            self._pop(key)
            while len(self._entries) >= self.size:  # the ones loaded first go first
                self._pop(next(iter(self._entries)))
            self._entries[key] = _Entry(value, ticket.started, ticket.started + self.ttl, tags)
            for tag in tags:
                self._tagged.setdefault(tag, set()).add(key)
            return True

    def _pop(self, key: K) -> None:  # (lock held)
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]

    # -- invalidation -------------------------------------------------------------------------
    def drop(self, *keys: K) -> None:
        """Drop the entries for ``keys``; loads in flight are not kept."""
        with self._lock:
            self._generation += 1
            for key in keys:
                self._pop(key)

    def drop_tagged(self, tag: Hashable) -> None:
        """Drop every entry tagged ``tag``; loads in flight are not kept."""
        with self._lock:
            self._generation += 1
            for key in list(self._tagged.get(tag, ())):
                self._pop(key)

    def drop_where(self, stale: Callable[[K, V], bool]) -> None:
        """Drop every entry ``stale(key, value)`` holds for (reads the whole cache: prefer
        tags for events that come often); loads in flight are not kept."""
        with self._lock:
            self._generation += 1
            for key, entry in list(self._entries.items()):
                if stale(key, entry.value):
                    self._pop(key)

    def clear(self) -> None:
        """Drop everything (the listener (re)connected: events may have been missed); loads
        in flight are not kept."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._tagged.clear()
