"""The pytest plugin (relucert.claims.pytest_plugin), exercised in pytester sessions."""
import json
import re

pytest_plugins = ["pytester"]

PLUGIN = ["-p", "relucert.claims.pytest_plugin"]

CASES = '''
from relucert import Problem, Point

def pp(X, Y, W, A):
    pb = Problem.make(X, Y, "relu")
    return pb, Point.make(W, A, pb)

KINK_MIN = pp([[1, 0], [0, 1]], [[1], [-1]], [[1, 0]], [[1]])
NOT_STAT = pp([[1, 0], [0, 1]], [[1], [1]], [[1, 0]], [[1]])
SADDLE = pp([[1, 0], [0, 1]], [[1], [-1]], [[1, 0], [0, 0]], [[1], [0]])
'''


def _run(pytester, *args):
    return pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", *args)


def test_failure_messages_show_verdict_reason_and_certificate(pytester):
    pytester.makepyfile(cases=CASES)
    pytester.makepyfile(test_points='''
from cases import KINK_MIN, NOT_STAT, SADDLE
from relucert.claims.pytest_plugin import assert_local_min, assert_saddle, assert_stationary

def test_saddle_is_not_min():
    assert_local_min(*SADDLE)

def test_not_stationary():
    assert_stationary(*NOT_STAT)

def test_min_is_not_saddle():
    assert_saddle(*KINK_MIN)

def test_passes(relucert_assert):
    relucert_assert.local_min(*KINK_MIN)
    relucert_assert.saddle(*SADDLE)
    relucert_assert.not_stationary(*NOT_STAT)
''')
    r = _run(pytester)
    r.assert_outcomes(passed=1, failed=3)
    out = r.stdout.str()
    assert "expected a LOCAL_MIN (or GLOBAL_MIN), got verdict SADDLE" in out
    assert "expected a STATIONARY point, got verdict NOT_STATIONARY" in out
    assert "expected a SADDLE, got verdict LOCAL_MIN" in out
    assert "reason: neuron 1 is an escape neuron with a_j = 0" in out
    assert "reason: neuron 0: phi_j(r) = a_j.D_j(r) < 0" in out
    # pytest may repeat the failure message in its short summary: count distinct paths
    paths = sorted(set(re.findall(r"certificate: (\S+\.json)", out)))
    assert len(paths) == 3
    for p in paths:
        cert = json.load(open(p))
        assert cert["format"] == "verifier-certificate/1" and cert["verdict"] in ("saddle", "not_stationary", "local_min")


def test_certificate_dir_option(pytester, tmp_path):
    pytester.makepyfile(cases=CASES)
    pytester.makepyfile(test_one='''
from cases import SADDLE
from relucert.claims.pytest_plugin import assert_local_min

def test_it():
    assert_local_min(*SADDLE)
''')
    d = tmp_path / "certs"
    r = _run(pytester, f"--certificate-dir={d}")
    r.assert_outcomes(failed=1)
    files = list(d.glob("*.json"))
    assert len(files) == 1 and str(files[0]) in r.stdout.str()


def test_marker_and_option_set_the_claim_budget(pytester):
    pytester.makepyfile(test_budget='''
import pytest
from relucert.claims.pytest_plugin import assert_claim

@pytest.mark.claim_budget(3)
def test_marker(claim_budget):
    print("FIXTURE", claim_budget)
    rep = assert_claim("permutation-flat")
    print("INSTANCES", rep.instances)

@pytest.mark.claim_budget(3)
def test_argument_beats_marker():
    rep = assert_claim("permutation-flat", 4)
    print("INSTANCES", rep.instances)

def test_default(claim_runner):
    rep = claim_runner("conservation-exact")
    print("INSTANCES", rep.instances)
''')
    r = _run(pytester, "-s", "--strict-markers")
    r.assert_outcomes(passed=3)
    assert re.findall(r"INSTANCES (\d+)", r.stdout.str()) == ["3", "4", "20"]
    assert "FIXTURE 3" in r.stdout.str()
    r = _run(pytester, "-s", "--strict-markers", "--claim-budget", "2")
    r.assert_outcomes(passed=3)
    assert re.findall(r"INSTANCES (\d+)", r.stdout.str()) == ["2", "2", "2"]
    assert "FIXTURE 2" in r.stdout.str()


def test_marker_is_registered(pytester):
    r = _run(pytester, "--markers")
    assert "@pytest.mark.claim_budget(n)" in r.stdout.str()


def test_failing_claim_message(pytester):
    pytester.makepyfile(test_claim='''
from relucert.claims import claim, counterexample, held, skipped
from relucert.claims.generators import stationary_point
from relucert.claims.pytest_plugin import assert_claim
from relucert import certify

@claim("test only: stationary points have loss 0", stationary_point, name="loss-zero", ks=(1,), min_n=2)
def loss_zero(inst):
    res = certify(inst.problem, inst.point)
    if res.verdict == "not_stationary":
        return skipped("not stationary")
    return held() if res.loss == 0 else counterexample(f"loss is {res.loss}")

def test_loss_zero():
    assert_claim("loss-zero", 10, shrink_seconds=120)

def test_expected_counterexample():
    rep = assert_claim("narrow-escape-vector", 20, seed=1, shrink=False)
    assert rep.counterexamples > 0
''')
    r = _run(pytester)
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "claim 'loss-zero'" in out and "expected no counterexample" in out
    assert "counterexample (shrunk): loss is" in out
    m = re.search(r"saved: (\S+minimal\.json)", out)
    assert m, out
    saved = json.load(open(m.group(1)))
    assert saved["claim"] == "loss-zero" and {"X", "Y", "W", "A", "activation"} <= set(saved)
    assert "relucert claims replay" in out
