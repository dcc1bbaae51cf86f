"""The input-limits policy: one place, applied by every loader and by the independent checker.

Exact arithmetic makes hostile numbers expensive: the string "1e999999999" is a valid decimal whose
exact value has a billion digits, and converting it eagerly hangs the process.  Every exact number
that enters the package (problem files, certificates, command-line vectors) is therefore read by
:func:`parse_exact`, which checks the size of the number's *text* first (digits, exponent) and only
then builds the value.  JSON documents are read by :func:`load_json`, which decodes UTF-8 with a
clear error, bounds the nesting depth, and reads integers of any permitted length (beyond Python's
4,300-digit int/str conversion limit).

Defaults (documented in the README; override per call with a :class:`Limits`):

==================  =========  =========================================================
limit               default    what it bounds
==================  =========  =========================================================
``max_exponent``    10 000     |e| in scientific notation (``1e-3``, ``2.5E+7``)
``max_digits``      100 000    decimal digits of one number (numerator and denominator each,
                               and digits + |exponent| of a scientific literal)
``max_depth``       64         nesting of JSON arrays / objects
``max_bytes``       2 GiB      size of one input file
==================  =========  =========================================================

Numbers in a certificate that the package *derived* (loss values, ray polynomials, steps) are
products of input numbers and may be longer than any input; the checker reads them with the
digit limit ``certificate_digits_factor`` (16) times ``max_digits`` and the same exponent limit.
Their cost stays bounded by the text that holds them (no exponent can expand a short string).

Standard library only (the checker imports this module).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["Limits", "DEFAULT_LIMITS", "active_limits", "set_limits", "LimitError", "parse_exact", "load_json", "read_text", "digits_to_int",
           "check_depth"]


@dataclass(frozen=True)
class Limits:
    max_exponent: int = 10_000
    max_digits: int = 100_000
    max_depth: int = 64
    max_bytes: int = 2 * 1024 ** 3
    certificate_digits_factor: int = 16

    def for_certificates(self) -> "Limits":
        """The limits the checker applies to the numbers of a certificate (derived values included)."""
        return Limits(self.max_exponent, self.max_digits * self.certificate_digits_factor, self.max_depth,
                      self.max_bytes, 1)


DEFAULT_LIMITS = Limits()
_active = [DEFAULT_LIMITS]


def active_limits() -> Limits:
    """The limits in force when a caller passes none (the defaults unless set_limits changed them)."""
    return _active[0]


def set_limits(limits: Limits) -> None:
    """Change the limits in force for this process (the command line's --max-* options do this)."""
    for name in ("max_exponent", "max_digits", "max_depth", "max_bytes", "certificate_digits_factor"):
        v = getattr(limits, name)
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise LimitError(f"limit {name} must be an integer >= 1, got {v!r}")
    _active[0] = limits


class LimitError(ValueError):
    """An input violates the limits policy (or is not a readable exact number); one-line message."""


_NUMBER = re.compile(r"""\s*(?P<sign>[-+])?
    (?:(?P<int>\d+)(?:\.(?P<frac1>\d*))?|\.(?P<frac2>\d+))
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:\s*/\s*(?P<den>\d+))?\s*$""", re.VERBOSE)

_CHUNK = 4000          # below Python's default int/str conversion limit (4300 digits)


def digits_to_int(s: str) -> int:
    """int(s) for a string of decimal digits of any length (no 4,300-digit limit)."""
    if len(s) <= _CHUNK:
        return int(s)
    # divide and conquer keeps this near-linear for the lengths the limits allow
    half = len(s) // 2
    return digits_to_int(s[:half]) * 10 ** (len(s) - half) + digits_to_int(s[half:])


def parse_exact(text: Any, what: str = "value", limits: Limits | None = None) -> Fraction:
    """The exact value of an integer, a decimal / scientific literal or a fraction "p/q" given as text
    (or as a Python int), after checking its size against ``limits``.  Raises LimitError."""
    limits = limits or active_limits()
    if isinstance(text, bool):
        raise LimitError(f"{what}: expected a number, got a boolean")
    if isinstance(text, int):
        # a Python int that already exists: bound its size without converting it to text
        if text.bit_length() > limits.max_digits * 3.33 + 4:
            raise LimitError(f"{what}: integer with more than {limits.max_digits} digits (limit max_digits)")
        return Fraction(text)
    if not isinstance(text, str):
        raise LimitError(f"{what}: expected a number or a number string, got {type(text).__name__}")
    if len(text) > 3 * limits.max_digits + 64:
        raise LimitError(f"{what}: number text of {len(text)} characters exceeds the limit "
                         f"(max_digits = {limits.max_digits})")
    m = _NUMBER.match(text)
    if m is None:
        short = text if len(text) <= 40 else text[:37] + "..."
        raise LimitError(f"{what}: cannot read {short!r} as an exact number (use e.g. 3, -0.25, 1e-3, 3/7)")
    ip = m.group("int") or ""
    fp = m.group("frac1") if m.group("frac1") is not None else (m.group("frac2") or "")
    den = m.group("den")
    exp_s = m.group("exp")
    ndig = len(ip) + len(fp)
    if ndig > limits.max_digits or (den is not None and len(den) > limits.max_digits):
        raise LimitError(f"{what}: more than {limits.max_digits} digits (limit max_digits)")
    exp = 0
    if exp_s is not None:
        body = exp_s.lstrip("+-").lstrip("0")
        if len(body) > len(str(limits.max_exponent)) or (body and int(body) > limits.max_exponent):
            raise LimitError(f"{what}: exponent {exp_s} exceeds the limit |exponent| <= {limits.max_exponent} "
                             "(limit max_exponent)")
        exp = int(exp_s)
    if ndig + abs(exp) > limits.max_digits + limits.max_exponent:
        raise LimitError(f"{what}: the exact value would need more than "
                         f"{limits.max_digits + limits.max_exponent} digits")
    mant = digits_to_int((ip + fp).lstrip("0") or "0")
    exp -= len(fp)
    value = Fraction(mant * 10 ** exp) if exp >= 0 else Fraction(mant, 10 ** (-exp))
    if den is not None:
        q = digits_to_int(den.lstrip("0") or "0")
        if q == 0:
            raise LimitError(f"{what}: zero denominator in {text.strip()[:40]!r}")
        value /= q
    return -value if m.group("sign") == "-" else value


def check_depth(obj: Any, what: str, limits: Limits | None = None) -> None:
    """Raise LimitError if lists / dicts nest deeper than ``limits.max_depth`` (iterative)."""
    limits = limits or active_limits()
    stack = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, (list, dict)):
            if depth > limits.max_depth:
                raise LimitError(f"{what}: nested deeper than {limits.max_depth} levels (limit max_depth)")
            stack.extend((v, depth + 1) for v in (o.values() if isinstance(o, dict) else o))


