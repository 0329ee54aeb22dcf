"""shared.db's per-unit-of-work memo: reference data read once inside a scope, always outside
one, and read again after a writer forgets it."""

from __future__ import annotations

from shared.db import forget, memo_scope, memoized


class Loader:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.calls


async def test_outside_a_scope_every_read_loads() -> None:
    load = Loader()
    assert [await memoized("x", load) for _ in range(3)] == [1, 2, 3]


async def test_inside_a_scope_a_key_loads_once_and_scopes_do_not_leak() -> None:
    load = Loader()
    with memo_scope():
        assert [await memoized("x", load) for _ in range(3)] == [1, 1, 1]
    with memo_scope():
        assert await memoized("x", load) == 2
    assert await memoized("x", load) == 3


async def test_forget_drops_the_name_and_every_tuple_key_under_it_only() -> None:
    a, b, other = Loader(), Loader(), Loader()
    with memo_scope():
        await memoized("p", a)
        await memoized(("p", ("SKU-1",)), b)
        await memoized(("q", 1), other)
        forget("p")
        assert await memoized("p", a) == 2
        assert await memoized(("p", ("SKU-1",)), b) == 2
        assert await memoized(("q", 1), other) == 1
        forget("not-there")  # nothing memoized under it: no error
