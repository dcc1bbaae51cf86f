"""pytest plugin: exact assertions about points, and claims checked with a budget.

Enable it with the ``pytest11`` entry point of the package, or explicitly with
``pytest -p relucert.claims.pytest_plugin`` or ``pytest_plugins = ["relucert.claims.pytest_plugin"]``.

Assertions (plain functions, usable in any test; they return the :class:`relucert.Result`)::

    from relucert.claims.pytest_plugin import assert_local_min, assert_saddle, assert_claim

    def test_kink_min():
        assert_local_min(problem, point)            # or assert_local_min("case.json")

    @pytest.mark.claim_budget(50)
    def test_theorem_a():
        assert_claim("theorem-a")                   # 50 instances (or --claim-budget N)

A failing point assertion says the verdict, the reason, the escape neurons and where the
certificate was written (``--certificate-dir`` or a temporary folder); a failing claim shows the
summary row, the (shrunk) counterexample's message and the path of its JSON point file.

Budget of ``assert_claim``: ``--claim-budget N`` (command line, e.g. CI) > the ``instances=``
argument > the test's ``@pytest.mark.claim_budget(N)`` > the claim's own budget.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pytest

_stack: list = []                # per running test: {"budget": ..., "config": ...}
_session: dict = {}              # options of the innermost configured session


def pytest_addoption(parser):
    g = parser.getgroup("relucert", "relucert: exact certificates and claims")
    g.addoption("--claim-budget", type=int, default=None, metavar="N",
                help="instances per claim for assert_claim (overrides instances= and @pytest.mark.claim_budget)")
    g.addoption("--claim-seed", type=int, default=None, metavar="S", help="campaign seed for assert_claim (default 0)")
    g.addoption("--claim-out", default=None, metavar="DIR",
                help="folder for counterexample files of assert_claim (default: a temporary folder)")
    g.addoption("--certificate-dir", default=None, metavar="DIR",
                help="folder for the certificates of failing point assertions (default: a temporary folder)")


def pytest_configure(config):
    config.addinivalue_line("markers", "claim_budget(n): number of instances for assert_claim calls without "
                                       "instances= in this test (--claim-budget overrides it)")
    _session.update(_options(config))


def _options(config) -> dict:
    get = lambda name: config.getoption(name, default=None)  # noqa: E731 - the options may be missing
    return {"budget": get("claim_budget"), "seed": get("claim_seed"), "out": get("claim_out"),
            "cert_dir": get("certificate_dir")}


def pytest_runtest_setup(item):
    _stack.append({"item": item, **_options(item.config)})


def pytest_runtest_teardown(item):
    if _stack:
        _stack.pop()


def _ctx() -> dict:
    return _stack[-1] if _stack else {"item": None, **_session}


def _marker_budget() -> int | None:
    item = _ctx().get("item")
    m = item.get_closest_marker("claim_budget") if item is not None else None
    if m is None:
        return None
    v = m.args[0] if m.args else m.kwargs.get("n", m.kwargs.get("instances"))
    return None if v is None else int(v)


def effective_budget(instances: int | None = None) -> int | None:
    """--claim-budget > ``instances`` > @pytest.mark.claim_budget > None (the claim's own)."""
    c = _ctx()
    if c.get("budget") is not None:
        return int(c["budget"])
    if instances is not None:
        return int(instances)
    return _marker_budget()


# ---------------------------------------------------------------------------------------------
# point assertions
# ---------------------------------------------------------------------------------------------

def _load(problem: Any, point: Any):
    from relucert.io import load, problem_point_from_dict
    if point is None:
        if isinstance(problem, (str, os.PathLike)):
            return load(os.fspath(problem))
        if isinstance(problem, dict):
            return problem_point_from_dict(problem)
        if hasattr(problem, "problem") and hasattr(problem, "point"):      # an Instance
            return problem.problem, problem.point
        raise TypeError("give (problem, point), a problem+point file, a dict, or an Instance")
    return problem, point


def _write_certificate(res, label: str) -> str:
    d = _ctx().get("cert_dir") or _session.get("cert_dir")
    if not d:
        d = tempfile.mkdtemp(prefix="relucert-certificates-")
    os.makedirs(d, exist_ok=True)
    fp = res.certificate.get("fingerprint", "")[:12]
    path = os.path.join(d, f"{label}-{res.verdict}-{fp}.json")
    with open(path, "w") as fh:
        json.dump(res.certificate, fh, indent=1)
    return os.path.abspath(path)


def _fail(expected: str, res, label: str):
    __tracebackhide__ = True
    path = _write_certificate(res, label)
    loss = res.loss
    msg = (f"expected {expected}, got verdict {res.verdict.upper()}\n"
           f"  reason: {res.reason}\n"
           f"  escape neurons: {res.escape_neurons or 'none'}\n"
           f"  loss ({res.problem.loss}): {loss if len(str(loss)) < 60 else float(int(loss.p) / int(loss.q))}\n"
           f"  certificate: {path}\n"
           f"  (check it with: relucert check {path})")
    raise AssertionError(msg)


def _certify(problem, point, method):
    from relucert.decide.certify import certify
    pb, pt = _load(problem, point)
    return certify(pb, pt, method=method)


def assert_verdict(problem, point=None, verdict: str | tuple = "local_min", *, method: str = "auto"):
    """The exact verdict is ``verdict`` (or one of a tuple of verdicts)."""
    __tracebackhide__ = True
    res = _certify(problem, point, method)
    allowed = (verdict,) if isinstance(verdict, str) else tuple(verdict)
    if res.verdict not in allowed:
        _fail(" or ".join(a.upper() for a in allowed), res, "verdict")
    return res


def assert_stationary(problem, point=None, *, method: str = "auto"):
    """Stationary (local_min, global_min, saddle, or inconclusive only about escape neurons)."""
    __tracebackhide__ = True
    res = _certify(problem, point, method)
    undecided = res.verdict == "inconclusive" and "could not be decided" in res.reason
    if res.verdict == "not_stationary" or undecided:
        _fail("a STATIONARY point", res, "stationary")
    return res


def assert_local_min(problem, point=None, *, allow_global: bool = True, method: str = "auto"):
    """Certified local minimum (Theorem A); a global minimum counts unless ``allow_global=False``."""
    __tracebackhide__ = True
    res = _certify(problem, point, method)
    ok = ("local_min", "global_min") if allow_global else ("local_min",)
    if res.verdict not in ok:
        _fail("a LOCAL_MIN" + (" (or GLOBAL_MIN)" if allow_global else ""), res, "local_min")
    return res


def assert_saddle(problem, point=None, *, method: str = "auto"):
    """Certified saddle (an exact escape path)."""
    __tracebackhide__ = True
    res = _certify(problem, point, method)
    if res.verdict != "saddle":
        _fail("a SADDLE", res, "saddle")
    return res


def assert_not_stationary(problem, point=None, *, method: str = "auto"):
    __tracebackhide__ = True
    res = _certify(problem, point, method)
    if res.verdict != "not_stationary":
        _fail("NOT_STATIONARY", res, "not_stationary")
    return res


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------

def run_claim(name: str, instances: int | None = None, *, seed: int | None = None, workers: int = 1,
              shrink: bool = True, out: str | None = None, shrink_seconds: float = 20.0):
    """Run one claim with the effective budget; returns its ClaimReport."""
    from relucert.claims import get_claim
    from relucert.claims.runner import run_claims
    c = get_claim(name)
    ctx = _ctx()
    seed = seed if seed is not None else (ctx.get("seed") if ctx.get("seed") is not None else 0)
    out = out or ctx.get("out") or tempfile.mkdtemp(prefix="relucert-counterexamples-")
    return run_claims([c], instances=effective_budget(instances), seed=seed, workers=workers,
                      out_dir=out, do_shrink=shrink, shrink_seconds=shrink_seconds)[0]


def assert_claim(name: str, instances: int | None = None, *, seed: int | None = None, workers: int = 1,
                 expect: str | None = None, shrink: bool = True, out: str | None = None,
                 shrink_seconds: float = 20.0):
    """The claim behaves as expected on the budget: no counterexample (or, for a conjecture
    registered with expect='counterexample', at least one); never an error."""
    __tracebackhide__ = True
    from relucert.claims.runner import table
    rep = run_claim(name, instances, seed=seed, workers=workers, shrink=shrink, out=out,
                    shrink_seconds=shrink_seconds)
    expect = expect or rep.expect
    ok = rep.errors == 0 and ((rep.counterexamples > 0) if expect == "counterexample" else rep.counterexamples == 0)
    if not ok:
        lines = [f"claim {rep.name!r}: {rep.statement}",
                 f"expected {'a counterexample' if expect == 'counterexample' else 'no counterexample'}; "
                 f"{rep.counterexamples} counterexample(s), {rep.errors} error(s) in {rep.instances} instances",
                 table([rep])]
        if rep.minimal:
            lines.append(f"counterexample ({'shrunk' if rep.minimal.get('shrunk') else 'not shrunk'}): "
                         f"{rep.minimal.get('message', '')}")
        for e in rep.error_examples[:2]:
            lines.append(f"error on instance {e['index']} (seed {e['seed']!r}): {e['message']}\n{e.get('traceback', '')}")
        for f in rep.files:
            lines.append(f"saved: {os.path.abspath(f)}")
        if rep.files:
            lines.append(f"(replay with: relucert claims replay {os.path.abspath(rep.files[0])})")
        if rep.skip_reasons:
            lines.append("skipped: " + ", ".join(f"{k} x{v}" for k, v in rep.skip_reasons.most_common(4)))
        raise AssertionError("\n".join(lines))
    return rep


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def relucert_assert():
    """The assertions as a namespace: ``relucert_assert.local_min(problem, point)``, ``.saddle``,
    ``.stationary``, ``.not_stationary``, ``.verdict``, ``.claim(name, instances=None)``."""
    from types import SimpleNamespace
    return SimpleNamespace(stationary=assert_stationary, local_min=assert_local_min, saddle=assert_saddle,
                           not_stationary=assert_not_stationary, verdict=assert_verdict, claim=assert_claim,
                           run_claim=run_claim)


@pytest.fixture
def claim_budget(request) -> int | None:
    """The budget assert_claim will use in this test (None: each claim's own)."""
    return effective_budget(None)


@pytest.fixture
def certificate_dir(tmp_path):
    """Certificates of failing point assertions in this test go to this folder."""
    d = tmp_path / "certificates"
    d.mkdir(exist_ok=True)
    ctx = _ctx()
    old = ctx.get("cert_dir")
    ctx["cert_dir"] = str(d)
    yield d
    ctx["cert_dir"] = old


@pytest.fixture
def claim_runner(tmp_path):
    """``claim_runner(name, instances=None, **kw)`` -> ClaimReport, counterexamples under tmp_path."""
    def run(name: str, instances: int | None = None, **kw):
        kw.setdefault("out", str(tmp_path / "counterexamples"))
        return run_claim(name, instances, **kw)
    return run