def read_text(path: str, limits: Limits | None = None) -> str:
    """The file decoded as UTF-8; LimitError / OSError with a one-line message otherwise."""
    limits = limits or active_limits()
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise LimitError(f"{path}: {size} bytes exceeds the limit of {limits.max_bytes} bytes (limit max_bytes)")
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LimitError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None


def _reject_constant(name: str):
    raise LimitError(f"JSON contains {name}; only finite numbers are allowed")


def load_json(text: str, what: str, limits: Limits | None = None, *, exact_numbers: bool = True) -> Any:
    """Parse JSON text under the limits.  With ``exact_numbers``, every JSON number becomes an exact
    Fraction / int (0.1 is 1/10), checked by :func:`parse_exact`; otherwise numbers stay as JSON gives
    them, except that integers and floats are still size-checked first."""
    limits = limits or active_limits()
    def num(s: str):
        v = parse_exact(s, f"{what}: number", limits)
        if exact_numbers:
            return v if v.denominator != 1 or any(c in s for c in ".eE") else v.numerator
        return float(v) if any(c in s for c in ".eE") else v.numerator
    try:
        obj = json.loads(text, parse_float=num, parse_int=num, parse_constant=_reject_constant)
    except RecursionError:
        raise LimitError(f"{what}: nested deeper than {limits.max_depth} levels (limit max_depth)") from None
    except json.JSONDecodeError as e:
        raise LimitError(f"{what}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    check_depth(obj, what, limits)
    return obj
