"""Command-line interface: ``relucert certify | check | ...``."""
from __future__ import annotations

import argparse
import importlib
import sys

from relucert.check.limits import DEFAULT_LIMITS, LimitError, Limits, set_limits
from relucert.errors import InputError, RelucertError, short_message

# sub-command modules: each defines add_parser(subparsers) and sets a ``func`` default
COMMAND_MODULES = ["relucert.commands.certify_cmd", "relucert.commands.check_cmd",
                   "relucert.commands.screen_cmd", "relucert.commands.embed_cmd",
                   "relucert.commands.symmetry_cmd", "relucert.commands.claims_cmd",
                   "relucert.commands.derive_cmd", "relucert.commands.proofs_cmd"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="relucert", description="Exact certificates for stationary points "
                                 "of one-hidden-layer ReLU-like networks (Wu, Simsek & Ged, ICLR 2025).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.add_parser(sub)
    for parser in [ap] + list(sub.choices.values()):
        _add_limit_options(parser, top=parser is ap)
        parser.add_argument("--debug", action="store_true", default=False if parser is ap else argparse.SUPPRESS,
                            help="print the Python traceback of an internal error")
    return ap


LIMIT_OPTIONS = (("max_digits", "decimal digits of one exact input number"),
                 ("max_exponent", "|exponent| of a scientific literal such as 1e-3"),
                 ("max_depth", "nesting depth of JSON input"),
                 ("max_bytes", "size of one input file in bytes"))


def _add_limit_options(parser: argparse.ArgumentParser, top: bool) -> None:
    g = parser.add_argument_group("input limits (bad input gets a one-line error, never a hang)")
    for name, what in LIMIT_OPTIONS:
        default = getattr(DEFAULT_LIMITS, name)
        g.add_argument("--" + name.replace("_", "-"), type=int, metavar="N",
                       default=default if top else argparse.SUPPRESS,
                       help=f"limit on the {what} (default {default})")


def _apply_limits(args) -> None:
    try:
        set_limits(Limits(**{name: getattr(args, name) for name, _ in LIMIT_OPTIONS}))
    except LimitError as e:
        raise InputError(str(e).replace("limit max_", "--max-").replace("_", "-")) from None


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    # exact outputs are printed by python-flint (no int/str limit); inputs are bounded by the limits policy,
    # so Python's own 4,300-digit guard would only turn valid large inputs into tracebacks
    sys.set_int_max_str_digits(0)
    try:
        _apply_limits(args)
        return int(args.func(args) or 0)
    except RelucertError as e:
        print(f"error: {short_message(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:          # a file the command was asked to read or write
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except RecursionError:
        print("error: the input is nested too deeply to process", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:        # a bug, never a verdict: one line unless --debug asks for the traceback
        if getattr(args, "debug", False):
            raise
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        print(f"error: internal error ({type(e).__name__}: {msg}); no verdict is claimed; "
              "rerun with --debug for the traceback and please report it", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
