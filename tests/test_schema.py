"""The certificate formats' JSON Schemas (relucert/check/schema/): valid schemas, shipped with the
package, matched by every certificate the builders emit, and rejecting malformed certificates.

(tests/conftest.py additionally validates every certificate the whole suite emits in-process.)"""
import copy
import glob
import json
import os
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

import relucert.decide.certify as certify_mod
from relucert import certify
from relucert.check import BALL_FORMAT, FORMAT, SCHEMA_FILES, require_valid
from relucert.decide.stationarity import PhiDecision
from relucert.io import load, problem_point_from_dict

from cases import CASES

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXAMPLES = os.path.join(ROOT, "examples")
VERDICTS = ("not_stationary", "global_min", "local_min", "saddle", "inconclusive")


def _schema(fmt):
    with open(SCHEMA_FILES[fmt]) as fh:
        return json.load(fh)


VALIDATORS = {fmt: Draft202012Validator(_schema(fmt)) for fmt in SCHEMA_FILES}


def errors(cert):
    """Schema errors of a certificate, against the ball schema if it says so, else the main one."""
    fmt = BALL_FORMAT if cert.get("format") == BALL_FORMAT else FORMAT
    return sorted(VALIDATORS[fmt].iter_errors(cert), key=lambda e: list(e.path))


def assert_valid(cert):
    errs = errors(cert)
    assert not errs, "\n".join(f"{e.json_path}: {e.message}" for e in errs[:10])


def certificate_of(name, **kw):
    pb, pt = problem_point_from_dict(CASES[name][0])
    return certify(pb, pt, **kw).certificate


# ---------------------------------------------------------------------------------------------
# the schema files themselves
# ---------------------------------------------------------------------------------------------

def test_schema_files_exist_for_both_formats_and_are_valid_json_schema():
    assert set(SCHEMA_FILES) == {FORMAT, BALL_FORMAT}
    for fmt, path in SCHEMA_FILES.items():
        assert os.path.isfile(path), path
        s = _schema(fmt)
        Draft202012Validator.check_schema(s)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert s["properties"]["format"]["const"] == fmt
        assert s["additionalProperties"] is False


def test_every_property_is_described():
    """Each property of each (sub)schema carries a one-line description."""
    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert isinstance(sub, dict) and sub.get("description"), f"{where}/properties/{name}"
                assert "\n" not in sub["description"], f"{where}/properties/{name}"
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")
    for fmt in SCHEMA_FILES:
        walk(_schema(fmt), fmt)


def test_shared_definitions_are_identical_in_both_files():
    """Both files are self-contained; the definitions they share must not drift apart."""
    a, b = _schema(FORMAT)["$defs"], _schema(BALL_FORMAT)["$defs"]
    shared = ["rational", "nonNegativeRational", "positiveRational", "vector", "matrix", "index", "fingerprint",
              "activation", "problem", "point"]
    for name in shared:
        assert a[name] == b[name], name


def test_verdict_enum_matches_the_builder():
    s = _schema(FORMAT)
    assert tuple(s["properties"]["verdict"]["enum"]) == certify_mod.VERDICTS == VERDICTS
    # a ball certificate proves a saddle (zero escape neuron) or a local minimum (docs/theory.md §10.5)
    assert _schema(BALL_FORMAT)["properties"]["verdict"]["enum"] == ["saddle", "local_min"]


@pytest.mark.parametrize("text,ok", [
    ("0", True), ("3", True), ("-7/2", True), ("+5", True), ("12/1", True), ("-0", True), ("1/007", True),
    ("", False), ("1.5", False), ("1e3", False), ("3/0", False), ("3/00", False), ("-3/-2", False), ("3/", False),
    ("/2", False), (" 3", False), ("3 ", False), ("1/2/3", False), ("--1", False), ("inf", False), ("0x10", False),
])
def test_exact_rational_pattern(text, ok):
    rational = Draft202012Validator({"$defs": _schema(FORMAT)["$defs"], "$ref": "#/$defs/rational"})
    assert rational.is_valid(text) is ok
    assert not rational.is_valid(3) and not rational.is_valid(1.5) and not rational.is_valid(None)


