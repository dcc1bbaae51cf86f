"""Hostile and malformed input: a one-line error naming the file and the problem, exit status 2, never
a traceback, a hang or a verdict; large but valid numbers get their verdict; nothing is unpickled.

The subprocess timeout below is a hang detector, not a speed assertion (speed lives in benchmarks/)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from relucert.check.limits import LimitError, Limits, check_depth, digits_to_int, load_json, parse_exact

CLI = [sys.executable, "-m", "relucert.cli"]
BASE = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0]], "A": [[1]]}
HANG = 60


def run(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=HANG, cwd=cwd)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "verdict" not in r.stdout.lower(), r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert len(lines[0]) < 400, lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def write(tmp_path, name, text: str | bytes):
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return str(p)


RAW_W = '"W": [[1, 0]]'
HOSTILE_JSON = {
    "exp_string.json": (json.dumps(dict(BASE, W=[["1e999999999", 0]])), ("exp_string.json", "W[0][0]", "max_exponent")),
    "exp_number.json": (json.dumps(BASE).replace(RAW_W, '"W": [[1e999999999, 0]]'), ("exp_number.json", "max_exponent")),
    "exp_negative.json": (json.dumps(BASE).replace(RAW_W, '"W": [[1e-999999999, 0]]'), ("exp_negative.json", "max_exponent")),
    "digits.json": (json.dumps(dict(BASE, W=[["1." + "3" * 200_001, 0]])), ("digits.json", "max_digits")),
    "deep.json": ("[" * 5000 + "]" * 5000, ("deep.json", "max_depth")),
    "deep_dict.json": ('{"a":' * 3000 + "1" + "}" * 3000, ("deep_dict.json", "max_depth")),
    "latin1.json": (json.dumps(BASE).encode().replace(b'"relu"', b'"rel\xe9u"'), ("latin1.json", "UTF-8")),
    "nan.json": (json.dumps(BASE).replace(RAW_W, '"W": [[NaN, 0]]'), ("nan.json", "NaN")),
    "bool.json": (json.dumps(dict(BASE, W=[[True, 0]])), ("bool.json", "boolean")),
    "truncated.json": (json.dumps(BASE)[:-5], ("truncated.json", "not valid JSON")),
    "ragged.json": (json.dumps(dict(BASE, X=[[1, 0], [1]])), ("ragged.json", "ragged")),
    "zero_den.json": (json.dumps(dict(BASE, W=[["1/0", 0]])), ("zero_den.json", "zero denominator")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
@pytest.mark.parametrize("command", ["certify", "symmetry", "derive"])
def test_hostile_problem_files(tmp_path, name, command):
    text, needles = HOSTILE_JSON[name]
    f = write(tmp_path, name, text)
    one_line_error(run(command, f), *needles)


def test_embed_option_with_a_hostile_number(tmp_path):
    f = write(tmp_path, "p.json", json.dumps(BASE))
    one_line_error(run("embed", f, "--add-neuron", "1e999999999,0"), "max_exponent")


def test_limits_are_options(tmp_path):
    f = write(tmp_path, "e.json", json.dumps(dict(BASE, W=[["1e20000", 0]])))
    one_line_error(run("certify", f, "--exact-only"), "max_exponent")
    r = run("certify", f, "--exact-only", "--max-exponent", "30000", "--json")
    assert r.returncode == 0, r.stderr[-1000:]
    assert json.loads(r.stdout)["verdict"] == "not_stationary"
    one_line_error(run("certify", f, "--max-exponent", "0"), "--max-exponent")


@pytest.mark.parametrize("W", [["7" * 5000, 0], ["1/" + "3" * 4400, 0], ["-" + "9" * 4301 + "/" + "7" * 4302, 0]])
def test_large_valid_numbers_get_a_verdict_and_a_checked_certificate(tmp_path, W):
    """Integers and denominators over Python's 4,300-digit int/str limit are valid exact input."""
    f = write(tmp_path, "big.json", json.dumps(dict(BASE, W=[W])))
    cert = str(tmp_path / "c.json")
    r = run("certify", f, "--certificate", cert)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "independent check of the given point's certificate: OK" in r.stdout
    r = run("check", cert)
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout[-500:] + r.stderr[-500:]


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    p = str(tmp_path / "obj.npz")
    np.savez(p, X=np.array([[1, 0], [0, 1]], dtype=object), Y=np.array([[1.0], [-1.0]]),
             W=np.array([[1.0, 0.0]]), A=np.array([[1.0]]))
    one_line_error(run("certify", p), "obj.npz", "'X'", "never unpickled")


def test_npz_that_is_not_a_zip(tmp_path):
    p = write(tmp_path, "bad.npz", b"\x93NUMPY definitely not a zip")
    line = one_line_error(run("certify", p), "bad.npz", "not a zip archive")
    assert "allow_pickle" not in line


def test_screen_with_no_checkpoints(tmp_path):
    p = str(tmp_path / "t.npz")
    np.savez(p, X=np.eye(2), Y=np.array([[1.0], [-1.0]]), W=np.zeros((0, 1, 2)), A=np.zeros((0, 1, 1)))
    one_line_error(run("screen", p), "t.npz", "no checkpoints")


def test_certificate_into_a_missing_folder(tmp_path):
    f = write(tmp_path, "p.json", json.dumps(BASE))
    one_line_error(run("certify", f, "--certificate", str(tmp_path / "nope" / "c.json")), "does not exist")


