"""Command-line interface: ``relucert certify | check | ...``."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from relucert.errors import RelucertError

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
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RelucertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