def test_sign_restricted_rationals():
    d = _schema(FORMAT)["$defs"]

    def ok(name, text):
        return Draft202012Validator({"$defs": d, "$ref": f"#/$defs/{name}"}).is_valid(text)
    assert ok("positiveRational", "1/3") and not ok("positiveRational", "0") and not ok("positiveRational", "-1")
    assert not ok("positiveRational", "0/5") and ok("positiveRational", "+2")
    assert ok("nonNegativeRational", "0") and not ok("nonNegativeRational", "-1/2")
    assert ok("negativeRational", "-1/2") and not ok("negativeRational", "0") and not ok("negativeRational", "-0")


def test_schema_files_are_package_data():
    with open(os.path.join(ROOT, "pyproject.toml")) as fh:
        text = fh.read()
    assert "[tool.setuptools.package-data]" in text and '"check/schema/*.json"' in text
    assert "jsonschema>=4" in text


# ---------------------------------------------------------------------------------------------
# certificates that must validate
# ---------------------------------------------------------------------------------------------

def _committed_certificates():
    out = []
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.json"), recursive=True)):
        with open(path) as fh:
            obj = json.load(fh)
        if isinstance(obj, dict) and obj.get("format") in SCHEMA_FILES:
            out.append(os.path.relpath(path, ROOT))
    return out


COMMITTED = _committed_certificates()


def test_examples_hold_committed_certificates():
    assert os.path.join("examples", "showcase", "certificate.json") in COMMITTED


@pytest.mark.parametrize("rel", COMMITTED)
def test_committed_certificate_validates(rel):
    with open(os.path.join(ROOT, rel)) as fh:
        cert = json.load(fh)
    assert_valid(cert)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case_certificate_validates(name):
    cert = json.loads(json.dumps(certificate_of(name)))       # as written to a file
    assert cert["verdict"] == CASES[name][1]
    assert_valid(cert)


def test_every_verdict_and_witness_kind_validates():
    """Certificates of every verdict, and of every stationarity / escape method and saddle proof."""
    seen_verdicts, st_methods, esc_methods, proofs = set(), set(), set(), set()
    certs = [certificate_of(n) for n in sorted(CASES)]
    certs.append(certificate_of("degenerate_min", method="rays"))          # stationarity by extreme rays
    certs.append(certificate_of("degenerate_min", method="z3"))            # z3, re-certified by cones / rays
    certs.append(certificate_of("kink_min", method="separable"))           # separable, recorded as cones
    # second-order ray (tests/test_units.py: the theory example)
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1], [-1]], "Y": [[0, 0], [0, -1]],
                                      "W": [[0]], "A": [[1, 0]]})
    certs.append(certify(pb, pt).certificate)
    # Morse-Bott local minimum
    pb, pt = load(os.path.join(EXAMPLES, "embedding", "vec_morse_bott_min.json"))
    certs.append(certify(pb, pt).certificate)
    for cert in certs:
        assert_valid(cert)
        assert require_valid(cert) == cert["verdict"]
        ev = cert["evidence"]
        seen_verdicts.add(cert["verdict"])
        for item in ev.get("neurons", []):
            st_methods.add(item["stationarity"]["method"])
            if "escape" in item:
                esc_methods.add(item["escape"]["method"])
        proofs |= {k for k in ("not_stationary", "escape_path", "second_order", "morse_bott") if k in ev}
    assert seen_verdicts == set(VERDICTS)
    assert st_methods == {"zero_output", "cones", "rays"}
    assert esc_methods == {"zero_derivative", "scalar_nonzero_a", "direction", "rays"}
    assert proofs == {"not_stationary", "escape_path", "second_order", "morse_bott"}


def test_undecided_stationarity_validates(monkeypatch):
    """An (S2) the decision procedures cannot settle is recorded as 'undecided' (no escape entry)."""
    monkeypatch.setattr(certify_mod, "decide_phi",
                        lambda b, gamma, method="auto": PhiDecision(None, "cones", note="forced"))
    cert = certificate_of("degenerate_min")
    assert cert["verdict"] == "inconclusive"
    item = cert["evidence"]["neurons"][0]
    assert item["stationarity"] == {"method": "undecided"} and "escape" not in item
    assert require_valid(cert) == "inconclusive"
    assert_valid(cert)


