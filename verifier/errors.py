"""Error hierarchy: every message names the offending input."""


class VerifierError(Exception):
    """Base class of all errors the verifier raises on purpose."""


class InputError(VerifierError):
    """Bad input: shapes, NaN/inf, unknown names, malformed files."""


class CertificateError(VerifierError):
    """A certificate that cannot be read."""


class ConsistencyError(VerifierError):
    """An exact self-check of the decision code failed: a bug, never a verdict.

    Raised instead of ``assert`` so that the checks also run under ``python -O``."""


def require(condition: bool, message: str) -> None:
    """Exact internal check that survives ``python -O``."""
    if not condition:
        raise ConsistencyError(f"internal consistency check failed: {message} (please report this point)")
