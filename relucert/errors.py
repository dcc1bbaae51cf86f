"""Error hierarchy: every message names the offending input."""


class RelucertError(Exception):
    """Base class of all errors relucert raises on purpose."""


class InputError(RelucertError):
    """Bad input: shapes, NaN/inf, unknown names, malformed files."""


class CertificateError(RelucertError):
    """A certificate that cannot be read."""


class ConsistencyError(RelucertError):
    """An exact self-check of the decision code failed: a bug, never a verdict.

    Raised instead of ``assert`` so that the checks also run under ``python -O``."""


def require(condition: bool, message: str) -> None:
    """Exact internal check that survives ``python -O``."""
    if not condition:
        raise ConsistencyError(f"internal consistency check failed: {message} (please report this point)")


def short_message(msg: str, token: int = 200, total: int = 800) -> str:
    """One line for a person: long runs (a hostile number or name echoed back) are cut to their start
    and their length, and the whole line is bounded."""
    import re
    msg = " ".join(str(msg).split())
    msg = re.sub(r"\S{%d,}" % (token + 1), lambda m: f"{m.group(0)[:40]}...({len(m.group(0))} characters)", msg)
    return msg if len(msg) <= total else msg[:total - 20] + " ...(shortened)"