@pytest.fixture(scope="module")
def ball_cert():
    """A ball certificate, obtained as tests/test_ball.py does (paper plateau 3, tiny_zero reading)."""
    from relucert.refine import Tolerances, classify
    import relucert.refine.driver as R
    pb, pt = load(os.path.join(EXAMPLES, "paper", "2d_input_2d_output_plateau3.json"))
    tol = Tolerances()
    ref = R._refine_one(pb, pt, classify(pb, pt, tol), "tiny_zero", tol)
    assert ref.ball is not None, ref.note
    return ref.ball


def test_ball_certificate_validates(ball_cert):
    assert ball_cert["format"] == BALL_FORMAT
    cert = json.loads(json.dumps(ball_cert))
    assert_valid(cert)
    assert require_valid(cert) == "saddle"


def test_ball_schema_rejects_broken_ball_certificates(ball_cert):
    for mutate in [
        lambda c: c["evidence"].pop("radius"),
        lambda c: c["evidence"].__setitem__("radius", "0"),
        lambda c: c["evidence"].__setitem__("radius", 1e-30),
        lambda c: c.__setitem__("verdict", "local_min"),
        lambda c: c["evidence"].__setitem__("escape", []),
        lambda c: c["evidence"]["clusters"][0]["beta"].__setitem__(0, "-1/2"),
        lambda c: c["evidence"]["clusters"][0].__setitem__("gauge", "0"),
        lambda c: c["evidence"].__setitem__("extra", 1),
        lambda c: c["evidence"]["preconditioner"].__setitem__(0, "1"),
    ]:
        c = copy.deepcopy(ball_cert)
        mutate(c)
        assert errors(c), mutate


# ---------------------------------------------------------------------------------------------
# certificates that must be rejected
# ---------------------------------------------------------------------------------------------

def _first_hinge_cert():
    cert = certificate_of("degenerate_min")
    assert cert["evidence"]["neurons"][0]["stationarity"]["hinges"]
    return cert


