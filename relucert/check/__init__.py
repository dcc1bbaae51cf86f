"""The independent certificate checker: a package of its own that imports only the standard library.

It re-derives, with ``fractions.Fraction``, every quantity a certificate records from the problem
and the point it embeds (with its output bias c when the point has one: residuals with c, (S0)
sum_i e_i = 0, the dc descent, the joint Hessian in (W, A, c)), checks every witness identity and
checks that the verdict follows.  It
shares no code with the decision code (``relucert.core`` / ``relucert.decide``): the network's
formulas are written here a second time, deliberately, so that a bug in one copy cannot confirm
itself.  The certificate formats are documented as JSON Schema files next to this module
(:data:`SCHEMA_FILES`).

Public API::

    check_certificate(obj) -> CheckResult     # never raises on a bad certificate
    require_valid(obj) -> str                 # the verdict, or raises Rejected
    ball_jacobian_at_center(cert)             # the Jacobian the ball check uses (for proposers)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .kernel import (BALL_FORMAT, FORMAT, MORSE_BOTT_MAX_PARAMS, Rejected, ball_jacobian_at_center,
                     check_ball_certificate, derive_verdict, main)

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
SCHEMA_FILES = {FORMAT: os.path.join(SCHEMA_DIR, "certificate.schema.json"),
                BALL_FORMAT: os.path.join(SCHEMA_DIR, "ball-certificate.schema.json")}

__all__ = ["CheckResult", "check_certificate", "require_valid", "Rejected", "FORMAT", "BALL_FORMAT",
           "SCHEMA_FILES", "ball_jacobian_at_center", "MORSE_BOTT_MAX_PARAMS", "check_ball_certificate",
           "derive_verdict", "main"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of re-checking one certificate.

    ``ok`` is True when every identity holds and the verdict follows from the evidence; then
    ``verdict`` is the proven verdict.  Otherwise ``verdict`` is None and ``reasons`` says what
    failed (the first failed check; the checker stops there)."""

    ok: bool
    verdict: str | None
    format: str | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.ok


def require_valid(cert: object) -> str:
    """The verdict the certificate proves; raises :class:`Rejected` (with the reason) otherwise."""
    return derive_verdict(cert)


def check_certificate(cert: object) -> CheckResult:
    """Re-check a certificate (a decoded JSON object) and say whether, and what, it proves."""
    fmt = cert.get("format") if isinstance(cert, dict) else None
    fmt = fmt if isinstance(fmt, str) else None
    try:
        verdict = derive_verdict(cert)
    except Rejected as e:
        return CheckResult(False, None, fmt, (str(e),))
    except (RecursionError, MemoryError, ValueError, TypeError, ArithmeticError) as e:
        # malformed beyond what the field checks anticipate: still a rejection, never a crash
        return CheckResult(False, None, fmt, (f"malformed certificate ({type(e).__name__}: {e})",))
    return CheckResult(True, verdict, fmt, ())
