"""relucert claims list | run [NAME ...] | replay FILE"""
from __future__ import annotations

import json
import os
import sys
import time

from relucert.errors import InputError


RUN_EXIT_STATUS = ("Exit status: 0 when every claim either held or produced its expected outcome. An expected "
                   "counterexample that was not found is reported as \"expected counterexample not found at "
                   "this budget (N instances)\" and is not a failure (a small --instances may simply not reach "
                   "one), unless --strict is given. 1: an unexpected counterexample, an error while "
                   "evaluating a claim, or (with --strict) an expected counterexample not found. "
                   "2: invalid input (unknown claim, bad option).")


def add_parser(sub) -> None:
    p = sub.add_parser("claims", help="check theorems and conjectures on generated exact instances",
                       description="Claims are named predicates over generated instances (docs/theory.md). "
                                   "`run` checks them in parallel, shrinks counterexamples with hypothesis "
                                   "and saves them as JSON point files.")
    csub = p.add_subparsers(dest="claims_command", metavar="ACTION")
    ls = csub.add_parser("list", help="list the registered claims")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)
    r = csub.add_parser("run", help="check claims (all, or those matching NAME)",
                        description="Check claims on generated exact instances: a theorem must hold on every "
                                    "instance; a conjecture registered as expected to fail (`claims list` marks "
                                    "it) should produce a counterexample.",
                        epilog=RUN_EXIT_STATUS)
    r.add_argument("names", nargs="*", metavar="NAME",
                   help="claim name, or a substring of a name, statement or tag (default: the whole library)")
    r.add_argument("--instances", "-n", type=int, default=None,
                   help="instances per claim (default: each claim's own CI budget)")
    r.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    r.add_argument("--workers", "-w", type=int, default=None,
                   help="local worker processes (default: number of CPUs; 1 = in this process)")
    r.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    r.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="run on a Dask cluster (scheduler address, e.g. tcp://127.0.0.1:8786); needs dask.distributed")
    r.add_argument("--out", default="counterexamples", metavar="DIR",
                   help="folder for counterexample files (default: ./counterexamples)")
    r.add_argument("--no-shrink", action="store_true", help="do not shrink counterexamples with hypothesis")
    r.add_argument("--shrink-examples", type=int, default=200, metavar="K",
                   help="hypothesis examples for the shrinking search (default 200)")
    r.add_argument("--shrink-seconds", type=float, default=60.0, metavar="T",
                   help="time limit of the shrinking per claim, after which the smallest example so far is kept "
                        "(default 60)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--strict", action="store_true",
                   help="also fail (exit 1) when an expected counterexample is not found at this budget")
    r.set_defaults(func=run_run)
    rp = csub.add_parser("replay", help="re-check a saved counterexample file against its claim")
    rp.add_argument("file")
    rp.set_defaults(func=run_replay)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_list(args) -> int:
    from relucert.claims import load_library
    reg = load_library()
    if args.json:
        json.dump([{"name": c.name, "statement": c.statement, "budget": c.budget, "expect": c.expect,
                    "theory": c.theory, "tags": list(c.tags)} for c in reg.values()], sys.stdout, indent=1)
        print()
        return 0
    w = max(len(n) for n in reg)
    for c in reg.values():
        flag = "  [conjecture expected to fail]" if c.expect == "counterexample" else ""
        print(f"{c.name:<{w}}  budget {c.budget:>3}  {c.statement}{flag}")
        if c.theory:
            print(f"{'':<{w}}              ({c.theory})")
    return 0


def run_run(args) -> int:
    from relucert.claims import select
    from relucert.claims.runner import details, run_claims, table
    if args.instances is not None and args.instances < 1:
        raise InputError("--instances must be at least 1")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise InputError("--workers must be at least 1")
    claims = select(args.names)
    if not claims:
        raise InputError(f"no claim matches {' '.join(args.names)!r} (see `relucert claims list`)")
    if args.dask is not None:
        import importlib.util
        if importlib.util.find_spec("distributed") is None:       # only checking that it is installed
            raise InputError("--dask needs dask.distributed: pip install 'dask[distributed]'")
    t0 = time.perf_counter()
    from relucert.commands.progress import progress_bar
    bar = progress_bar(f"checking {len(claims)} claim(s)", quiet=args.quiet or args.json)
    reports = run_claims(claims, instances=args.instances, seed=args.seed, workers=workers, dask=args.dask,
                         out_dir=args.out, do_shrink=not args.no_shrink, shrink_examples=args.shrink_examples,
                         shrink_seconds=args.shrink_seconds, progress=bar)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    bad = [r for r in reports if r.failed(args.strict)]
    missed = [r for r in reports if r.status == "MISSED"]
    if args.json:
        json.dump({"seed": args.seed, "wall_seconds": round(wall, 3), "strict": args.strict,
                   "exit_status": 1 if bad else 0, "claims": [r.to_json() for r in reports]},
                  sys.stdout, indent=1)
        print()
    else:
        print(table(reports))
        det = details(reports)
        if det:
            print()
            print(det)
        print(f"\nwall time {wall:.1f} s, seed {args.seed}, "
              f"{'dask ' + str(args.dask) if args.dask else str(workers) + ' worker(s)'}")
    if not args.json:
        if missed and not args.strict:
            print("not a failure: " + ", ".join(f"{r.name} ({r.note})" for r in missed)
                  + "; raise --instances to search further, or pass --strict to make this fail")
        if bad:
            print("not as expected: " + ", ".join(f"{r.name} ({r.status}: {r.note})" for r in bad))
    return 1 if bad else 0


def run_replay(args) -> int:
    from relucert.claims.runner import replay
    if not os.path.exists(args.file):
        raise InputError(f"no such file: {args.file}")
    c, inst, out = replay(args.file)
    print(f"claim: {c.name}: {c.statement}")
    print(f"instance: {inst.summary()}")
    print(f"outcome: {out.status}" + (f": {out.message}" if out.message else ""))
    return 0 if out.status == "counterexample" else 1
