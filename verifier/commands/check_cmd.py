"""verifier check CERT"""
from __future__ import annotations

import json

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="re-check a certificate with the independent exact checker")
    p.add_argument("certificate")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import check   # the trusted kernel: imports nothing from the decision code
    try:
        with open(args.certificate) as fh:
            cert = json.load(fh)
    except OSError as e:
        raise InputError(f"cannot read {args.certificate}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{args.certificate} is not valid JSON: {e.msg}") from None
    try:
        verdict = check.check_certificate(cert)
    except check.Rejected as e:
        print(f"REJECTED: {e}")
        return 1
    print(f"OK: the certificate proves '{verdict}'")
    return 0
