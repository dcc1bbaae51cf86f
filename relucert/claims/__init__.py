"""Claims: conjectures and theorems checked on generated exact instances (issue 7).

- :mod:`.source`      one generator function -> plain seeded generator and hypothesis strategy
- :mod:`.generators`  datasets, activations, points with known structure
- :mod:`.api`         ``@claim(...)``, ``held`` / ``counterexample`` / ``skipped``, the registry
- :mod:`.library`     the claim library (docs/theory.md)
- :mod:`.runner`      search in parallel (process pool or Dask), shrink with hypothesis, save, table
- :mod:`.pytest_plugin` assertions, fixtures and the ``claim_budget`` marker
"""
from relucert.claims.api import (Claim, Outcome, REGISTRY, claim, counterexample, get_claim, held, load_library, select,
                  skipped)
from relucert.claims.instance import Instance
from relucert.claims.source import HypothesisSource, RandomSource, Reject, Source, sample, strategy

__all__ = ["claim", "held", "counterexample", "skipped", "Claim", "Outcome", "REGISTRY", "get_claim",
           "load_library", "select", "Instance", "Source", "RandomSource", "HypothesisSource", "Reject",
           "sample", "strategy", "run_claims"]


def run_claims(*args, **kw):
    from relucert.claims.runner import run_claims as _run
    return _run(*args, **kw)
