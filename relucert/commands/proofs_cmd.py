"""relucert proofs [NAME ...]: run the symbolic proofs under the repository's proofs/ folder."""
from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path

from relucert.errors import InputError


def default_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "proofs"


def add_parser(sub) -> None:
    p = sub.add_parser("proofs", help="run the symbolic proofs of the identities the engine relies on "
                       "(proofs/proof_*.py) and print one line per proof")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="run only the proofs whose file name contains NAME (e.g. 06 or escape)")
    p.add_argument("--dir", default=None, metavar="DIR",
                   help="folder holding proof_*.py (default: the repository's proofs/ next to the package)")
    p.add_argument("--list", action="store_true", help="list the proofs without running them")
    p.add_argument("--verbose", "-v", action="store_true", help="print the traceback of a failing proof")
    p.set_defaults(func=run)


def discover(folder: Path, names: list[str]) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"proofs folder not found: {folder} (the proofs ship with the source "
                         "repository, not with an installed wheel; use --dir DIR)")
    files = sorted(folder.glob("proof_*.py"))
    if not files:
        raise InputError(f"no proof_*.py files in {folder}")
    if names:
        files = [f for f in files if any(nm in f.stem for nm in names)]
        if not files:
            raise InputError(f"no proof matches {' '.join(names)} in {folder}")
    return files


def load(path: Path):
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)       # the proofs import their shared _lemmas.py
    spec = importlib.util.spec_from_file_location(f"relucert_proofs.{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not callable(getattr(mod, "prove", None)):
        raise AttributeError(f"{path.name} defines no prove() function")
    return mod


def run_one(path: Path) -> tuple[bool, float, str, str]:
    """(passed, seconds, summary or error, traceback)."""
    t0 = time.perf_counter()
    try:
        mod = load(path)
        summary = str(mod.prove())
        return True, time.perf_counter() - t0, summary, ""
    except AssertionError as e:
        return False, time.perf_counter() - t0, f"REFUTED: {e}".splitlines()[0], traceback.format_exc()
    except Exception as e:  # noqa: BLE001 - a proof that crashes is a failed proof
        return False, time.perf_counter() - t0, f"error: {type(e).__name__}: {e}".splitlines()[0], \
            traceback.format_exc()


def run(args) -> int:
    folder = Path(args.dir) if args.dir else default_dir()
    files = discover(folder, args.names)
    width = max(len(f.stem) for f in files)
    if args.list:
        for f in files:
            print(f.stem)
        return 0
    failed = 0
    total = time.perf_counter()
    for f in files:
        ok, secs, summary, tb = run_one(f)
        failed += not ok
        print(f"{f.stem:<{width}}  {'PASS' if ok else 'FAIL'}  {secs:7.2f}s  {summary}", flush=True)
        if not ok and args.verbose:
            print(tb, file=sys.stderr)
    total = time.perf_counter() - total
    if failed:
        print(f"{failed} of {len(files)} proofs FAILED ({total:.1f}s)")
        return 1
    print(f"all {len(files)} proofs passed ({total:.1f}s)")
    return 0
