"""Error hierarchy: every message names the offending input."""


class VerifierError(Exception):
    """Base class of all errors the verifier raises on purpose."""


class InputError(VerifierError):
    """Bad input: shapes, NaN/inf, unknown names, malformed files."""


class CertificateError(VerifierError):
    """A certificate that cannot be read."""
