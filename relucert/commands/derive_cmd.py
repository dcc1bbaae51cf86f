"""relucert derive FILE [--neuron J] [--latex]: the formulas of the point's activation pattern.

Only the parser lives here; the body (sympy) is imported when the command runs (derive_impl), so the
other commands do not pay sympy's import time."""
from __future__ import annotations

SMALL_M = 4            # up to this width every neuron is printed by default


def add_parser(sub) -> None:
    p = sub.add_parser("derive", help="print the symbolic formulas (loss, gradient, G_j, D_j, phi_j, "
                       "L'(theta; Delta)) of the point's activation pattern")
    p.add_argument("file", help="problem+point file (.json or .npz, or a trajectory .npz with --index) or a certificate (.json)")
    p.add_argument("--neuron", "-j", type=int, action="append", metavar="J",
                   help="print the formulas of neuron J (0-based; repeatable). Default: every neuron "
                   f"when m <= {SMALL_M}, else a summary plus the neurons that have kinks")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of pretty text")
    p.add_argument("--float", dest="digits", type=int, nargs="?", const=6, default=None, metavar="DIGITS",
                   help="display numbers as decimals with DIGITS significant digits (display only; "
                   "default: exact rationals)")
    p.add_argument("--index", type=int, default=None, help="checkpoint index in a trajectory .npz")
    p.set_defaults(func=run)


def run(args) -> int:
    from relucert.commands.derive_impl import run as run_impl
    return run_impl(args, SMALL_M)
