"""`relucert claims run` exit status (issue 17, item 11), end to end on the command line.

0 when every claim held or produced its expected outcome; an expected counterexample that is not
found at the budget is reported ("expected counterexample not found at this budget (N instances)")
and is not a failure unless --strict; an unexpected counterexample exits 1."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

CLI = [sys.executable, "-m", "relucert.cli"]
MISSED_MSG = "expected counterexample not found at this budget ({n} instances)"
# a conjecture expected to fail whose counterexample needs more than a handful of instances:
# widths (3, 2) reach the knot bound only on rare random networks
RARE = "knots-3-2-below-bound"


def _run(args, tmp_path, timeout=300, env=None):
    return subprocess.run(CLI + args + ["--workers", "1", "--out", str(tmp_path / "cex"), "--shrink-seconds", "5",
                                        "--shrink-examples", "20"],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def expected_to_fail():
    r = subprocess.run(CLI + ["claims", "list", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {c["name"] for c in json.loads(r.stdout) if c["expect"] == "counterexample"}


def test_library_marks_the_conjectures_expected_to_fail(expected_to_fail):
    assert {"narrow-escape-vector", "replicate-vector-min", RARE} <= expected_to_fail
    r = subprocess.run(CLI + ["claims", "list"], capture_output=True, text=True, timeout=120)
    flagged = {line.split()[0] for line in r.stdout.splitlines() if "[conjecture expected to fail]" in line}
    assert flagged == expected_to_fail


def test_expected_counterexample_not_found_is_not_a_failure(tmp_path):
    r = _run(["claims", "run", RARE, "--instances", "5"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert MISSED_MSG.format(n=5) in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith(RARE))
    assert row.split()[4] == "0" and row.rstrip().endswith("not found")    # 0 counterexamples at this budget
    assert "not as expected" not in r.stdout
    assert "--strict" in r.stdout                                         # says how to make it fail


def test_strict_makes_a_missed_counterexample_fail(tmp_path):
    r = _run(["claims", "run", RARE, "--instances", "5", "--strict"], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert MISSED_MSG.format(n=5) in r.stdout
    assert f"not as expected: {RARE}" in r.stdout


def test_json_summary_carries_status_note_and_exit_status(tmp_path):
    for strict, rc in ((False, 0), (True, 1)):
        r = _run(["claims", "run", RARE, "-n", "3", "--json"] + (["--strict"] if strict else []), tmp_path)
        assert r.returncode == rc, r.stdout + r.stderr
        out = json.loads(r.stdout)                                    # stdout stays pure JSON
        assert out["strict"] is strict and out["exit_status"] == rc
        c = out["claims"][0]
        assert c["claim"] == RARE and c["status"] == "MISSED" and c["counterexamples"] == 0
        assert c["note"] == MISSED_MSG.format(n=3)


def test_tiny_budget_on_other_conjectures_does_not_fail(tmp_path, expected_to_fail):
    """replicate-vector-min at one instance: whatever it finds, an expected-to-fail claim alone never
    fails without --strict; when it misses, it says so."""
    assert "replicate-vector-min" in expected_to_fail
    r = _run(["claims", "run", "replicate-vector-min", "--instances", "1", "--json"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    c = json.loads(r.stdout)["claims"][0]
    assert c["status"] in ("ok", "MISSED")
    if c["status"] == "MISSED":
        assert c["note"] == MISSED_MSG.format(n=1)


_PLUGIN = '''
from relucert.claims import claim, counterexample, generators as gen


@claim("test only: always false", gen.random_point, name="test-exit-false", budget=2, tags=("test-only",))
def _false(inst):
    return counterexample("always")


@claim("test only: always false, and expected to be", gen.random_point, name="test-exit-expected", budget=2,
       expect="counterexample", tags=("test-only",))
def _expected(inst):
    return counterexample("always")
'''


def _run_with_plugin(tmp_path, names, extra=()):
    (tmp_path / "exit_claims_plugin.py").write_text(textwrap.dedent(_PLUGIN))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH", "")]))
    code = ("import sys, exit_claims_plugin; from relucert.cli import main; "
            f"sys.exit(main({['claims', 'run', *names, '--instances', '2', '--workers', '1', '--no-shrink', '--out', str(tmp_path / 'cex'), *extra]!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_unexpected_counterexample_still_exits_1(tmp_path):
    r = _run_with_plugin(tmp_path, ["test-exit-false"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not as expected: test-exit-false (FAILED" in r.stdout


def test_expected_counterexample_found_exits_0_also_strict(tmp_path):
    for extra in ((), ("--strict",)):
        r = _run_with_plugin(tmp_path, ["test-exit-expected"], extra)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "not as expected" not in r.stdout and "not found at this budget" not in r.stdout


def test_mixed_campaign_missed_plus_unexpected_exits_1(tmp_path):
    r = _run_with_plugin(tmp_path, ["test-exit-false", RARE])
    assert r.returncode == 1, r.stdout + r.stderr
    assert MISSED_MSG.format(n=2) in r.stdout
    assert "not as expected: test-exit-false (FAILED" in r.stdout and f"{RARE} (MISSED" not in r.stdout


def test_help_documents_the_exit_status():
    r = subprocess.run(CLI + ["claims", "run", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "--strict" in text and "Exit status: 0 when every claim either held or produced its expected outcome" in text
    assert "expected counterexample not found at this budget (N instances)" in text
    assert "1: an unexpected counterexample" in text


def test_run_claims_reports_progress_per_chunk():
    from relucert.claims.api import select
    from relucert.claims.runner import run_claims
    seen = []
    reps = run_claims(select(["permutation-flat"]), instances=60, seed=0, workers=1, out_dir=None,
                      do_shrink=False, progress=lambda d, t, v: seen.append((d, t)))
    # 60 instances on one worker are split into chunks of at most ~25: three chunks
    assert seen == [(1, 3), (2, 3), (3, 3)] and reps[0].instances == 60
