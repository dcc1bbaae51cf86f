"""Data files for --torch / screen --data in every format the issue names (.json, .npz, .pt tensors,
.csv) and the --activation option for files that do not carry an activation (issue 14).

Expectations are hand-written: the exact rationals each format must give, the activation a spec
must mean, and the one-line errors for conflicting or broken input."""
from __future__ import annotations

import json
from fractions import Fraction as F

import numpy as np
import pytest
from flint import fmpq

from relucert.cli import main
from relucert.core.problem import Activation
from relucert.errors import InputError
from relucert.io import load_problem, load_torch_info


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def q(M):
    return [[F(int(v.p), int(v.q)) for v in row] for row in M.tolist()]


# ------------------------------------------------------------------ activation specs

@pytest.mark.parametrize("spec, ap, am", [
    ("relu", 1, 0), ("abs", 1, -1), ("leaky_relu:0.1", 1, F(1, 10)), ("1,0.01", 1, F(1, 100)),
    (" 2 , -1/3 ", 2, F(-1, 3)), ("LEAKY_RELU:1e-2", 1, F(1, 100))])
def test_activation_specs_are_exact(spec, ap, am):
    a = Activation.parse(spec)
    assert (a.alpha_plus, a.alpha_minus) == (fmpq(F(ap).numerator, F(ap).denominator),
                                            fmpq(F(am).numerator, F(am).denominator))


@pytest.mark.parametrize("spec", ["1,", "1,2,3", "x,0", "tanh"])
def test_bad_activation_specs_are_input_errors(spec):
    with pytest.raises(InputError):
        Activation.parse(spec)


# ------------------------------------------------------------------ CSV

def test_csv_is_read_exactly_with_y_columns_as_outputs(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("x0,x1,y\n0.1,2,-1/3\n1e-3, -4 ,0.5\n\n")
    pb = load_problem(str(f), "leaky_relu:0.1")
    assert (pb.n, pb.d, pb.k) == (2, 2, 1)
    assert q(pb.X) == [[F(1, 10), 2], [F(1, 1000), -4]] and q(pb.Y) == [[F(-1, 3)], [F(1, 2)]]
    assert pb.activation.alpha_minus == fmpq(1, 10) and "activation" not in pb.defaulted
    assert pb.loss == "half_mean" and "loss" in pb.defaulted
    # two outputs, any column order: y* columns are Y in order, the rest X in order
    g = tmp_path / "e.csv"
    g.write_text("y_a,x,y_b\n1,2,3\n4,5,6\n")
    pb = load_problem(str(g), "relu")
    assert q(pb.X) == [[2], [5]] and q(pb.Y) == [[1, 3], [4, 6]]


def test_csv_without_activation_defaults_and_says_so(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("x,y\n1,2\n")
    pb = load_problem(str(f))
    assert pb.activation == Activation.parse("relu") and "activation" in pb.defaulted


@pytest.mark.parametrize("text, needle", [
    ("x,y\n", "at least one data row"),
    ("x0,x1\n1,2\n", "output columns"),
    ("y0,y1\n1,2\n", "input columns"),
    ("x,y\n1,2,3\n", "row 2: 3 values"),
    ("x,y\n1,abc\n", "d.csv"),
])
def test_bad_csv_is_one_line_error(tmp_path, capsys, text, needle):
    f = tmp_path / "d.csv"
    f.write_text(text)
    with pytest.raises(InputError, match="d.csv") as e:
        load_problem(str(f), "relu")
    assert needle in str(e.value)
    # the same through the CLI: one line, no traceback
    torch_ = pytest.importorskip("torch")
    torch_.save(torch_.nn.Sequential(torch_.nn.Linear(1, 2), torch_.nn.ReLU(), torch_.nn.Linear(2, 1)).state_dict(),
                tmp_path / "ckpt.pt")
    one_line_error(capsys, main(["certify", "--torch", str(tmp_path / "ckpt.pt"), "--data", str(f),
                                 "--activation", "relu"]), "d.csv")


# ------------------------------------------------------------------ --activation against the file

def test_activation_option_conflicting_with_the_file_is_refused(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"X": [[1]], "Y": [[1]], "activation": "abs"}))
    assert load_problem(str(f), "abs").activation == Activation.parse("abs")      # agreeing: fine
    with pytest.raises(InputError, match="field 'activation'.*abs.*relu"):
        load_problem(str(f), "relu")
    g = tmp_path / "e.json"
    g.write_text(json.dumps({"X": [[1]], "Y": [[1]]}))                             # no activation: it is given
    pb = load_problem(str(g), "leaky_relu:0.25")
    assert pb.activation.alpha_minus == fmpq(1, 4) and "activation" not in pb.defaulted


# ------------------------------------------------------------------ .pt data and the CLI

torch = pytest.importorskip("torch")


def _model(d=2, m=3, k=1):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.LeakyReLU(0.25), torch.nn.Linear(m, k))


