"""relucert check CERT"""
from __future__ import annotations

from relucert.io import read_json


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="re-check a certificate with the independent exact checker")
    p.add_argument("certificate")
    p.add_argument("--point", metavar="FILE",
                   help="also require that the certificate is about this problem + point (.json/.npz/trajectory), "
                        "compared exactly")
    p.add_argument("--index", type=int, default=None, help="checkpoint index when --point is a trajectory .npz")
    p.set_defaults(func=run)


def run(args) -> int:
    from relucert import check
    cert = read_json(args.certificate, exact_numbers=False)
    res = check.check_certificate(cert)
    if not res.ok:
        print(f"REJECTED: {'; '.join(res.reasons)}")
        return 1
    verdict = res.verdict
    pb, pt = cert["problem"], cert["point"]
    about = (f"n={len(pb['X'])} d={len(pb['X'][0])} k={len(pb['Y'][0])} m={len(pt['W'])}, "
             f"activation {pb['activation']}, loss {pb['loss']}, fingerprint {cert['fingerprint'][:16]}")
    if args.point is not None:
        from relucert.io import load
        problem, point = load(args.point, args.index)
        if problem.to_json() != pb or point.to_json() != pt:
            what = [name for name, a, b in (("data/activation/loss", problem.to_json(), pb),
                                           ("weights", point.to_json(), pt)) if a != b]
            print(f"REJECTED: the certificate is valid but about another point than {args.point} "
                  f"({' and '.join(what)} differ; a refined point's certificate is about the refined point)")
            return 1
        about += f"; it is exactly the point in {args.point}"
    if cert.get("format") == check.BALL_FORMAT:
        print(f"OK: the ball certificate proves '{verdict}' for an exact stationary point within "
              f"{cert['evidence']['radius']} (in the narrow parameters) of the point it embeds ({about})")
        return 0
    print(f"OK: the certificate proves '{verdict}' for the point it embeds ({about})")
    return 0
