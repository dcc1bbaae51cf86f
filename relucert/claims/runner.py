"""Run claims: search (plain seeded generators, in parallel), shrink (hypothesis), save, summarise.

1. **Search.**  Instance i of claim c in a campaign with seed S is generated from the seed
   ``"S:c:i"`` (so results do not depend on how many workers there are).  The indices are split
   round-robin over the workers: a local process pool by default, or a Dask cluster.
2. **Shrink.**  For a claim with a counterexample, the predicate runs inside a hypothesis
   ``@given`` over the same generator (seeded with S, no example database, quiet); hypothesis
   searches, shrinks, and re-runs its final (minimal) falsifying example, which is caught.  If
   hypothesis finds none within its budget, the smallest counterexample of the search is kept.
3. **Save.**  Counterexamples are JSON point files (the input schema of ``relucert certify``:
   activation, loss, X, Y, W, A as exact strings, plus ``claim``, ``message``, ``kind``, ``meta``)
   under ``OUT/<claim>/``: ``minimal.json`` and ``seed<S>-<i>.json`` for the search's first ones.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from relucert.claims.api import COUNTEREXAMPLE, HELD, SKIPPED, Claim, Outcome, get_claim, load_library
from relucert.claims.instance import Instance
from relucert.claims.source import RandomSource, Reject, instance_seed
from relucert.tools.parallel import backend as _backend   # this process, a process pool, or Dask

KEEP_PER_CHUNK = 3          # counterexamples (with instances) kept per chunk of the search


@dataclass
class ClaimReport:
    name: str
    statement: str
    expect: str
    instances: int = 0
    held: int = 0
    counterexamples: int = 0
    skipped: int = 0
    errors: int = 0
    rejected: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)       # dicts: index, seed, message, instance (json)
    error_examples: list = field(default_factory=list)
    minimal: dict | None = None                         # {message, instance, shrunk, how}
    files: list = field(default_factory=list)
    seconds: float = 0.0
    shrink_seconds: float = 0.0

    @property
    def status(self) -> str:
        """ok: as expected; FAILED: an unexpected counterexample; ERROR: an evaluation or generator
        error; MISSED: an expected counterexample was not found at this budget (not a failure unless
        strict, see ``failed``)."""
        if self.errors:
            return "ERROR"
        if self.expect == "counterexample":
            return "ok" if self.counterexamples else "MISSED"
        return "FAILED" if self.counterexamples else "ok"

    def failed(self, strict: bool = False) -> bool:
        """Whether this report makes a campaign fail: an unexpected counterexample or an error always;
        an expected counterexample that was not found only when ``strict`` (a small budget may simply
        not reach one)."""
        st = self.status
        return st in ("FAILED", "ERROR") or (strict and st == "MISSED")

    @property
    def note(self) -> str:
        """A one-line explanation of a status other than ok ("" when ok)."""
        st = self.status
        if st == "MISSED":
            return f"expected counterexample not found at this budget ({self.instances} instances)"
        if st == "FAILED":
            return f"unexpected counterexample ({self.counterexamples} of {self.instances} instances)"
        if st == "ERROR":
            return f"{self.errors} error(s) in {self.instances} instances"
        return ""

    def to_json(self) -> dict:
        return {"claim": self.name, "statement": self.statement, "expect": self.expect, "status": self.status,
                "note": self.note,
                "instances": self.instances, "held": self.held, "counterexamples": self.counterexamples,
                "skipped": self.skipped, "errors": self.errors, "rejected": self.rejected,
                "skip_reasons": dict(self.skip_reasons.most_common()), "files": self.files,
                "minimal": None if self.minimal is None else {k: v for k, v in self.minimal.items() if k != "instance"},
                "error_examples": [{k: v for k, v in e.items() if k != "instance"} for e in self.error_examples],
                "seconds": round(self.seconds, 3), "shrink_seconds": round(self.shrink_seconds, 3)}


# ---------------------------------------------------------------------------------------------
# the search (runs in workers)
# ---------------------------------------------------------------------------------------------

def _short(reason: str) -> str:
    """Group skip reasons: the text before the first ':' (e.g. 'verdict inconclusive')."""
    return reason.split(":")[0].strip()[:80] or "skipped"


def run_chunk(name: str, module: str, seed: int, indices: Sequence[int]) -> dict:
    """Evaluate claim ``name`` on the instances ``indices`` (importable in any worker)."""
    import importlib
    if module:
        importlib.import_module(module)
    c = get_claim(name)
    t0 = time.perf_counter()
    out = {"held": 0, "counterexamples": 0, "skipped": 0, "errors": 0, "rejected": 0, "skip_reasons": Counter(),
           "examples": [], "error_examples": [], "instances": 0}
    for i in indices:
        s = instance_seed(seed, name, i)
        try:
            inst = c.generate(RandomSource(s))
        except Reject as e:
            out["rejected"] += 1
            out["skipped"] += 1
            out["instances"] += 1
            out["skip_reasons"][f"generator rejected ({_short(str(e))})"] += 1
            continue
        except Exception as e:     # noqa: BLE001 - a generator bug is an error, reported
            import traceback
            out["errors"] += 1
            out["instances"] += 1
            out["error_examples"].append({"index": i, "seed": s, "message": f"generator: {type(e).__name__}: {e}",
                                          "traceback": traceback.format_exc(limit=6)})
            continue
        res = c.evaluate(inst)
        out["instances"] += 1
        if res.status == HELD:
            out["held"] += 1
        elif res.status == SKIPPED:
            out["skipped"] += 1
            out["skip_reasons"][_short(res.message)] += 1
        elif res.status == COUNTEREXAMPLE:
            out["counterexamples"] += 1
            if len(out["examples"]) < KEEP_PER_CHUNK:
                out["examples"].append({"index": i, "seed": s, "message": res.message,
                                        "data": _jsonable(res.data), "instance": inst.to_json(),
                                        "size": list(inst.size())})
        else:
            out["errors"] += 1
            if len(out["error_examples"]) < KEEP_PER_CHUNK:
                out["error_examples"].append({"index": i, "seed": s, "message": res.message,
                                              "traceback": res.data.get("traceback", ""),
                                              "instance": inst.to_json()})
    out["skip_reasons"] = dict(out["skip_reasons"])
    out["seconds"] = time.perf_counter() - t0
    return out


def _jsonable(v: Any) -> Any:
    from relucert.claims.instance import jsonable
    try:
        v = jsonable(v)
        json.dumps(v)
        return v
    except (TypeError, ValueError):
        return str(v)


# ---------------------------------------------------------------------------------------------
# shrinking with hypothesis
# ---------------------------------------------------------------------------------------------

class _Found(Exception):
    pass


def shrink(name: str, module: str, seed: int, max_examples: int = 200, max_seconds: float = 60.0) -> dict:
    """Search and shrink with hypothesis: {"found": final (minimal) falsifying example or None,
    "error": hypothesis' own failure if any, "seconds": time taken}.  After ``max_seconds`` every
    new candidate is treated as passing (only the best falsifying example still fails), so the
    search and the shrinker stop quickly with what they have."""
    import importlib

    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed
    t0 = time.perf_counter()
    if module:
        importlib.import_module(module)
    c = get_claim(name)
    last: dict = {}

    @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
              verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False)
    @hseed(seed)
    @given(c.strategy())
    def check(inst):
        if time.perf_counter() - t0 > max_seconds:
            last["timed_out"] = True
            if "found" in last and inst.to_json() == last["found"]["instance"]:
                raise _Found(last["found"]["message"])
            return
        res = c.evaluate(inst)
        if res.status == COUNTEREXAMPLE:
            last["found"] = {"message": res.message, "data": _jsonable(res.data), "instance": inst.to_json(),
                             "size": list(inst.size())}
            raise _Found(res.message)

    out = {"found": None, "error": None}
    try:
        check()
    except _Found:
        out["found"] = last.get("found")
    except Exception as e:        # noqa: BLE001 - hypothesis' own errors: keep the search's example
        out["error"] = f"{type(e).__name__}: {e}"
    out["seconds"] = time.perf_counter() - t0
    out["timed_out"] = bool(last.get("timed_out"))
    return out


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------

def _split(n: int, workers: int) -> list[list[int]]:
    """Round-robin split of range(n), at most ``workers`` non-empty chunks of >= 1 index, and
    chunks of at most ~25 instances so that a slow claim does not hold one worker for long."""
    chunks = max(1, min(n, max(workers, (n + 24) // 25)))
    return [list(range(w, n, chunks)) for w in range(chunks) if list(range(w, n, chunks))]


# ---------------------------------------------------------------------------------------------
# the campaign
# ---------------------------------------------------------------------------------------------

def run_claims(claims: Sequence[Claim], instances: int | None = None, seed: int = 0, workers: int = 1,
               dask: Any = None, out_dir: str | None = "counterexamples", do_shrink: bool = True,
               shrink_examples: int = 200, shrink_seconds: float = 60.0,
               progress: Any = None) -> list[ClaimReport]:
    """Check each claim on ``instances`` instances (default: the claim's own budget);
    ``progress(done, total, None)`` after each finished chunk of instances."""
    load_library()
    be = _backend(workers, dask)
    reports: dict[str, ClaimReport] = {}
    try:
        futures = []
        for c in claims:
            n = c.budget if instances is None else instances
            reports[c.name] = ClaimReport(c.name, c.statement, c.expect)
            for chunk in _split(n, workers if dask is None else max(workers, 4)):
                futures.append((c, be.submit(run_chunk, c.name, c.module, seed, chunk)))
        for done, (c, fut) in enumerate(futures, 1):
            r = fut.result()
            if progress is not None:
                progress(done, len(futures), None)
            rep = reports[c.name]
            rep.instances += r["instances"]
            rep.held += r["held"]
            rep.counterexamples += r["counterexamples"]
            rep.skipped += r["skipped"]
            rep.errors += r["errors"]
            rep.rejected += r["rejected"]
            rep.skip_reasons.update(r["skip_reasons"])
            rep.examples += r["examples"]
            rep.error_examples += r["error_examples"]
            rep.seconds += r["seconds"]
        # shrink in parallel too
        shrinks = []
        for c in claims:
            rep = reports[c.name]
            rep.examples.sort(key=lambda e: (tuple(e["size"]), e["index"]))
            if rep.examples and do_shrink:
                shrinks.append((c, be.submit(shrink, c.name, c.module, seed, shrink_examples, shrink_seconds)))
        for c, fut in shrinks:
            rep = reports[c.name]
            sh = fut.result()
            rep.shrink_seconds = sh["seconds"]
            found = sh["found"]
            first = rep.examples[0]
            if found and tuple(found["size"]) <= tuple(first["size"]):
                rep.minimal = {**found, "shrunk": True,
                               "how": "hypothesis (search + shrink" +
                                      (f", stopped after {shrink_seconds:g} s)" if sh.get("timed_out") else ")")}
            else:
                why = sh["error"] or ("hypothesis found no counterexample in its budget" if not found
                                      else "the search found a smaller one")
                rep.minimal = {**first, "shrunk": False, "how": f"smallest of the search ({why})"}
    finally:
        be.close()
    out = [reports[c.name] for c in claims]
    if out_dir:
        for rep in out:
            save(rep, out_dir, seed)
    return out


def save(rep: ClaimReport, out_dir: str, seed: int) -> None:
    """Write the minimal counterexample and the search's first ones (and errors) as JSON files."""
    if not rep.examples and not rep.error_examples:
        return
    folder = os.path.join(out_dir, rep.name)
    os.makedirs(folder, exist_ok=True)

    def write(fname, ex, extra):
        obj = dict(ex["instance"])
        obj.update({"claim": rep.name, "statement": rep.statement, "message": ex.get("message", ""), **extra})
        if ex.get("data"):
            obj["evidence"] = ex["data"]
        path = os.path.join(folder, fname)
        with open(path, "w") as fh:
            json.dump(obj, fh, indent=1)
        rep.files.append(path)

    if rep.minimal is not None:
        write("minimal.json", rep.minimal, {"shrunk": rep.minimal.get("shrunk", False), "how": rep.minimal.get("how", ""),
                                            "campaign_seed": seed})
    for ex in rep.examples[:3]:
        write(f"seed{seed}-{ex['index']}.json", ex, {"instance_seed": ex["seed"]})
    for ex in rep.error_examples[:3]:
        if "instance" in ex:
            write(f"error-seed{seed}-{ex['index']}.json", ex, {"instance_seed": ex["seed"],
                                                               "traceback": ex.get("traceback", "")})


def replay(path: str) -> tuple[Claim, Instance, Outcome]:
    """Re-evaluate a saved counterexample file against its claim."""
    from relucert.io import read_json_exact
    obj = read_json_exact(path)
    from relucert.errors import InputError
    if not isinstance(obj, dict) or "claim" not in obj:
        raise InputError(f"{path}: not a counterexample file (no 'claim' key)")
    obj = _strings(obj)
    c = get_claim(obj["claim"])
    inst = Instance.from_json(obj)
    return c, inst, c.evaluate(inst)


def _strings(v):
    """Fractions read by the exact JSON reader back to strings (meta is string-based)."""
    from fractions import Fraction
    if isinstance(v, Fraction):
        return str(v)
    if isinstance(v, dict):
        return {k: _strings(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_strings(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------
# the summary table
# ---------------------------------------------------------------------------------------------

def table(reports: Sequence[ClaimReport]) -> str:
    head = ["claim", "expect", "instances", "held", "counterex.", "skipped", "errors", "time s", "status"]
    rows_ = [[r.name, r.expect if r.expect == "hold" else "cex", str(r.instances), str(r.held),
              str(r.counterexamples), str(r.skipped), str(r.errors), f"{r.seconds + r.shrink_seconds:.1f}",
              "not found" if r.status == "MISSED" else r.status] for r in reports]
    w = [max(len(h), *(len(x[i]) for x in rows_)) if rows_ else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells))  # noqa: E731
    out = [line(head), line(["-" * x for x in w])]
    out += [line(x) for x in rows_]
    tot = [sum(getattr(r, a) for r in reports) for a in ("instances", "held", "counterexamples", "skipped", "errors")]
    out.append(line(["total", "", *map(str, tot), f"{sum(r.seconds + r.shrink_seconds for r in reports):.1f}", ""]))
    return "\n".join(out)


def details(reports: Sequence[ClaimReport]) -> str:
    lines = []
    for r in reports:
        if r.status == "MISSED":
            lines.append(f"{r.name}: {r.note}")
        if r.skip_reasons:
            top = ", ".join(f"{k} x{v}" for k, v in r.skip_reasons.most_common(4))
            lines.append(f"{r.name}: skipped: {top}")
        if r.minimal:
            m = r.minimal
            lines.append(f"{r.name}: {'minimal' if m.get('shrunk') else 'smallest found'} counterexample "
                         f"({m.get('how')}): {m.get('message', '')[:300]}")
        for e in r.error_examples[:2]:
            lines.append(f"{r.name}: ERROR on instance {e['index']}: {e['message'][:300]}")
        for f in r.files[:1]:
            lines.append(f"{r.name}: saved {', '.join(r.files)}")
    return "\n".join(lines)
