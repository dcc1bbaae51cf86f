"""End-to-end tests of the command line, as a new user runs it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cases import CASES

CLI = [sys.executable, "-m", "relucert.cli"]


def run(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


@pytest.mark.parametrize("name", ["kink_min", "origin", "degenerate_not", "vec_inconclusive", "global"])
def test_certify_json_and_check(tmp_path, name):
    data, verdict, escape, loss = CASES[name]
    f = write(tmp_path, "p.json", data)
    cert = str(tmp_path / "c.json")
    r = run("certify", f, "--json", "--certificate", cert, "--exact-only")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == verdict
    assert out["escape_neurons"] == escape
    assert out["loss"]["exact"] == loss and out["loss"]["convention"] == "half_mean"
    assert len(out["given"]["neurons"]) == len(data["W"])
    assert out["about"] == "given point" and out["given"]["verdict"] == verdict and out["refined"] is None
    r = run("check", cert)
    assert r.returncode == 0 and f"'{verdict}'" in r.stdout


def test_certify_report_text(tmp_path):
    f = write(tmp_path, "p.json", CASES["tiny_zero"][0])
    r = run("certify", f)
    assert r.returncode == 0
    assert "verdict: SADDLE" in r.stdout
    assert "escape path on neuron 1" in r.stdout
    assert "loss (half_mean, exact rational): 1/4" in r.stdout


def test_check_rejects_tampered_certificate(tmp_path):
    f = write(tmp_path, "p.json", CASES["kink_min"][0])
    cert = tmp_path / "c.json"
    assert run("certify", f, "--certificate", str(cert)).returncode == 0
    c = json.loads(cert.read_text())
    c["verdict"] = "global_min"
    cert.write_text(json.dumps(c))
    r = run("check", str(cert))
    assert r.returncode == 1
    assert "REJECTED" in r.stdout and "global_min needs loss exactly 0" in r.stdout


def test_check_point_option_ties_the_certificate_to_the_input(tmp_path):
    f = write(tmp_path, "p.json", CASES["kink_min"][0])
    other = write(tmp_path, "q.json", CASES["tiny_pos"][0])
    cert = str(tmp_path / "c.json")
    assert run("certify", f, "--certificate", cert, "--exact-only").returncode == 0
    r = run("check", cert, "--point", f)
    assert r.returncode == 0 and "it is exactly the point in" in r.stdout and "m=1" in r.stdout
    r = run("check", cert, "--point", other)
    assert r.returncode == 1
    assert "about another point" in r.stdout and "weights differ" in r.stdout


def test_decision_self_checks_survive_python_O(tmp_path):
    # the exact self-checks of the decision code are not asserts: with -O a saddle is still proved
    f = write(tmp_path, "p.json", CASES["tiny_zero"][0])
    cert = str(tmp_path / "c.json")
    r = subprocess.run([sys.executable, "-O", "-c",
                        "import relucert.decide.certify as c, inspect; "
                        "src = inspect.getsource(c); assert False, 'asserts are on'"],
                       capture_output=True, text=True)
    assert r.returncode == 0, "python -O did not disable asserts"
    import inspect
    import relucert.decide.certify as certify_mod
    assert "\n    assert " not in inspect.getsource(certify_mod)
    r = subprocess.run([sys.executable, "-O", "-m", "relucert.cli", "certify", f, "--certificate", cert],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "verdict: SADDLE" in r.stdout
    assert run("check", cert).returncode == 0


def test_npz_input(tmp_path):
    p = tmp_path / "p.npz"
    np.savez(p, X=np.array([[1.0, 0.0], [0.0, 1.0]]), Y=np.array([[1.0], [-1.0]]),
             W=np.array([[1.0, 0.0]], dtype=np.float32), A=np.array([[1.0]], dtype=np.float32),
             alpha_plus=1.0, alpha_minus=0.0)
    r = run("certify", str(p), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "local_min"


def _bad_npz(tmp_path):
    p = tmp_path / "nan.npz"
    np.savez(p, X=np.array([[1.0, np.nan]]), Y=np.array([[1.0]]), W=np.array([[1.0, 0.0]]), A=np.array([[1.0]]))
    return str(p)


@pytest.mark.parametrize("content, msg", [
    ({"X": [[1, 2]], "Y": [[1]], "W": [[1, 2, 3]], "A": [[1]]}, "W has 3 columns but X has 2"),
    ({"X": [[1]], "Y": [[1]], "W": [[1]], "A": [[1]], "activation": {"alpha_plus": 1, "alpha_minus": 1}},
     "alpha_plus = alpha_minus"),
    ({"X": [], "Y": [], "W": [[1]], "A": [[1]]}, "X is empty"),
    ({"X": [["inf"]], "Y": [[1]], "W": [[1]], "A": [[1]]}, "not finite"),
    ({"X": [[1]], "Y": [[1]]}, "missing key"),
    ("{not json", "not valid JSON"),
    ('{"X": [[NaN]], "Y": [[1]], "W": [[1]], "A": [[1]]}', "NaN"),
])
def test_bad_input_cli(tmp_path, content, msg):
    p = tmp_path / "bad.json"
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    r = run("certify", str(p))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert msg in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_files_cli(tmp_path):
    r = run("certify", _bad_npz(tmp_path))
    assert r.returncode == 2 and "X contains NaN at index [0, 1]" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    r = run("certify", str(junk))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    r = run("certify", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "no such file" in r.stderr
    txt = tmp_path / "p.txt"
    txt.write_text("x")
    r = run("certify", str(txt))
    assert r.returncode == 2 and "unknown file type" in r.stderr
    bad = tmp_path / "c.json"
    bad.write_text("[1,2")
    r = run("check", str(bad))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


def test_certify_cli_second_order_saddle(tmp_path):
    f = write(tmp_path, "p.json", {"activation": "relu", "X": [[1], [-1]], "Y": [[0, 0], [0, -1]],
                                   "W": [[0]], "A": [[1, 0]]})
    cert = str(tmp_path / "c.json")
    r = run("certify", f, "--certificate", cert)
    assert r.returncode == 0, r.stderr
    assert "verdict: SADDLE" in r.stdout and "second-order descent ray" in r.stdout
    assert "L(t) - L = (-1/4) t^2 + (1/4) t^4" in r.stdout
    r = run("check", cert, "--point", f)
    assert r.returncode == 0 and "'saddle'" in r.stdout


def test_certify_rechecks_its_certificates_independently(tmp_path, monkeypatch, capsys):
    f = write(tmp_path, "p.json", CASES["tiny_zero"][0])
    r = run("certify", f)
    assert "independent check of the given point's certificate: OK, proves 'saddle'" in r.stdout
    r = run("certify", f, "--no-check", "--json")
    assert json.loads(r.stdout)["independent_check"][0].startswith("independent check: skipped (--no-check)")
    # a certificate the checker rejects is an internal error, never a printed verdict
    from relucert import check
    from relucert import cli
    def reject(cert):
        return check.CheckResult(False, None, cert.get("format"), ("simulated",))
    monkeypatch.setattr(check, "check_certificate", reject)
    code = cli.main(["certify", f])
    out = capsys.readouterr()
    assert code != 0 and "independent checker rejects" in out.err and "verdict:" not in out.out


@pytest.mark.parametrize("opt", ["--replica-angle=-1", "--tol-kink=nan", "--max-move=inf"])
def test_bad_tolerance_options(tmp_path, opt):
    f = write(tmp_path, "p.json", CASES["kink_min"][0])
    r = run("certify", f, opt)
    assert r.returncode == 2 and "must be a finite number >= 0" in r.stderr and "Traceback" not in r.stderr
