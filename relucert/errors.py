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