BROKEN = {
    # missing fields
    "missing fingerprint": lambda c: c.pop("fingerprint"),
    "missing evidence.loss": lambda c: c["evidence"].pop("loss"),
    "missing neuron G": lambda c: c["evidence"]["neurons"][0].pop("G"),
    "missing stationarity witness": lambda c: c["evidence"]["neurons"][0]["stationarity"].pop("patterns"),
    "missing problem.Y": lambda c: c["problem"].pop("Y"),
    # numbers as floats / ints instead of exact strings
    "float in X": lambda c: c["problem"]["X"][0].__setitem__(0, 1.0),
    "int in W": lambda c: c["point"]["W"][0].__setitem__(0, 1),
    "float loss": lambda c: c["evidence"]["loss"].__setitem__("value", 76.5),
    "decimal string loss": lambda c: c["evidence"]["loss"].__setitem__("value", "76.5"),
    "float gamma": lambda c: c["evidence"]["neurons"][0]["stationarity"]["hinges"][0].__setitem__("gamma", 5.0),
    "zero denominator": lambda c: c["evidence"]["neurons"][0]["G"].__setitem__(0, "1/0"),
    # unknown enum values
    "unknown verdict": lambda c: c.__setitem__("verdict", "probably_min"),
    "unknown loss convention": lambda c: c["problem"].__setitem__("loss", "sum"),
    "unknown stationarity method": lambda c: c["evidence"]["neurons"][0]["stationarity"].__setitem__("method", "lp"),
    "unknown escape method": lambda c: c["evidence"]["neurons"][0]["escape"].__setitem__("method", "guess"),
    "derivative convention": lambda c: c["evidence"].__setitem__("derivative_convention", "mse"),
    "other format": lambda c: c.__setitem__("format", "verifier-certificate/2"),
    # structure
    "unknown top-level field": lambda c: c.__setitem__("comment", "hi"),
    "unknown evidence field": lambda c: c["evidence"].__setitem__("hint", {}),
    "unknown hinge field": lambda c: c["evidence"]["neurons"][0]["stationarity"]["hinges"][0].__setitem__("x", "1"),
    "vector instead of matrix": lambda c: c["point"].__setitem__("W", ["0", "0"]),
    "empty matrix": lambda c: c["problem"].__setitem__("X", []),
    "bad fingerprint": lambda c: c.__setitem__("fingerprint", "ABC"),
    "negative neuron index": lambda c: c["evidence"]["neurons"][0].__setitem__("neuron", -1),
    "boolean neuron index": lambda c: c["evidence"]["neurons"][0].__setitem__("neuron", False),
    "pattern sign 0": lambda c: c["evidence"]["neurons"][0]["stationarity"]["patterns"][0].__setitem__("signs", [0]),
    "escape flag contradicts method": lambda c: c["evidence"]["neurons"][0]["escape"].__setitem__("escape", True),
    "cones witness with n_rays": lambda c: c["evidence"]["neurons"][0]["stationarity"].__setitem__("n_rays", 3),
    # the verdict's evidence
    "local_min with an escape path": lambda c: c["evidence"].__setitem__("escape_path", {}),
    "global_min verdict with neurons": lambda c: c.__setitem__("verdict", "global_min"),
    "saddle without a proof": lambda c: c.__setitem__("verdict", "saddle"),
    "not_stationary without descent": lambda c: c.__setitem__("verdict", "not_stationary"),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_broken_certificate_is_rejected_by_the_schema(what):
    cert = _first_hinge_cert()
    assert cert["verdict"] == "local_min"
    assert_valid(cert)
    broken = copy.deepcopy(cert)
    BROKEN[what](broken)
    assert errors(broken), f"the schema accepts a certificate with: {what}"


def test_broken_saddle_and_descent_evidence_is_rejected():
    saddle = certificate_of("vec_saddle")
    ns = certificate_of("kink_not_stationary")
    for cert, mutate in [
        (saddle, lambda c: c["evidence"]["escape_path"]["polynomial"].pop()),              # 6 coefficients
        (saddle, lambda c: c["evidence"]["escape_path"].__setitem__("t0", "0")),           # t0 must be > 0
        (saddle, lambda c: c["evidence"]["escape_path"].__setitem__("t_max", "-1")),
        (saddle, lambda c: c["evidence"].__setitem__("second_order", {})),                # two saddle proofs
        (ns, lambda c: c["evidence"]["not_stationary"].__setitem__("reason", "S3")),
        (ns, lambda c: c["evidence"]["not_stationary"].__setitem__("derivative", "1/2")),  # must be < 0
        (ns, lambda c: c["evidence"]["not_stationary"]["direction"].pop("dw")),
        (ns, lambda c: c["evidence"]["not_stationary"].__setitem__("step", 0.5)),
        (ns, lambda c: c["evidence"].__setitem__("neurons", [])),
    ]:
        assert_valid(cert)
        c = copy.deepcopy(cert)
        mutate(c)
        assert errors(c)


def test_validation_is_structural_only():
    """The schema fixes the structure; the checker decides validity: a well-formed certificate with a
    wrong number still matches the schema, and the checker rejects it."""
    from relucert.check import check_certificate
    cert = certificate_of("kink_min")
    cert["evidence"]["loss"]["value"] = "1/3"
    assert_valid(cert)
    assert not check_certificate(cert).ok


# ---------------------------------------------------------------------------------------------
# the suite-wide hook of tests/conftest.py
# ---------------------------------------------------------------------------------------------

def test_emitted_certificates_are_validated_in_process(schema_checked_certificates, monkeypatch):
    import relucert
    import relucert.decide.ball as ball_mod
    stats = schema_checked_certificates
    assert getattr(certify_mod.certify, "__schema_checked__", None) is not None
    assert getattr(ball_mod.ball_certificate, "__schema_checked__", None) is not None
    assert relucert.certify is certify_mod.certify and certify is certify_mod.certify   # by-name imports too
    n = sum(stats["by_format"].values())
    certificate_of("kink_min")
    assert sum(stats["by_format"].values()) == n + 1
    # a producer emitting a malformed certificate fails right away, saying where
    monkeypatch.setattr(certify_mod, "fingerprint", lambda pj, ptj: "not-a-sha256")
    with pytest.raises(AssertionError, match=r"\$\.fingerprint") as exc:
        certificate_of("kink_min")
    assert type(exc.value).__name__ == "SchemaViolation" and "certificate.schema.json" in str(exc.value)
    assert stats["violations"] and stats["violations"][-1] == str(exc.value)
    stats["violations"].pop()          # expected here: not a violation of the suite


# ---------------------------------------------------------------------------------------------
# the command line's certificate files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny_zero", "vec_inconclusive"])
def test_cli_certificate_file_validates(tmp_path, name):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(CASES[name][0]))
    out = tmp_path / "cert.json"
    r = subprocess.run([sys.executable, "-m", "relucert.cli", "certify", str(f), "--certificate", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    files = [out] + [p for p in [tmp_path / "cert.given.json"] if p.exists()]
    for p in files:
        with open(p) as fh:
            cert = json.load(fh)
        assert_valid(cert)
        assert require_valid(cert) == cert["verdict"]


# ---------------------------------------------------------------------------------------------
# the output bias c (docs/biases.md §8.1)
# ---------------------------------------------------------------------------------------------

def _with_c(X, Y, W, A, c):
    pb, pt = problem_point_from_dict({"activation": "relu", "X": X, "Y": Y, "W": W, "A": A, "c": c})
    return certify(pb, pt).certificate


def test_output_bias_certificates_validate_and_broken_ones_do_not():
    s0 = _with_c([[1], [-1]], [[1], [1]], [[1]], [[1]], [0])                        # CE1: (S0) fails
    so = _with_c([[1, 0], [0, 1]], [[2, 1], [2, -1]], [[1, 1]], [[2, 0]], [0, 0])    # CE2: a ray moving c
    s1 = _with_c([[1], [-1]], [[1], [1]], [[1]], [[2]], [0])                         # (S0) holds, G != 0
    assert s0["evidence"]["not_stationary"]["reason"] == "S0" and "dc" in so["evidence"]["second_order"]
    assert s1["evidence"]["not_stationary"]["reason"] == "S1"
    for cert in (s0, so, s1):
        assert_valid(cert)
        assert require_valid(cert) == cert["verdict"]
    for cert, mutate in [
        (s0, lambda c: c["point"].__setitem__("c", [])),                                        # empty c
        (s0, lambda c: c["point"].__setitem__("c", [0.5])),                                     # a float
        (s0, lambda c: c["point"].__setitem__("c", "0")),                                       # not a list
        (s0, lambda c: c["evidence"]["not_stationary"]["direction"].__setitem__("dw", ["0"])),  # S0 moves c only
        (s0, lambda c: c["evidence"]["not_stationary"]["direction"].__setitem__("neuron", 0)),
        (s0, lambda c: c["evidence"]["not_stationary"].__setitem__("t_max", "1")),            # S0: no t_max
        (s0, lambda c: c["evidence"]["not_stationary"].__setitem__("reason", "S1")),           # S1: a neuron
        (s1, lambda c: c["evidence"]["not_stationary"]["direction"].__setitem__("dc", ["1"])),  # S1 never moves c
        (s1, lambda c: c["evidence"]["not_stationary"].__setitem__("reason", "S0")),
        (so, lambda c: c["evidence"]["second_order"].__setitem__("dc", [])),
        (so, lambda c: c["evidence"]["second_order"]["dc"].__setitem__(0, -1)),
    ]:
        c = copy.deepcopy(cert)
        mutate(c)
        assert errors(c), mutate


def test_kink_second_order_certificates_validate_and_broken_ones_do_not():
    """The piece-wise second-order proof at kinks (docs/second_order_kinks.md) and a saddle found on a
    piece: both validate; structural breakage of the new evidence is rejected by the schema."""
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1, 0], [1, 0], [0, 1]],
                                      "Y": [[1, 0], [1, 0], [0, 1]], "W": [[1, 0]], "A": [[1, 0]]})
    cert = certify(pb, pt).certificate
    assert cert["verdict"] == "local_min" and "kink_second_order" in cert["evidence"]
    assert_valid(cert)
    assert require_valid(cert) == "local_min"
    for mutate in [
        lambda c: c["evidence"]["kink_second_order"].pop("frozen"),
        lambda c: c["evidence"]["kink_second_order"]["pieces"][0].update(signs=[0]),
        lambda c: c["evidence"]["kink_second_order"]["pieces"][0].update(mu=["-1"]),
        lambda c: c["evidence"]["kink_second_order"]["pieces"][0].update(extra=1),
        lambda c: c["evidence"]["kink_second_order"]["groups"][0].update(data=[]),
        lambda c: c.update(verdict="saddle"),
    ]:
        c = copy.deepcopy(cert)
        mutate(c)
        assert errors(c), mutate
