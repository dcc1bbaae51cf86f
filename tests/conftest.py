"""Suite-wide hook: every certificate the test suite emits in-process is validated against the
certificate format's JSON Schema (relucert/check/schema/*.schema.json) the moment it is emitted.

The producers are wrapped for the whole session:

* ``relucert.decide.certify.certify`` -- its returned ``Result.certificate``;
* ``relucert.decide.ball.ball_certificate`` -- its returned certificate (when not None).

Callers that imported these functions by name (``relucert.certify``, ``relucert.pipeline``,
``relucert.refine.driver``, ``relucert.claims.library``, the test modules' ``from relucert import
certify`` ...) hold their own reference, so every module of the package and of this repository
that is already imported is scanned and each such reference is replaced; callers that import the
names later (function-local imports) get the wrapped function from the patched module.

A certificate that violates its schema raises :class:`SchemaViolation` inside the test that
emitted it.  If the test swallows that exception (the claims runner, for one, records errors of
the code it calls), the test still fails in its teardown.  The number of validated certificates
is printed at the end of the session.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import Counter

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

import relucert.decide.ball as _ball_mod
import relucert.decide.certify as _certify_mod
from relucert.check import SCHEMA_FILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VENV = os.path.join(ROOT, ".venv")

_VALIDATORS = {}
for _fmt, _path in SCHEMA_FILES.items():
    with open(_path) as _fh:
        _VALIDATORS[_fmt] = Draft202012Validator(json.load(_fh))

STATS: dict = {"by_format": Counter(), "violations": [], "patched": [], "seconds": 0.0}


class SchemaViolation(AssertionError):
    """An emitted certificate does not match its format's JSON Schema."""


def validate_certificate(cert, origin: str) -> None:
    """Validate one emitted certificate (in place, no copy); raise SchemaViolation on a mismatch."""
    __tracebackhide__ = True
    fmt = cert.get("format") if isinstance(cert, dict) else None
    validator = _VALIDATORS.get(fmt)
    if validator is None:
        msg = (f"{origin} emitted a certificate of unknown format {fmt!r} "
               f"(schemas exist for {sorted(_VALIDATORS)})")
    else:
        STATS["by_format"][fmt] += 1
        t0 = time.perf_counter()
        err = best_match(validator.iter_errors(cert))
        STATS["seconds"] += time.perf_counter() - t0
        if err is None:
            return
        schema = os.path.relpath(SCHEMA_FILES[fmt], ROOT)
        where = err.json_path
        msg = (f"{origin} emitted a {fmt} certificate (verdict {cert.get('verdict')!r}) that violates "
               f"{schema}: at {where}: {err.message} "
               f"(schema rule {'/'.join(str(p) for p in err.absolute_schema_path)})")
    STATS["violations"].append(msg)
    raise SchemaViolation(msg)


def _wrap_certify(orig):
    @functools.wraps(orig)
    def certify(*args, **kwargs):
        __tracebackhide__ = True
        res = orig(*args, **kwargs)
        validate_certificate(res.certificate, "relucert.decide.certify.certify")
        return res
    certify.__schema_checked__ = orig
    return certify


def _wrap_ball(orig):
    @functools.wraps(orig)
    def ball_certificate(*args, **kwargs):
        __tracebackhide__ = True
        cert, note = orig(*args, **kwargs)
        if cert is not None:
            validate_certificate(cert, "relucert.decide.ball.ball_certificate")
            point_evaluation_cross_check(cert)
        return cert, note
    ball_certificate.__schema_checked__ = orig
    return ball_certificate


def point_evaluation_cross_check(cert, max_unknowns: int = 80) -> None:
    """The checker's exact point evaluation of a ball (check.kernel._Ball._evaluate_point, sums over
    the data taken once) must equal its interval formulas at a degenerate box (_evaluate_box), at the
    centre and at a nearby rational point, for every ball certificate a test emits (up to
    ``max_unknowns`` unknowns: the interval formulas are slow)."""
    from fractions import Fraction

    from relucert.check import kernel as K
    try:
        ball = K._Ball(K._Instance(cert), cert["evidence"])
    except Exception:       # noqa: BLE001 -- a malformed certificate: the checker's own tests cover it
        return
    if len(ball.center) > max_unknowns:
        return

    def flat(x):
        return [w for v in x for w in (flat(v) if isinstance(v, (list, tuple)) else [(v.lo, v.hi)])]
    for shift in (Fraction(0), Fraction(1, 997)):
        xi = [K._Iv(v + shift * (1 + t % 3)) for t, v in enumerate(ball.center)]
        if flat(ball._evaluate_point(xi)) != flat(ball._evaluate_box(xi)):
            raise SchemaViolation("check.kernel._Ball: the point evaluation differs from the interval "
                                  f"formulas at a degenerate box (verdict {cert.get('verdict')!r})")


def _ours(name: str, mod) -> bool:
    """Modules whose globals may hold a by-name reference: the package's and this repository's."""
    if name == "relucert" or name.startswith("relucert."):
        return True
    f = getattr(mod, "__file__", None)
    if not f:
        return False
    f = os.path.abspath(f)
    return f.startswith(ROOT + os.sep) and not f.startswith(_VENV + os.sep)


@pytest.fixture(scope="session", autouse=True)
def schema_checked_certificates():
    """Wrap the certificate producers for the session (see the module docstring)."""
    originals = {"certify": _certify_mod.certify, "ball_certificate": _ball_mod.ball_certificate}
    if hasattr(originals["certify"], "__schema_checked__"):     # already wrapped (nested session)
        yield STATS
        return
    wrapped = {id(originals["certify"]): (originals["certify"], _wrap_certify(originals["certify"])),
               id(originals["ball_certificate"]): (originals["ball_certificate"],
                                                   _wrap_ball(originals["ball_certificate"]))}
    mp = pytest.MonkeyPatch()
    for name, mod in list(sys.modules.items()):
        if mod is None or not _ours(name, mod):
            continue
        for attr, val in list(vars(mod).items()):
            hit = wrapped.get(id(val))
            if hit is not None and hit[0] is val:
                mp.setattr(mod, attr, hit[1])
                STATS["patched"].append(f"{name}.{attr}")
    try:
        yield STATS
    finally:
        mp.undo()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item._schema_call_report = rep


@pytest.fixture(autouse=True)
def _schema_violations_fail_the_test(request, schema_checked_certificates):
    """Fail the test in teardown if a violation it caused was swallowed by the code under test."""
    before = len(STATS["violations"])
    yield
    new = STATS["violations"][before:]
    rep = getattr(request.node, "_schema_call_report", None)
    if new and not (rep is not None and rep.failed):
        pytest.fail("certificate schema violation(s) during this test (swallowed by the code under test):\n  "
                    + "\n  ".join(new), pytrace=False)


def pytest_terminal_summary(terminalreporter):
    if getattr(terminalreporter.config.option, "numprocesses", None):
        # pytest-xdist: the workers validate (a violation fails the test that caused it); the
        # controller process emits no certificate itself, so it has no count to report
        terminalreporter.write_sep("-", "certificate schema: every emitted certificate validated in the xdist "
                                        "workers (a violation fails the test that caused it)")
        return
    by = STATS["by_format"]
    total = sum(by.values())
    detail = ", ".join(f"{n} {fmt}" for fmt, n in sorted(by.items())) or "none"
    terminalreporter.write_sep(
        "-", f"certificate schema: {total} emitted certificates validated in-process ({detail}) in "
             f"{STATS['seconds']:.2f} s; {len(STATS['violations'])} violations; "
             f"patched {len(STATS['patched'])} references")
