"""Claims (issue 7): generators, the claim API, the runner, the library at a small budget, and the
results the library found (kept as fixed tests)."""
import json
import subprocess
import sys

import pytest
from flint import fmpq

from relucert import Point
from relucert import Problem
from relucert import certify
from relucert.claims import (Reject, claim, counterexample, get_claim, held, sample, select, skipped,
                             strategy)
from relucert.claims import generators as gen
from relucert.claims import knots as kn
from relucert.claims.brute import flat_family_descent, second_order_descent
from relucert.claims.instance import Instance
from relucert.claims.runner import replay, run_claims, table

pytest_plugins = ["relucert.claims.pytest_plugin"]

CLI = [sys.executable, "-m", "relucert.cli"]
Q = fmpq


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

def test_seeded_generators_are_reproducible():
    a = sample(gen.stationary_point, "s:1").to_json()
    b = sample(gen.stationary_point, "s:1").to_json()
    assert a == b
    assert a != sample(gen.stationary_point, "s:2").to_json()


def test_stationary_by_construction_is_stationary():
    verdicts = [certify(i.problem, i.point).verdict
                for i in (sample(gen.stationary_point, f"st:{s}", min_n=2) for s in range(40))]
    assert verdicts.count("not_stationary") <= 4
    assert {"local_min", "saddle"} <= set(verdicts)


@pytest.mark.parametrize("style", gen.DATA_STYLES)
def test_dataset_styles(style):
    from relucert.claims.source import RandomSource
    src = RandomSource(style)
    X = gen.dataset(src, 6, 3, style=style, bias=True)
    assert len(X) == 6 and all(len(x) == 3 and x[-1] == 1 for x in X)
    if style == "symmetric":
        assert X[1] == [-v for v in X[0][:-1]] + [1]
    if style == "collinear":
        Xn = [x[:-1] for x in X]
        from relucert.core.linalg import rank
        assert rank(Xn) <= 2


def test_activations_cover_relu_leaky_abs_random():
    from relucert.claims.source import RandomSource
    names = {gen.activation(RandomSource(s)).name for s in range(60)}
    assert {"relu", "abs", "leaky_relu:1/10"} <= names
    assert any(n.startswith("alpha_plus") or (n.startswith("leaky") and n != "leaky_relu:1/10") for n in names)


def test_fitted_points_have_zero_output_gradient():
    from relucert.core.formulas import ExactState
    for s in range(10):
        inst = sample(gen.fitted_point, f"f:{s}")
        st = ExactState(inst.problem, inst.point)
        assert all(v == 0 for v in st.G.ravel())


def test_gd_refined_points_are_decided():
    got = 0
    for s in range(4):
        try:
            inst = sample(gen.gd_refined_point, f"gd:{s}")
        except Reject:
            continue
        got += 1
        assert certify(inst.problem, inst.point).verdict in ("local_min", "saddle", "global_min")
    assert got >= 2


def test_hypothesis_strategy_draws_valid_instances():
    from hypothesis import given, settings
    seen = []

    @settings(max_examples=15, database=None, deadline=None)
    @given(strategy(gen.stationary_point, ks=(1, 2)))
    def t(inst):
        assert isinstance(inst, Instance)
        inst.point.validate(inst.problem)
        seen.append(inst.kind)

    t()
    assert seen and set(seen) == {"stationary"}


def test_instance_json_round_trip(tmp_path):
    inst = sample(gen.stationary_point, "rt")
    obj = inst.to_json()
    back = Instance.from_json(json.loads(json.dumps(obj)))
    assert back.to_json() == obj
    p = tmp_path / "i.json"
    p.write_text(json.dumps(obj))
    from relucert import load
    pb, pt = load(str(p))             # the input schema of `relucert certify`
    assert pt.m == inst.point.m


# ---------------------------------------------------------------------------------------------
# the claim API and runner
# ---------------------------------------------------------------------------------------------