def _refingerprint(cert):
    blob = json.dumps({"problem": cert["problem"], "point": cert["point"]}, sort_keys=True, separators=(",", ":"))
    cert["fingerprint"] = hashlib.sha256(blob.encode()).hexdigest()
    return cert


def test_checker_on_hostile_certificates(tmp_path):
    f = write(tmp_path, "p.json", json.dumps(BASE))
    good = str(tmp_path / "good.json")
    assert run("certify", f, "--certificate", good).returncode == 0
    cert = json.loads(open(good).read())
    for i, value in enumerate(["1e999999999", "1e-999999999", "1/" + "3" * 200_001]):
        bad = json.loads(json.dumps(cert))
        bad["point"]["W"][0][0] = value
        p = write(tmp_path, f"bad{i}.json", json.dumps(_refingerprint(bad)))
        r = run("check", p)
        assert r.returncode == 1 and r.stdout.startswith("REJECTED") and "Traceback" not in r.stderr, r.stderr[-1000:]
        assert "limit" in r.stdout and len(r.stdout.strip().splitlines()) == 1, r.stdout[:500]
    p = write(tmp_path, "deep.json", "[" * 5000 + "]" * 5000)
    one_line_error(run("check", p), "max_depth")
    # the stand-alone checker (python -m relucert.check) follows the same policy
    r = subprocess.run([sys.executable, "-m", "relucert.check", str(tmp_path / "bad0.json")],
                       capture_output=True, text=True, timeout=HANG)
    assert r.returncode == 1 and "limit" in r.stdout and "Traceback" not in r.stderr


def test_malicious_torch_checkpoint_is_not_unpickled(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    payload = tmp_path / "evil.pt"
    code = ("import os, torch\n"
            "class Evil:\n"
            f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
            f"torch.save({{'0.weight': Evil()}}, {str(payload)!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=HANG)
    assert payload.exists() and not marker.exists()
    data = write(tmp_path, "data.json", json.dumps({"X": BASE["X"], "Y": BASE["Y"], "activation": "relu"}))
    one_line_error(run("certify", "--torch", str(payload), "--data", data), "evil.pt", "weights_only=True")
    assert not marker.exists(), "the checkpoint's pickle payload was executed"
    del torch


# --- the limits policy itself (unit tests with hand-computed values) ----------------------------------

@pytest.mark.parametrize("text, num, den", [
    ("3", 3, 1), ("-0.25", -1, 4), ("1e-3", 1, 1000), ("2.5E+2", 250, 1), ("3/7", 3, 7), (" -12/8 ", -3, 2),
    (".5", 1, 2), ("1.5/3", 1, 2), ("+7", 7, 1), ("0e0", 0, 1), ("0.1", 1, 10), ("-0.000", 0, 1),
    ("1e0000000000000000000000000000000001", 10, 1),
])
def test_parse_exact_values(text, num, den):
    from fractions import Fraction
    assert parse_exact(text) == Fraction(num, den)


def test_parse_exact_beyond_pythons_int_str_limit():
    assert parse_exact("1" + "0" * 5000) == 10 ** 5000
    assert parse_exact("-3/1" + "0" * 6000).denominator == 10 ** 6000


@pytest.mark.parametrize("text, needle", [
    ("1e10001", "max_exponent"), ("1e-10001", "max_exponent"), ("1" * 100_001, "max_digits"),
    ("1/" + "1" * 100_001, "max_digits"), ("1/0", "zero denominator"), ("abc", "cannot read"), ("1e", "cannot read"),
    ("--1", "cannot read"), ("", "cannot read"), ("1e99999999999999999999", "max_exponent"),
])
def test_parse_exact_refusals(text, needle):
    with pytest.raises(LimitError, match=needle):
        parse_exact(text, "x")


def test_parse_exact_respects_custom_limits():
    small = Limits(max_exponent=5, max_digits=3)
    assert parse_exact("123e5", "x", small) == 12_300_000
    for t in ("1e6", "1234"):
        with pytest.raises(LimitError):
            parse_exact(t, "x", small)


def test_digits_to_int_beyond_pythons_limit():
    s = "123456789" * 2000                       # 18,000 digits
    expect = 0
    for ch in s:
        expect = expect * 10 + (ord(ch) - 48)
    assert digits_to_int(s) == expect


def test_json_depth_and_exact_numbers():
    obj = load_json('{"a": [0.1, 2, "3"]}', "t")
    from fractions import Fraction
    assert obj == {"a": [Fraction(1, 10), 2, "3"]} and isinstance(obj["a"][1], int)
    with pytest.raises(LimitError, match="max_depth"):
        check_depth([[[[1]]]], "t", Limits(max_depth=3))
    check_depth([[[1]]], "t", Limits(max_depth=3))
    with pytest.raises(LimitError, match="NaN"):
        load_json("[NaN]", "t")


def test_internal_errors_are_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    from relucert import cli
    import relucert.commands.certify_cmd as cc
    f = write(tmp_path, "p.json", json.dumps(BASE))

    def boom(*a, **k):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr(cc, "certify_checkpoint", boom)
    assert cli.main(["certify", f]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (RuntimeError: simulated bug)" in err[0] and "--debug" in err[0]
    with pytest.raises(RuntimeError, match="simulated bug"):
        cli.main(["certify", f, "--debug"])


def test_hostile_text_is_not_echoed_in_full(tmp_path):
    f = write(tmp_path, "p.json", json.dumps(dict(BASE, activation="x" * 5000)))
    line = one_line_error(run("certify", f), "p.json", "unknown activation", "5002 characters")
    assert len(line) < 400
