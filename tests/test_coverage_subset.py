"""A small seeded subset of the coverage campaign (benchmarks/bench_coverage.py, issue 12) as a CI test.

Six quick runs (capped sizes) chosen to cover scalar and vector output, ReLU / leaky / abs, both
initialisations and both optimisers, and every kind of outcome the quick campaign produces (local
minima, a saddle, a point too far from any stationary point, a refinement that leaves the pattern).
It checks the machinery (two records per run, the worker processes, the reason buckets, the
perturbation cross-check of every local minimum), re-checks every definite verdict's certificate
with the independent checker, and pins the verdicts.

The pin is of the current certifier: when a change to the certifier makes a pinned inconclusive
checkpoint definite (or changes a verdict), update EXPECTED after looking at why.  Training is
float32 numpy (a few thousand full-batch steps); a different BLAS or CPU (AVX-512 against AVX2) rounds
differently, and that moves the step of the mid-plateau checkpoint by a few steps (run 17: 468 on the
machines CI ran on, 465 on an AVX-512 EPYC), so the pin names the mid checkpoint without its step;
its verdict does not move.  None of the pinned ones is known to be borderline (the refinement moves
of the definite ones are far below the tolerances), so none is left out.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_coverage as bc  # noqa: E402

from relucert.check import check_certificate  # noqa: E402

RUNS = (3, 17, 20, 27, 34, 45)

# (run, "end" or "mid") -> (verdict, reason bucket or None)
EXPECTED = {
    (3, "end"): ("not_stationary", "not near-stationary (no refinement)"),
    (3, "mid"): ("inconclusive", "refined point too far"),   # pattern rounds: the nearest stationary point is too far
    (17, "end"): ("local_min", None),
    (17, "mid"): ("local_min", None),
    (20, "end"): ("local_min", None),
    (20, "mid"): ("local_min", None),
    (27, "end"): ("local_min", None),
    (27, "mid"): ("local_min", None),
    (34, "end"): ("local_min", None),
    (34, "mid"): ("local_min", None),
    (45, "end"): ("inconclusive", "refined point too far"),
    (45, "mid"): ("saddle", None),
}


@pytest.fixture(scope="module")
def subset():
    t0 = time.perf_counter()
    res = bc.campaign(0, quick=True, jobs=2, run_ids=RUNS, keep_certificates=True)
    return res, time.perf_counter() - t0


def test_record_count_and_keys(subset):
    res, _ = subset
    recs = res["records"]
    assert len(recs) == 2 * len(RUNS)
    assert [r["run"] for r in recs] == [r for r in RUNS for _ in range(2)]
    for r in recs:
        assert r["checkpoint"] == "end" or r["checkpoint"].startswith("mid@")
        for key in ("k", "init", "optimizer", "act", "target", "verdict", "seconds"):
            assert key in r, key
        assert r["verdict"] not in ("timeout", "error"), r.get("detail")
        assert r["float_gradient"] is not None
        assert (r["bucket"] is None) == (r["verdict"] in bc.DEFINITE)


def test_definite_certificates_pass_the_independent_checker(subset):
    res, _ = subset
    definite = [r for r in res["records"] if r["verdict"] in bc.DEFINITE]
    assert definite
    for r in definite:
        got = check_certificate(r["certificate"])
        assert got.ok, (r["run"], r["checkpoint"], got.reasons)
        assert got.verdict == r["verdict"]


def test_local_minima_are_cross_checked(subset):
    res, _ = subset
    for r in res["records"]:
        if r["verdict"] == "local_min":
            p = r["perturbation"]
            assert "error" not in p, p
            assert p["samples"] == bc.SAMPLES
            assert p["lowering"] == 0, (r["run"], r["checkpoint"], p)
            if (r.get("pattern_margin") or {}).get("relative"):     # the cross-check inside the reported margin
                pin = p["inside_margin"]
                assert pin["samples"] == bc.SAMPLES and pin["radius"] == r["pattern_margin"]["relative"]
                assert pin["lowering"] == 0 and pin["confirmed"] == 0, (r["run"], r["checkpoint"], pin)


def test_pinned_verdicts(subset):
    res, _ = subset
    got = {(r["run"], r["checkpoint"].split("@")[0]): (r["verdict"], r["bucket"]) for r in res["records"]}
    assert got == EXPECTED


def test_summary_prints(subset):
    res, _ = subset
    text = bc.summary(res, bc.TIMEOUT)
    assert "| all | 12 |" in text
    assert "why the others are not definite" in text
    assert "perturbation cross-check" in text


def test_fast_enough(subset):
    _, seconds = subset
    assert seconds < 30, seconds