@claim("test only: every stationary-by-construction instance has loss 0 (false)", gen.stationary_point,
       name="test-false-zero-loss", budget=15, tags=("test-only",), ks=(1,), min_n=2)
def _false_claim(inst):
    res = certify(inst.problem, inst.point)
    if res.verdict == "not_stationary":
        return skipped("not stationary")
    return held() if res.loss == 0 else counterexample(f"loss {res.loss}")


@claim("test only: raises", gen.random_point, name="test-raises", budget=3, tags=("test-only",))
def _raises(inst):
    raise RuntimeError("boom")


def test_counterexample_is_shrunk_and_saved(tmp_path):
    rep = run_claims([get_claim("test-false-zero-loss")], instances=15, seed=0, workers=1, out_dir=str(tmp_path))[0]
    assert rep.counterexamples > 0 and rep.status == "FAILED"
    assert rep.minimal["shrunk"] is True
    minimal = json.loads((tmp_path / "test-false-zero-loss" / "minimal.json").read_text())
    # hypothesis shrinks to the smallest instance: two data points (min_n=2), one neuron, scalar output
    assert len(minimal["X"]) == 2 and len(minimal["W"]) == 1 and len(minimal["Y"][0]) == 1
    assert minimal["claim"] == "test-false-zero-loss" and minimal["message"].startswith("loss")
    c, inst, out = replay(str(tmp_path / "test-false-zero-loss" / "minimal.json"))
    assert out.status == "counterexample"
    r = subprocess.run(CLI + ["certify", str(tmp_path / "test-false-zero-loss" / "minimal.json"), "--exact-only"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "verdict:" in r.stdout


def test_errors_are_reported_not_hidden(tmp_path):
    rep = run_claims([get_claim("test-raises")], instances=3, workers=1, out_dir=str(tmp_path))[0]
    assert rep.errors == 3 and rep.status == "ERROR"
    assert "RuntimeError: boom" in rep.error_examples[0]["message"]


def test_results_do_not_depend_on_workers():
    c = [get_claim("test-false-zero-loss")]
    a = run_claims(c, instances=12, seed=3, workers=1, out_dir=None, do_shrink=False)[0]
    b = run_claims(c, instances=12, seed=3, workers=2, out_dir=None, do_shrink=False)[0]
    assert (a.held, a.counterexamples, a.skipped) == (b.held, b.counterexamples, b.skipped)
    assert "test-false-zero-loss" in table([a, b])


def test_select_by_name_substring_and_tag():
    assert [c.name for c in select(["theorem-a"])] == ["theorem-a"]
    assert {c.name for c in select(["embed"])} >= {"embed-zero-neuron", "embed-replicate-zero"}
    assert {c.name for c in select(["knots"])} >= {"knots-bound", "knots-3-2-below-bound"}


def test_dask_backend(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            reps = run_claims(select(["permutation-flat", "narrow-escape-vector"]), instances=8, seed=0,
                              dask=client, out_dir=str(tmp_path), do_shrink=False)
    serial = run_claims(select(["permutation-flat", "narrow-escape-vector"]), instances=8, seed=0, workers=1,
                        out_dir=None, do_shrink=False)
    assert [(r.held, r.counterexamples, r.skipped) for r in reps] == \
           [(r.held, r.counterexamples, r.skipped) for r in serial]
    assert reps[1].counterexamples > 0 and list((tmp_path / "narrow-escape-vector").glob("seed0-*.json"))


# ---------------------------------------------------------------------------------------------
# the library, each claim at a small budget
# ---------------------------------------------------------------------------------------------

SMALL = {"theorem-a": 10, "theorem-b": 10, "narrow-escape-vector": 20, "broad-escape-vector": 10,
         "knots-3-2-below-bound": 30}


@pytest.mark.parametrize("name", [c.name for c in select(None) if "test-only" not in c.tags])
def test_library_claim_small_budget(name, request, relucert_assert, claim_budget, tmp_path):
    """Every library claim at a small budget (6 by the marker, more where a claim needs it;
    ``--claim-budget N`` overrides)."""
    request.node.add_marker(pytest.mark.claim_budget(6))
    rep = relucert_assert.claim(name, SMALL.get(name), seed=1, shrink=name != "knots-3-2-below-bound",
                                out=str(tmp_path), shrink_seconds=5)
    assert rep.instances == (request.config.getoption("claim_budget", None) or SMALL.get(name, 6))


# ---------------------------------------------------------------------------------------------
# results found by the library, kept as fixed tests
# ---------------------------------------------------------------------------------------------

def _pp(X, Y, W, A, act="relu"):
    pb = Problem.make(X, Y, act)
    return pb, Point.make(W, A, pb)


def test_narrow_reading_counterexample_zero_input_neuron(relucert_assert):
    """Shrunk by hypothesis: one ReLU neuron with w = 0 and a = (1, 0) != 0, two data points
    x = 1, -1.  Stationary, no neuron with a_j = 0, yet along w = -t, a = (1, -t) the loss is
    exactly (1 - t^2 + t^4)/4 < 1/4: the narrow reading of 'escape neuron' is not enough."""
    pb, pt = _pp([[1], [-1]], [[0, 0], [0, -1]], [[0]], [[1, 0]])
    res = relucert_assert.stationary(pb, pt)
    # certify proves it with a second-order ray of the escape neuron: w = -t, a = (1, -t) exactly
    assert res.verdict == "saddle" and res.escape_neurons == [0]
    so = res.certificate["evidence"]["second_order"]
    assert so["dW"] == [["-1"]] and so["dA"] == [["0", "-1"]] and so["polynomial"] == ["0", "0", "-1/4", "0", "1/4"]
    c = get_claim("narrow-escape-vector")
    out = c.evaluate(Instance(pb, pt, "fixed"))
    assert out.status == "counterexample"
    d = flat_family_descent(pb, pt, 0, [Q(-1)])
    assert d is not None and d.loss < d.base
    assert [str(v) for v in d.ray.coeffs] == ["0", "-1/4", "0", "1/4"]
    assert get_claim("broad-escape-vector").evaluate(Instance(pb, pt, "fixed")).status == "held"


def test_narrow_reading_counterexample_differentiable_rank_one_saddle(relucert_assert):
    """A differentiable point (no kinks, all pre-activations > 0): locally a rank-one linear
    network fitting B = diag(1, 2) with the *smaller* singular pair. Stationary, a != 0, not a
    local minimum: exact negative curvature in the kink-preserving second-order test."""
    pb, pt = _pp([[1, 1], [1, -1]], [[1, 2], [1, -2]], [[1, 0]], [[1, 0]])
    res = relucert_assert.stationary(pb, pt)
    assert res.verdict == "saddle" and res.escape_neurons == [0]
    assert "second_order" in res.certificate["evidence"]
    d = second_order_descent(pb, pt)
    assert d is not None and d.how == "second order" and d.ray.coeffs[0] == 0 and d.ray.coeffs[1] < 0
    assert d.loss < d.base
    assert get_claim("narrow-escape-vector").evaluate(Instance(pb, pt, "fixed")).status == "counterexample"


def test_plugin_assertions_on_hand_cases(relucert_assert):
    pb, pt = _pp([[1, 0], [0, 1]], [[1], [-1]], [[1, 0]], [[1]])
    relucert_assert.local_min(pb, pt)
    pb, pt = _pp([[1, 0], [0, 1]], [[1], [-1]], [[1, 0], [0, 0]], [[1], [0]])
    relucert_assert.saddle(pb, pt)


def test_eleven_knots_for_widths_3_2():
    net = kn.eleven_knot_network()
    ks = kn.knots(net)
    assert len(ks) == 11 == kn.bound((3, 2))
    assert kn.check_knots(net, ks) is None
    assert [str(x) for x in ks] == ["-7/4", "-13/8", "0", "13/16", "7/8", "1", "3/2", "7/4", "2", "9/4", "5/2"]


def test_max_zero_crossings_exhaustive():
    """One second-layer neuron over n_1 first-layer ReLUs crosses 0 at most n_1 times for
    n_1 <= 2 (exhaustive over facings; positions 0, 1 w.l.o.g.), so widths (2,2) have at most
    2 + 2*2 = 6 < 8 knots; with n_1 = 3 it reaches 4 = n_1 + 1."""
    assert kn.max_crossings(1)["max_crossings"] == 1
    assert kn.max_crossings(2)["max_crossings"] == 2
    assert kn.max_crossings(3, extra_positions=(Q(2),))["max_crossings"] == 4


def test_knot_counter_hand_cases():
    relu = kn.DeepNet([[[Q(1)]]], [[Q(0)]], [[Q(1)]], [Q(0)])
    assert kn.knots(relu) == [Q(0)]
    cancel = kn.DeepNet([[[Q(1)], [Q(1)]]], [[Q(0), Q(0)]], [[Q(1), Q(-1)]], [Q(0)])
    assert kn.knots(cancel) == []                       # relu(x) - relu(x) = 0
    absval = kn.DeepNet([[[Q(1)], [Q(-1)]]], [[Q(0), Q(0)]], [[Q(1), Q(1)]], [Q(0)])
    assert kn.knots(absval) == [Q(0)]                   # |x|: two neurons, one knot
    linear = kn.DeepNet([[[Q(1)], [Q(-1)]]], [[Q(0), Q(0)]], [[Q(1), Q(-1)]], [Q(0)])
    assert kn.knots(linear) == []                       # relu(x) - relu(-x) = x
    deep = kn.DeepNet([[[Q(1)]], [[Q(-1)]]], [[Q(0)], [Q(1)]], [[Q(1)]], [Q(0)])
    assert kn.knots(deep) == [Q(0), Q(1)]               # relu(1 - relu(x))
    for net in (relu, cancel, absval, linear, deep):
        assert kn.check_knots(net, kn.knots(net)) is None


def test_knot_search_small_widths():
    assert kn.search_max_knots((2, 1), iters=1500, restarts=3, seed=0)[0] == 4
    assert kn.search_max_knots((1, 1), iters=600, restarts=2, seed=0)[0] == 2


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def test_cli_claims_run_and_list(tmp_path):
    r = subprocess.run(CLI + ["claims", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "theorem-a" in r.stdout and "knots-3-2-below-bound" in r.stdout
    out = tmp_path / "cex"
    r = subprocess.run(CLI + ["claims", "run", "narrow-escape-vector", "permutation-flat", "--instances", "8",
                              "--seed", "0", "--workers", "2", "--out", str(out), "--shrink-examples", "30",
                              "--shrink-seconds", "5"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for col in ("claim", "instances", "held", "counterex.", "skipped", "time s"):
        assert col in r.stdout
    assert "narrow-escape-vector" in r.stdout and "permutation-flat" in r.stdout
    minimal = out / "narrow-escape-vector" / "minimal.json"
    assert minimal.exists()
    r = subprocess.run(CLI + ["certify", str(minimal), "--exact-only", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["verdict"] in ("inconclusive", "saddle", "local_min")
    r = subprocess.run(CLI + ["claims", "replay", str(minimal)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "outcome: counterexample" in r.stdout


def test_cli_claims_errors(tmp_path):
    r = subprocess.run(CLI + ["claims", "run", "no-such-claim"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: no claim matches")
    r = subprocess.run(CLI + ["claims", "run", "permutation-flat", "--instances", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--instances" in r.stderr
    r = subprocess.run(CLI + ["claims", "run", "permutation-flat", "-n", "3", "--json", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["claims"][0]["instances"] == 3