def test_pt_data_file_is_exact_and_matches_json(tmp_path):
    X = torch.tensor([[0.1, 2.0], [-1.5, 0.25], [3.0, -0.75]], dtype=torch.float32)
    Y = torch.tensor([[1.0], [0.5], [-2.0]], dtype=torch.float64)
    torch.save({"X": X, "Y": Y, "activation": "leaky_relu:0.25"}, tmp_path / "d.pt")
    pb = load_problem(str(tmp_path / "d.pt"))
    # float32 0.1 is 13421773 / 2^27 exactly, not 1/10
    assert q(pb.X)[0][0] == F(13421773, 2 ** 27) and q(pb.Y) == [[1], [F(1, 2)], [-2]]
    assert pb.activation.alpha_minus == fmpq(1, 4)
    torch.save((X, Y.ravel()), tmp_path / "t.pt")                                 # a tuple, 1-D Y
    pb2 = load_problem(str(tmp_path / "t.pt"), "leaky_relu:0.25")
    assert q(pb2.X) == q(pb.X) and q(pb2.Y) == q(pb.Y)


def test_bad_pt_data_files(tmp_path):
    torch.save({"X": torch.zeros(2, 1)}, tmp_path / "a.pt")
    with pytest.raises(InputError, match="a.pt.*X and Y"):
        load_problem(str(tmp_path / "a.pt"))
    torch.save({"X": [1, 2], "Y": torch.zeros(2)}, tmp_path / "b.pt")
    with pytest.raises(InputError, match="b.pt: field 'X': expected a tensor"):
        load_problem(str(tmp_path / "b.pt"))
    (tmp_path / "c.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="c.pt"):
        load_problem(str(tmp_path / "c.pt"))


def test_cli_certify_torch_with_csv_data_and_activation(tmp_path, capsys):
    net = _model()
    X = np.array([[0.5, -1.0], [1.0, 2.0], [-2.0, 0.25], [1.5, 1.5]])
    Y = np.array([[1.0], [-1.0], [0.5], [2.0]])
    torch.save(net.state_dict(), tmp_path / "ckpt.pt")
    csv = tmp_path / "d.csv"
    csv.write_text("x0,x1,y\n" + "".join(f"{float(a)!r},{float(b)!r},{float(y)!r}\n" for (a, b), (y,) in zip(X, Y)))
    torch.save({"X": torch.tensor(X), "Y": torch.tensor(Y)}, tmp_path / "d.pt")
    # the same network and data by .csv (decimal text of float64 reprs) and .pt (the floats themselves)
    p1, pt1, _ = load_torch_info(str(tmp_path / "ckpt.pt"), str(csv), activation="leaky_relu:0.25")
    p2, pt2, _ = load_torch_info(str(tmp_path / "ckpt.pt"), str(tmp_path / "d.pt"), activation="leaky_relu:0.25")
    assert p1.to_json() == p2.to_json() and pt1.to_json() == pt2.to_json()
    assert p1.activation.alpha_minus == fmpq(1, 4)
    cert = tmp_path / "cert.json"
    code = main(["certify", "--torch", str(tmp_path / "ckpt.pt"), "--data", str(csv), "--activation",
                 "leaky_relu:0.25", "--exact-only", "--certificate", str(cert)])
    capsys.readouterr()
    assert code == 0
    c = json.loads(cert.read_text())
    assert c["problem"]["activation"] == {"alpha_plus": "1", "alpha_minus": "1/4"}
    assert main(["check", str(cert)]) == 0
    # --activation with a point file (which carries its activation) is refused, in one line
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"X": [[1]], "Y": [[1]], "W": [[1]], "A": [[1]]}))
    one_line_error(capsys, main(["certify", str(f), "--activation", "relu"]), "--activation")
    # a data file that says otherwise than --activation
    torch.save({"X": torch.tensor(X), "Y": torch.tensor(Y), "activation": "relu"}, tmp_path / "r.pt")
    one_line_error(capsys, main(["certify", "--torch", str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "r.pt"),
                                 "--activation", "abs"]), "r.pt", "field 'activation'")


def test_batch_all_passes_activation_to_every_torch_checkpoint(tmp_path, capsys):
    d = tmp_path / "ckpts"
    d.mkdir()
    for s in range(2):
        torch.manual_seed(s)
        torch.save(torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.LeakyReLU(0.25),
                                       torch.nn.Linear(2, 1)).state_dict(), d / f"c{s}.pt")
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,1\n-2,0.5\n3,-1\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    code = main(["certify", str(d), "--all", "--data", str(csv), "--activation", "leaky_relu:0.25", "--exact-only",
                 "--quiet", "--certificates", str(certs)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 2 and not any("error" in ln for ln in lines), lines
    for ln in lines:
        cert = json.loads(open(ln["certificate_file"]).read())
        assert cert["problem"]["activation"] == {"alpha_plus": "1", "alpha_minus": "1/4"}
    # without --data the option has nothing to apply to: refused, not ignored
    one_line_error(capsys, main(["certify", str(d), "--all", "--activation", "relu"]), "--activation")
