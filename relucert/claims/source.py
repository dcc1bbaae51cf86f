"""One generator, two engines: plain seeded generation and hypothesis strategies.

Every instance generator of :mod:`relucert.claims.generators` is a function ``gen(src, **kw)``
that asks a :class:`Source` for integers and choices.  A :class:`RandomSource` answers from a
seeded ``random.Random`` (fast, reproducible by seed, used for the search); a
:class:`HypothesisSource` answers through hypothesis' ``draw`` (so hypothesis can shrink a
counterexample: integers shrink towards 0, choices towards the first option — generators list the
simplest option first).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from flint import fmpq


class Reject(Exception):
    """The generator could not build an instance from these choices (not a counterexample)."""


class Source:
    """Where a generator gets its randomness from."""

    def integer(self, lo: int, hi: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def reject(self, reason: str):
        raise Reject(reason)

    # ---- derived draws (the same for both engines) ------------------------------------------
    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]

    def boolean(self) -> bool:
        return self.integer(0, 1) == 1

    def rational(self, max_num: int = 3, dens: Sequence[int] = (1, 1, 2, 3)) -> fmpq:
        """A small rational p/q, |p| <= max_num (shrinks to 0)."""
        p = self.integer(-max_num, max_num)
        return fmpq(p, self.choice(dens))

    def nonzero_rational(self, max_num: int = 3, dens: Sequence[int] = (1, 1, 2, 3)) -> fmpq:
        mag = self.integer(1, max_num)
        sign = self.choice((1, -1))
        return fmpq(sign * mag, self.choice(dens))

    def vector(self, d: int, max_num: int = 3, dens: Sequence[int] = (1, 1, 2, 3)) -> list:
        return [self.rational(max_num, dens) for _ in range(d)]

    def nonzero_vector(self, d: int, max_num: int = 3, dens: Sequence[int] = (1, 1, 2, 3)) -> list:
        v = self.vector(d, max_num, dens)
        if all(x == 0 for x in v):
            v[self.integer(0, d - 1)] = fmpq(self.choice((1, -1)))
        return v

    def subset(self, items: Sequence[Any], min_size: int = 0, max_size: int | None = None) -> list:
        """A subset (in order) of items."""
        items = list(items)
        max_size = len(items) if max_size is None else min(max_size, len(items))
        size = self.integer(min_size, max_size) if max_size >= min_size else 0
        pool = list(items)
        out = []
        for _ in range(size):
            out.append(pool.pop(self.integer(0, len(pool) - 1)))
        return sorted(out, key=items.index)

    def seed(self) -> int:
        """A seed for a float sub-computation (e.g. a numpy generator)."""
        return self.integer(0, 2 ** 31 - 1)


class RandomSource(Source):
    """Answers from a seeded ``random.Random`` and records every choice."""

    def __init__(self, seed: Any):
        self.rng = random.Random(seed)
        self.choices: list[int] = []

    def integer(self, lo: int, hi: int) -> int:
        v = self.rng.randint(lo, hi)
        self.choices.append(v)
        return v


class HypothesisSource(Source):
    """Answers through hypothesis' ``draw`` (shrinkable)."""

    def __init__(self, draw: Callable):
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st
        return self.draw(st.integers(lo, hi))

    def reject(self, reason: str):
        from hypothesis import reject
        reject()


def strategy(gen: Callable, **kw):
    """The hypothesis strategy of generator ``gen`` (an instance per draw; rejections are
    hypothesis rejections)."""
    from hypothesis import strategies as st

    @st.composite
    def _strategy(draw):
        return gen(HypothesisSource(draw), **kw)

    return _strategy()


def instance_seed(seed: int, name: str, index: int) -> str:
    """The seed of instance ``index`` of claim ``name`` in a campaign with base seed ``seed``:
    independent of how the instances are split over workers."""
    return f"{seed}:{name}:{index}"


def sample(gen: Callable, seed: Any, **kw):
    """One instance of ``gen`` from a plain seeded generator (raises :class:`Reject`)."""
    return gen(RandomSource(seed), **kw)
