"""CatalogCache on its own (pure, no database): the generation guard, the TTL, the size bound,
the rule for a listener that is down, tags, and loads from many threads at once."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable

from tenantry.core.caches import UNTRUSTED_SECONDS, CatalogCache
from tenantry.core.events import EventKind


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Listener:
    def __init__(self) -> None:
        self.up = True

    def __call__(self) -> bool:
        return self.up


def _cache(
    clock: Clock, listener: Listener | None = None, *, ttl: float = 60.0, size: int = 100, tags=None
) -> CatalogCache[str, str]:
    return CatalogCache("test", ttl=ttl, size=size, trusted=listener or Listener(), tags=tags, clock=clock)


def test_a_load_racing_an_invalidation_is_not_kept() -> None:
    cache = _cache(Clock())
    for invalidate in (
        lambda: cache.drop("a"),
        lambda: cache.drop("other"),  # any invalidation: it may have been about what was read
        lambda: cache.drop_tagged("t"),
        lambda: cache.drop_where(lambda k, v: False),
        cache.clear,
    ):
        ticket = cache.begin()
        invalidate()  # the event arrives while the catalog is read
        assert cache.put("a", "stale", ticket) is False
        assert cache.get("a") is None and "a" not in cache
    ticket = cache.begin()
    assert cache.put("a", "fresh", ticket) is True and cache.get("a") == "fresh"


def test_get_or_load_keeps_what_no_event_raced_and_not_what_one_did() -> None:
    cache = _cache(Clock())
    calls: list[str] = []

    def load() -> str:
        calls.append("a")
        return "value"

    assert cache.get_or_load("a", load) == "value" and cache.get_or_load("a", load) == "value"
    assert calls == ["a"]

    def racing() -> str:
        cache.drop("a")
        return "stale"

    cache.clear()
    assert cache.get_or_load("a", racing) == "stale"  # the caller gets what it read
    assert "a" not in cache  # but nobody after it


def test_entries_expire_after_the_ttl_counted_from_the_start_of_their_load() -> None:
    clock = Clock()
    cache = _cache(clock, ttl=10.0)
    ticket = cache.begin()
    clock.now += 3.0  # a slow read
    cache.put("a", "x", ticket)
    assert cache.expires("a") == ticket.started + 10.0
    clock.now += 6.9
    assert cache.get("a") == "x"
    clock.now += 0.1
    assert cache.get("a") is None and cache.peek("a") == "x"


def test_the_size_bound_drops_the_oldest_loads_first() -> None:
    cache = _cache(Clock(), size=3)
    for key in "abcde":
        cache.put(key, key.upper(), cache.begin())
        assert len(cache) <= 3
    assert list(cache) == ["c", "d", "e"]
    cache.put("c", "C2", cache.begin())  # loaded again: the newest now
    cache.put("f", "F", cache.begin())
    assert list(cache) == ["e", "c", "f"] and cache.get("c") == "C2"


def test_nothing_is_served_beyond_untrusted_seconds_while_the_listener_is_down() -> None:
    clock, listener = Clock(), Listener()
    cache = _cache(clock, listener, ttl=3600.0)
    cache.put("old", "x", cache.begin())  # loaded while listening
    listener.up = False  # it dropped; its reset has not come yet
    cache.put("new", "y", cache.begin())  # loaded while it is down
    for key in ("old", "new"):
        assert (cache.get(key) is not None) is (UNTRUSTED_SECONDS > 0)
    clock.now += UNTRUSTED_SECONDS
    assert cache.get("old") is None and cache.get("new") is None
    listener.up = True  # (the reset that comes with a reconnection would have dropped them)
    assert cache.get("old") == "x"


def test_tags_drop_every_entry_they_name_and_nothing_else() -> None:
    def tags(key: str, value: str) -> Iterable[Hashable]:
        return (value, (EventKind.CONFIG, "plan", key[0]))

    cache = _cache(Clock(), tags=tags)
    for key, tenant in (("acme", "t1"), ("t1-id", "t1"), ("beta", "t2"), ("axe", "t3")):
        cache.put(key, tenant, cache.begin())
    cache.drop_tagged("t1")  # a tenant's every spelling goes
    assert set(cache) == {"beta", "axe"}
    cache.drop_tagged((EventKind.CONFIG, "plan", "a"))
    assert set(cache) == {"beta"}
    cache.drop_tagged("no-such")
    assert set(cache) == {"beta"}
    # evicted and replaced entries leave no tag behind that could drop a newer one
    small = _cache(Clock(), size=1, tags=tags)
    small.put("acme", "t1", small.begin())
    small.put("beta", "t2", small.begin())
    small.drop_tagged("t1")
    assert list(small) == ["beta"] and small._tagged == {"t2": {"beta"}, (EventKind.CONFIG, "plan", "b"): {"beta"}}


def test_concurrent_loads_from_threads_keep_every_entry_right_and_the_bound() -> None:
    cache: CatalogCache[int, int] = CatalogCache("threads", ttl=60.0, size=50, tags=lambda k, v: (k % 7,))
    errors: list[str] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        start.wait()
        for i in range(2000):
            key = (seed * 7919 + i * 31) % 200
            value = cache.get_or_load(key, lambda key=key: key * 10)  # type: ignore[misc]
            if value != key * 10:
                errors.append(f"{key} -> {value}")
            if i % 50 == seed:
                cache.drop_tagged(key % 7)
            if len(cache) > 50:
                errors.append(f"size {len(cache)}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(cache.peek(k) == k * 10 for k in cache)
    assert all(k in cache for keys in cache._tagged.values() for k in keys)


def test_event_kinds_parse_and_format_payloads() -> None:
    assert EventKind.TENANT.payload("1234") == "tenant:1234"
    assert EventKind.parse("config:plan:free") == (EventKind.CONFIG, "plan:free")
    assert EventKind.parse("flag:") == (EventKind.FLAG, "")
    assert EventKind.parse("future-kind:x") is None
    assert EventKind.parse("tenant:1") == ("tenant", "1")  # a StrEnum: equal to its text
