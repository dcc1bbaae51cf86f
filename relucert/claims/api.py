"""The claim API: a named predicate over generated instances.

    from relucert.claims import claim, held, counterexample, skipped

    @claim("no escape neuron => local minimum (Theorem A)", generator=stationary_point)
    def theorem_a(inst):
        res = certify(inst.problem, inst.point)
        if res.verdict != "local_min":
            return skipped(f"verdict {res.verdict}")
        ...
        return held()

A predicate returns :func:`held`, :func:`counterexample` or :func:`skipped` (``True`` / ``False``
/ ``None`` are accepted for held / counterexample / skipped; a failing ``assert`` is a
counterexample with the assertion's message).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence

HELD, COUNTEREXAMPLE, SKIPPED, ERROR = "held", "counterexample", "skipped", "error"


@dataclass
class Outcome:
    status: str                     # held / counterexample / skipped / error
    message: str = ""
    data: dict = field(default_factory=dict)     # JSON-able evidence (certificates, rays, ...)

    @property
    def is_counterexample(self) -> bool:
        return self.status == COUNTEREXAMPLE


def held(note: str = "", **data) -> Outcome:
    return Outcome(HELD, note, data)


def counterexample(message: str, **data) -> Outcome:
    return Outcome(COUNTEREXAMPLE, message, data)


def skipped(reason: str, **data) -> Outcome:
    """The instance is outside the claim's hypotheses, or undecided (e.g. verdict inconclusive)."""
    return Outcome(SKIPPED, reason, data)


@dataclass
class Claim:
    name: str                        # short id, e.g. "theorem-a"
    statement: str                   # the claim in words
    func: Callable                   # instance -> Outcome
    generator: Callable              # (Source, **kw) -> Instance
    generator_kw: dict = field(default_factory=dict)
    budget: int = 30                 # default number of instances (the CI budget)
    expect: str = "hold"             # "hold", or "counterexample" for a conjecture expected to fail
    theory: str = ""                 # where the claim comes from (docs/theory.md section, paper)
    tags: tuple = ()
    module: str = ""

    def generate(self, src):
        return self.generator(src, **self.generator_kw)

    def strategy(self):
        from relucert.claims.source import strategy
        return strategy(self.generator, **self.generator_kw)

    def evaluate(self, instance) -> Outcome:
        """Run the predicate; normalise its answer; exceptions other than AssertionError are
        reported as errors (a bug in the claim, the generator or the code under test)."""
        try:
            out = self.func(instance)
        except AssertionError as e:
            return Outcome(COUNTEREXAMPLE, f"assertion failed: {e}" if str(e) else "assertion failed")
        except Exception as e:       # noqa: BLE001 - reported, never hidden
            import traceback
            return Outcome(ERROR, f"{type(e).__name__}: {e}",
                           {"traceback": traceback.format_exc(limit=8)})
        if out is True:
            return Outcome(HELD)
        if out is False:
            return Outcome(COUNTEREXAMPLE, "predicate returned False")
        if out is None:
            return Outcome(SKIPPED, "predicate returned None")
        if not isinstance(out, Outcome):
            return Outcome(ERROR, f"predicate returned {type(out).__name__}, expected held/counterexample/skipped")
        return out


REGISTRY: dict[str, Claim] = {}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def claim(statement: str, generator: Callable | tuple, *, name: str | None = None, budget: int = 30,
          expect: str = "hold", theory: str = "", tags: Sequence[str] = (), replace: bool = True, **generator_kw):
    """Register a claim.  ``generator`` is a generator function ``gen(src, **kw)`` (or a pair
    ``(gen, kw)``); extra keyword arguments are passed to it."""
    if isinstance(generator, tuple):
        generator, kw = generator
        generator_kw = {**kw, **generator_kw}
    if isinstance(generator, partial):
        generator_kw = {**generator.keywords, **generator_kw}
        generator = generator.func
    if expect not in ("hold", "counterexample"):
        raise ValueError("expect must be 'hold' or 'counterexample'")

    def deco(func: Callable) -> Callable:
        cname = name or slug(func.__name__.replace("_", "-"))
        if cname in REGISTRY and not replace:
            raise ValueError(f"claim {cname!r} is already registered")
        mod = inspect.getmodule(func)
        REGISTRY[cname] = Claim(cname, statement, func, generator, dict(generator_kw), budget, expect, theory,
                                tuple(tags), mod.__name__ if mod else "")
        func.claim = REGISTRY[cname]
        return func

    return deco


LIBRARY_MODULES = ["relucert.claims.library", "relucert.claims.related_tangent", "relucert.claims.related_trainable",
                   "relucert.claims.related_bumps", "relucert.claims.related_permutation",
                   "relucert.claims.kink_routes"]


def load_library() -> dict[str, Claim]:
    import importlib
    for m in LIBRARY_MODULES:
        importlib.import_module(m)
    return REGISTRY


def get_claim(name: str) -> Claim:
    load_library()
    if name in REGISTRY:
        return REGISTRY[name]
    found = select([name])
    if len(found) == 1:
        return found[0]
    from relucert.errors import InputError
    if not found:
        raise InputError(f"no claim named {name!r} (see `relucert claims list`)")
    raise InputError(f"{name!r} matches several claims: {', '.join(c.name for c in found)}")


def select(names: Sequence[str] | None) -> list[Claim]:
    """Claims by exact name, else by case-insensitive substring of name, statement or tag."""
    load_library()
    if not names:
        return list(REGISTRY.values())
    out: list[Claim] = []
    for nm in names:
        if nm in REGISTRY:
            hits = [REGISTRY[nm]]
        else:
            low = nm.lower()
            hits = [c for c in REGISTRY.values()
                    if low in c.name.lower() or low in c.statement.lower() or low in (t.lower() for t in c.tags)]
        for c in hits:
            if c not in out:
                out.append(c)
    return out
