"""ExpiringCache: bounded, answers only before an entry's expiry, and lets expired entries go."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resource_server.expiring import ExpiringCache
from tests.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_an_entry_is_answered_until_its_expiry_and_never_at_or_after_it(clock: FakeClock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(8, clock)
    cache.put("a", 1, clock.now + 10)
    assert cache.get("a") == 1
    clock.advance(9.999)
    assert cache.get("a") == 1
    clock.advance(0.001)
    assert cache.get("a") is None


def test_expired_entries_leave_memory_on_the_next_call(clock: FakeClock) -> None:
    """Not only unanswered: gone, so a token's text is not kept after its verified lifetime."""
    cache: ExpiringCache[str, int] = ExpiringCache(8, clock)
    for number in range(5):
        cache.put(f"k{number}", number, clock.now + 10 + number)
    clock.advance(12)  # k0, k1 and k2 have expired
    assert cache.get("unrelated") is None
    assert len(cache) == 2
    clock.advance(100)
    cache.put("fresh", 0, clock.now + 1)
    assert len(cache) == 1


def test_an_expired_value_is_never_stored(clock: FakeClock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(8, clock)
    cache.put("past", 1, clock.now - 1)
    cache.put("now", 1, clock.now)
    assert len(cache) == 0 and cache.get("past") is None and cache.get("now") is None


def test_the_size_is_a_bound_and_the_oldest_entry_makes_room(clock: FakeClock) -> None:
    """First in, first out, whatever the expiries: long-lived entries cannot hold the cache."""
    cache: ExpiringCache[str, int] = ExpiringCache(3, clock)
    cache.put("long-lived", 1, clock.now + 86400)
    cache.put("soon", 2, clock.now + 10)
    cache.put("middle", 3, clock.now + 100)
    cache.put("new", 4, clock.now + 200)
    assert len(cache) == 3
    assert cache.get("long-lived") is None
    assert (cache.get("soon"), cache.get("middle"), cache.get("new")) == (2, 3, 4)


def test_size_zero_keeps_nothing(clock: FakeClock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(0, clock)
    cache.put("a", 1, clock.now + 10)
    assert len(cache) == 0 and cache.get("a") is None


def test_replacing_an_entry_keeps_the_bookkeeping_bounded(clock: FakeClock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(4, clock)
    for number in range(1000):
        cache.put("same", number, clock.now + 10 + number)
    assert cache.get("same") == 999
    assert len(cache) == 1 and len(cache._expiries) <= 2 * cache.size


@pytest.mark.parametrize("size", [-1, 1.5, "4", True])
def test_a_size_must_be_an_integer_of_zero_or_more(size: object) -> None:
    with pytest.raises(ValueError):
        ExpiringCache(size, FakeClock())  # type: ignore[arg-type]


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "get", "tick"]),
            st.sampled_from("abcdef"),
            st.integers(min_value=-5, max_value=30),
        ),
        max_size=60,
    )
)
def test_it_never_answers_what_a_plain_model_would_not(steps: list[tuple[str, str, int]]) -> None:
    """Against a dict that keeps everything: the cache may forget (it is bounded), but whatever
    it answers is the latest value put for the key, and only before that value's expiry."""
    clock = FakeClock()
    cache: ExpiringCache[str, int] = ExpiringCache(3, clock)
    model: dict[str, tuple[float, int]] = {}
    for number, (action, key, amount) in enumerate(steps):
        if action == "put":
            cache.put(key, number, clock.now + amount)
            if clock.now + amount > clock.now:
                model[key] = (clock.now + amount, number)
            else:
                model.pop(key, None)
        elif action == "tick":
            clock.advance(abs(amount))
        else:
            answer = cache.get(key)
            if answer is not None:
                expires_at, value = model[key]
                assert answer == value and clock.now < expires_at
        assert len(cache) <= 3


def test_concurrent_puts_and_gets_stay_bounded_and_consistent(clock: FakeClock) -> None:
    cache: ExpiringCache[int, int] = ExpiringCache(64, clock)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for number in range(2000):
                key = (number * 7 + offset) % 500
                cache.put(key, key, clock.now + 1 + key % 50)
                value = cache.get(key)
                assert value is None or value == key
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) <= 64


def test_an_expired_put_ends_the_older_entry_under_its_key(clock: FakeClock) -> None:
    """The newest word on a key wins: an already-expired value put for it removes the live one."""
    cache: ExpiringCache[str, int] = ExpiringCache(8, clock)
    cache.put("a", 1, clock.now + 10)
    cache.put("a", 2, clock.now - 1)
    assert cache.get("a") is None and len(cache) == 0
