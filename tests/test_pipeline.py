"""The library call for the whole job (relucert.certify_checkpoint): the CLI prints exactly its report."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import relucert
from relucert.refine import Tolerances

from cases import CASES

CLI = [sys.executable, "-m", "relucert.cli"]


def _strip_times(obj):
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"\d+\.\d+ s\b", "T s", obj)
    return obj


def _hand(name):
    obj = CASES[name][0]
    return relucert.io.problem_point_from_dict(obj)


@pytest.mark.parametrize("name", ["kink_min", "tiny_zero", "global", "vec_saddle"])
def test_report_of_decided_exact_points(name):
    pb, pt = _hand(name)
    rep = relucert.certify_checkpoint(pb, pt)
    assert rep.verdict == CASES[name][1] == rep.given.verdict
    assert rep.refined is None and rep.certificate is rep.given.certificate
    res = relucert.check_certificate(rep.certificate)
    assert res.ok and res.verdict == rep.verdict and res.reasons == ()
    assert any("independent check of the given point's certificate: OK" in line for line in rep.independent_check)


def test_undecided_point_is_refined_and_the_report_is_about_the_refined_point():
    pb, pt = _hand("kink_not_stationary")         # exact and not stationary, float gradient small
    rep = relucert.certify_checkpoint(pb, pt)
    assert rep.given.verdict == "not_stationary" and rep.refined is not None
    assert rep.verdict == rep.refined["verdict"] and rep.certificate["verdict"] == rep.verdict
    assert [label for label, _ in rep.certificates()] == ["given point's", "refined point's"]


def test_cli_prints_the_library_report(tmp_path):
    f = "examples/showcase/final.json"
    pb, pt = relucert.load(f)
    rep = relucert.certify_checkpoint(pb, pt)
    assert rep.refined is not None and rep.about_refined
    assert rep.verdict == rep.refined["verdict"] == "saddle" and rep.given.verdict == "not_stationary"
    assert rep.certificate["point"] != rep.given.certificate["point"]
    r = subprocess.run(CLI + ["certify", f, "--json"], capture_output=True, text=True, check=True)
    assert _strip_times(json.loads(r.stdout)) == _strip_times(json.loads(json.dumps(rep.to_json(), default=str)))
    r = subprocess.run(CLI + ["certify", f], capture_output=True, text=True, check=True)
    assert _strip_times(r.stdout.splitlines()) == _strip_times(rep.text().splitlines())


def test_refine_modes_and_checks():
    pb, pt = relucert.load("examples/showcase/final.json")
    never = relucert.certify_checkpoint(pb, pt, refine_mode="never", check_mode=False)
    assert never.refined is None and never.float_gradient_relative is None
    assert never.verdict == "not_stationary"
    assert never.independent_check[0].startswith("independent check: skipped (--no-check)")
    pb2, pt2 = _hand("kink_min")
    forced = relucert.certify_checkpoint(pb2, pt2, refine_mode="always")
    assert forced.refined is not None and forced.verdict == "local_min"


@pytest.mark.parametrize("kw, msg", [
    ({"refine_mode": "sometimes"}, "refine_mode"),
    ({"check_mode": "yes"}, "check_mode"),
    ({"check_limit": -1}, "check_limit"),
    ({"tolerances": Tolerances(kink=float("nan"))}, "tolerance 'kink'"),
    ({"tolerances": Tolerances(max_move=float("inf"))}, "tolerance 'max_move'"),
])
def test_bad_options_are_input_errors(kw, msg):
    pb, pt = _hand("kink_min")
    with pytest.raises(relucert.InputError, match=msg):
        relucert.certify_checkpoint(pb, pt, **kw)


def test_checker_result_on_a_tampered_certificate():
    pb, pt = _hand("kink_min")
    cert = json.loads(json.dumps(relucert.certify(pb, pt).certificate))
    cert["verdict"] = "saddle"
    res = relucert.check_certificate(cert)
    assert not res.ok and res.verdict is None and res.reasons and not bool(res)
    assert relucert.check_certificate("not an object").reasons == ("certificate must be a JSON object",)


def test_text_leads_with_the_answer_and_shortens_exact_numbers():
    """The first lines are the verdict the user came for (the refined point), long rationals shortened."""
    r = subprocess.run(CLI + ["certify", "examples/paper/1d_input_with_bias.json"], capture_output=True, text=True,
                       check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "== answer =="
    assert lines[1].startswith("VERDICT: LOCAL_MIN  for the refined point near the checkpoint")
    assert any(line.startswith("  the checkpoint itself, exactly as given: NOT_STATIONARY") for line in lines[:8])
    assert r.stdout.index("== refined point ==") < r.stdout.index("== the point as given ==")
    assert "(exact, " in r.stdout and " digits)" in r.stdout
    assert max(len(t) for line in lines for t in line.split()) < 60        # no 100-digit fraction in the text
    out = json.loads(subprocess.run(CLI + ["certify", "examples/paper/1d_input_with_bias.json", "--json", "--no-check"],
                                    capture_output=True, text=True, check=True).stdout)
    assert out["verdict"] == "local_min" and out["about"] == "refined point"
    assert out["given"]["verdict"] == "not_stationary" and out["moved"]["relative"] < 1e-3
    assert len(out["given"]["loss"]["exact"]) > 60                         # whole values stay in JSON


def test_defaults_are_stated_loudly(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0]], "A": [[1]]}))
    r = subprocess.run(CLI + ["certify", str(f)], capture_output=True, text=True, check=True)
    head = "\n".join(r.stdout.splitlines()[:5])
    assert "DEFAULTS USED: activation relu" in head and "loss convention half_mean" in head
    out = json.loads(subprocess.run(CLI + ["certify", str(f), "--json"], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["defaults_used"] == ["activation", "loss"]
    f.write_text(json.dumps({"activation": "relu", "loss": "mse", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]],
                             "W": [[1, 0]], "A": [[1]]}))
    r = subprocess.run(CLI + ["certify", str(f)], capture_output=True, text=True, check=True)
    assert "DEFAULTS USED" not in r.stdout and "loss (mse)" in r.stdout
