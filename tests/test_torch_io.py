"""Loaders for real PyTorch models (relucert/io.py): every tensor is used or the checkpoint is refused,
a hidden bias is folded exactly into a constant-1 input column, an output bias becomes the point's output
bias c exactly (readers that do not carry c refuse it: never dropped), the usual checkpoint containers and
safetensors load, and every float dtype is converted exactly."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flint import fmpq  # noqa: E402

from relucert.cli import main  # noqa: E402
from relucert.errors import InputError  # noqa: E402
from relucert.io import load_torch, load_torch_info, map_state_dict, read_checkpoint  # noqa: E402
from relucert.tools.screen import load_trajectory  # noqa: E402

CLI = [sys.executable, "-m", "relucert.cli"]
HANG = 300        # a hang detector for the few subprocess runs, not a speed assertion


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def F(v) -> Fraction:
    """Exact value of a Python float / int / Fraction."""
    return Fraction(v)


def relu(z):
    return z if z > 0 else 0 * z


def exact(t) -> list:
    """The exact values of a tensor's entries (float64 holds every float16/bfloat16/float32 value)."""
    return np.vectorize(F, otypes=[object])(t.detach().double().numpy())


def q(v) -> fmpq:
    v = Fraction(v)
    return fmpq(v.numerator, v.denominator)


def mlp(W, b, A, c=None, dtype=torch.float32):
    """nn.Sequential(Linear(d, m), ReLU(), Linear(m, k)) with the given weights (m x d, m, m x k, k)."""
    W, A = np.asarray(W, dtype=float), np.asarray(A, dtype=float)
    m, d = W.shape
    k = A.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, m, bias=b is not None), torch.nn.ReLU(),
                              torch.nn.Linear(m, k, bias=c is not None)).to(dtype)
    with torch.no_grad():
        net[0].weight[:] = torch.tensor(W, dtype=dtype)
        if b is not None:
            net[0].bias[:] = torch.tensor(np.asarray(b, dtype=float), dtype=dtype)
        net[2].weight[:] = torch.tensor(A.T, dtype=dtype)
        if c is not None:
            net[2].bias[:] = torch.tensor(np.asarray(c, dtype=float), dtype=dtype)
    return net


def write_data(path, X, Y, activation="relu"):
    path.write_text(json.dumps({"activation": activation, "X": [[str(F(v)) for v in r] for r in X],
                                "Y": [[str(F(v)) for v in r] for r in Y]}))
    return str(path)


def write_folded(path, net, X, Y, activation="relu"):
    """The hand-folded JSON problem: X with a ones column, W = (weight | bias), A = weight^T, exact."""
    Wt, bt, At = exact(net[0].weight), exact(net[0].bias), exact(net[2].weight)
    obj = {"activation": activation,
           "X": [[str(F(v)) for v in r] + ["1"] for r in X], "Y": [[str(F(v)) for v in r] for r in Y],
           "W": [[str(v) for v in Wt[j]] + [str(bt[j])] for j in range(Wt.shape[0])],
           "A": [[str(v) for v in At[:, j]] for j in range(Wt.shape[0])]}
    path.write_text(json.dumps(obj))
    return str(path)


def net_outputs(net, X):
    """sum_j a_j relu(w_j . x + b_j), exactly, from the tensors' exact values."""
    Wt, bt, At = exact(net[0].weight), exact(net[0].bias), exact(net[2].weight)
    out = []
    for x in X:
        z = [sum((Wt[j, c] * F(x[c]) for c in range(len(x))), bt[j]) for j in range(Wt.shape[0])]
        out.append([sum((At[o, j] * relu(z[j]) for j in range(len(z))), Fraction(0)) for o in range(At.shape[0])])
    return out


def folded_outputs(pb, pt):
    """The folded bias-free network's outputs on the problem's X, in exact fmpq arithmetic."""
    n, m, k = pb.n, pt.m, pb.k
    out = []
    for i in range(n):
        z = [sum((pt.W[j, c] * pb.X[i, c] for c in range(pb.d)), fmpq(0)) for j in range(m)]
        out.append([sum((pt.A[j, o] * (z[j] if z[j] > 0 else fmpq(0)) for j in range(m)), fmpq(0))
                    for o in range(k)])
    return out


def untimed(obj):
    """A JSON report (or text) without its timings."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not (k == "seconds" or k.endswith("_seconds"))}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)? s\b", "_ s", obj)
    return obj


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "\x1b[" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# the three stationary cases (d = 1, hidden biases; float32-representable weights)
X1 = [[0], [F(1) / 2], [2], [3]]
CASES = {
    # one neuron relu(x - 1), zero residual where active, residuals -1, +1 where dead: Theorem A
    "local_min": (X1, [[1], [-1], [2], [4]], [[1]], [-1], [[2]]),
    # the same plus a zero neuron (w, b, a) = 0: an escape neuron
    "saddle": (X1, [[1], [-1], [2], [4]], [[1], [0]], [-1, 0], [[2], [0]]),
    # interpolation: loss exactly 0
    "global_min": (X1, [[0], [0], [2], [4]], [[1]], [-1], [[2]]),
}


# ---------------------------------------------------------------------------------------------
# (a) hidden biases folded exactly: same outputs, same verdicts and certificates
# ---------------------------------------------------------------------------------------------

def test_hidden_bias_is_folded_exactly(tmp_path):
    torch.manual_seed(0)
    d, m, k, n = 3, 4, 2, 6
    net = torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, k, bias=False))
    rng = np.random.default_rng(1)
    X = np.round(rng.normal(size=(n, d)), 3).tolist()       # decimals: read exactly as 1/1000 multiples
    Y = np.round(rng.normal(size=(n, k)), 3).tolist()
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"activation": "relu", "X": [[str(v) for v in r] for r in X],
                                "Y": [[str(v) for v in r] for r in Y]}))
    pb, pt, info = load_torch_info(str(ck), str(data))
    # the mapping, as reported
    assert (info.input_weight, info.hidden_bias, info.output_weight) == ("0.weight", "0.bias", "2.weight")
    assert info.bias_column == d and (info.d, info.m, info.k) == (d, m, k) and info.container == "state_dict"
    assert info.to_json()["constant_column"] == d
    # X gets a constant-1 column at index d, W the bias as its last column, A the output weight transposed
    assert pb.d == d + 1 and all(pb.X[i, d] == 1 for i in range(n))
    assert all(pb.X[i, c] == q(Fraction(str(X[i][c]))) for i in range(n) for c in range(d))
    Wt, bt, At = exact(net[0].weight), exact(net[0].bias), exact(net[2].weight)
    assert all(pt.W[j, c] == q(Wt[j, c]) for j in range(m) for c in range(d))
    assert all(pt.W[j, d] == q(bt[j]) for j in range(m))
    assert all(pt.A[j, o] == q(At[o, j]) for j in range(m) for o in range(k))
    # the folded network's outputs equal sum_j a_j relu(w_j.x + b_j), exactly
    Xq = [[Fraction(str(v)) for v in r] for r in X]
    ref = net_outputs(net, Xq)
    got = folded_outputs(pb, pt)
    assert all(got[i][o] == q(ref[i][o]) for i in range(n) for o in range(k))
    # ... and the torch model's own outputs in float64 from the same float32 weights (and in float32)
    with torch.no_grad():
        t64 = net.double()(torch.tensor([[float(v) for v in r] for r in Xq], dtype=torch.float64)).numpy()
    ex = np.array([[float(v) for v in r] for r in ref])
    assert np.allclose(t64, ex, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_certificate_equal_the_hand_folded_problem(tmp_path, capsys, name):
    X, Y, W, b, A = CASES[name]
    net = mlp(W, b, A)
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    data = write_data(tmp_path / "data.json", X, Y)
    folded = write_folded(tmp_path / "folded.json", net, X, Y)
    c1, c2 = str(tmp_path / "c1.json"), str(tmp_path / "c2.json")
    code, out1, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--json", "--exact-only",
                          "--certificate", c1)
    assert code == 0, err
    code, out2, err = cli(capsys, "certify", folded, "--json", "--exact-only", "--certificate", c2)
    assert code == 0, err
    j1, j2 = json.loads(out1), json.loads(out2)
    mapping = j1.pop("torch_mapping")
    assert mapping["hidden_bias"] == "0.bias" and mapping["constant_column"] == 1
    assert j1["verdict"] == j2["verdict"] == name
    assert untimed(j1) == untimed(j2)                 # the same report, number for number
    assert json.loads(open(c1).read()) == json.loads(open(c2).read())   # the same certificate
    # the default (refining) mode agrees too, and the text report names the mapping
    code, text, err = cli(capsys, "certify", "--torch", str(ck), "--data", data)
    assert code == 0, err
    code, text2, err = cli(capsys, "certify", folded)
    assert code == 0, err
    assert f"VERDICT: {name.upper()}" in text.upper() and untimed(text).endswith(untimed(text2))
    assert "hidden bias 0.bias folded exactly" in text and "constant-1 column at index 1" in text


def test_bias_free_model_loads_as_before(tmp_path):
    net = mlp([[1.0, 0.0]], None, [[1.0]])
    ck = tmp_path / "m.pt"
    torch.save(net.state_dict(), ck)
    data = write_data(tmp_path / "data.json", [[1, 0], [0, 1]], [[1], [-1]])
    pb, pt, info = load_torch_info(str(ck), data)
    assert info.hidden_bias is None and info.bias_column is None and pb.d == 2
    assert pt.W.tolist() == [[1, 0]] and pt.A.tolist() == [[1]]
    assert load_torch(str(ck), data)[1].W.tolist() == pt.W.tolist()


# ---------------------------------------------------------------------------------------------
# (b) an output bias is read as c; (c) --keys never drops a tensor
# ---------------------------------------------------------------------------------------------

def test_output_bias_is_read_as_c_via_the_cli(tmp_path):
    net = mlp([[1.0], [0.5]], [-1.0, 0.25], [[2.0], [1.0]], c=[0.0])      # an output bias, exactly zero
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    cert = tmp_path / "cert.json"
    r = subprocess.run(CLI + ["certify", "--torch", str(ck), "--data", data, "--exact-only", "--json",
                              "--certificate", str(cert)], capture_output=True, text=True, timeout=HANG)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["torch_mapping"]["output_bias"] == "2.bias" and out["torch_mapping"]["c"] == ["0"]
    assert json.loads(cert.read_text())["point"]["c"] == ["0"]        # c = 0 is a free parameter, kept
    # without c the same weights are a Theorem-A minimum; with c free the residuals must sum to 0
    assert out["given"]["output_bias"] == ["0"]


def test_output_bias_with_keys(tmp_path, capsys):
    net = mlp([[1.0], [0.5]], [-1.0, 0.25], [[2.0], [1.0]], c=[0.75])
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    # keys leaving the hidden bias out: refused (never dropped)
    code, _, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--keys", "0.weight,2.weight")
    one_line_error(code, err, "ckpt.pt", "'0.bias'", "never dropped")
    code, out, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--keys", "0.weight,0.bias,2.weight",
                         "--json", "--exact-only")
    assert code == 0, err
    assert json.loads(out)["torch_mapping"]["c"] == ["3/4"]
    # a reader that does not carry c refuses it
    with pytest.raises(InputError, match=r"output bias '2.bias' \(1,\) refused by this reader.*never dropped"):
        map_state_dict(dict(net.state_dict()), 1, 1, "0.weight,0.bias,2.weight", "x.pt")
    # the output bias named as the hidden bias
    code, _, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--keys", "0.weight,2.bias,2.weight")
    one_line_error(code, err, "'2.bias' is the output layer's bias")


def test_keys_that_leave_a_bias_unused_are_refused(tmp_path, capsys):
    """Regression: --keys 0.weight,2.weight used to drop the biases and certify another network."""
    X, Y, W, b, A = CASES["local_min"]
    net = mlp(W, b, A)
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    data = write_data(tmp_path / "data.json", X, Y)
    code, out, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--keys", "0.weight,2.weight")
    line = one_line_error(code, err, "ckpt.pt", "'0.bias'", "never dropped", "--keys 0.weight,0.bias,2.weight")
    assert out == "" and "not used" in line
    code, out, err = cli(capsys, "certify", "--torch", str(ck), "--data", data, "--keys",
                         "0.weight,0.bias,2.weight", "--json", "--exact-only")
    assert code == 0 and json.loads(out)["verdict"] == "local_min", err


def test_every_tensor_must_be_used():
    X, Y, W, b, A = CASES["local_min"]
    sd = dict(mlp(W, b, A).state_dict())
    pb_d, pb_k = 1, 1
    extra = dict(sd, scale=torch.tensor([1.0]))
    for keys in (None, "0.weight,0.bias,2.weight"):
        with pytest.raises(InputError, match=r"not used.*'scale' \(1,\).*never dropped"):
            map_state_dict(extra, pb_d, pb_k, keys, "x.pt")
    # a third layer: not a one-hidden-layer network
    deep = dict(sd, **{"4.weight": torch.ones(1, 1)})
    with pytest.raises(InputError, match="found 3 weight matrices"):
        map_state_dict(deep, pb_d, pb_k, None, "x.pt")
    with pytest.raises(InputError, match="not used.*'4.weight'"):
        map_state_dict(deep, pb_d, pb_k, "0.weight,0.bias,2.weight", "x.pt")
    # a bias under another name than the layer's: refused, --keys folds it
    renamed = {"w1": sd["0.weight"], "b1": sd["0.bias"], "w2": sd["2.weight"]}
    with pytest.raises(InputError, match="not used.*'b1'"):
        map_state_dict(renamed, pb_d, pb_k, None, "x.pt")
    W1, A1, roles = map_state_dict(renamed, pb_d, pb_k, "w1,b1,w2", "x.pt")
    assert roles["hidden_bias"] == "b1" and W1.tolist() == [[1.0, -1.0]] and A1.tolist() == [[2.0]]


@pytest.mark.parametrize("keys,msg", [("a", "expected IN_W,OUT_W or IN_W,IN_B,OUT_W"),
                                      ("a,b,c,d", "expected IN_W,OUT_W or IN_W,IN_B,OUT_W"),
                                      ("0.weight,,2.weight", "expected IN_W,OUT_W"),
                                      ("0.weight,0.weight", "named twice"),
                                      ("nope,2.weight", "no key 'nope'"),
                                      ("2.weight,0.weight", "input weight '2.weight' has shape (1, 1)"),
                                      ("0.weight,2.weight,0.bias", "has shape (1,), expected")])
def test_bad_keys(keys, msg):
    X, Y, W, b, A = CASES["local_min"]
    sd = dict(mlp([[1.0, 2.0]], [-1.0], A).state_dict())
    with pytest.raises(InputError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        map_state_dict(sd, 2, 1, keys, "x.pt")


def test_layers_found_by_shape_and_name():
    # square shapes d = m = k: the Sequential indices tell the order, arbitrary names do not
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    A = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    for order in ((("0.weight", W), ("2.weight", A)), (("2.weight", A), ("0.weight", W))):
        Wn, An, roles = map_state_dict(dict(order), 2, 2)
        assert roles["input_weight"] == "0.weight" and Wn.tolist() == W.tolist() and An.tolist() == A.T.tolist()
    Wn, An, roles = map_state_dict({"fc2.weight": A, "fc1.weight": W, "fc1.bias": torch.zeros(2)}, 2, 2)
    assert roles["input_weight"] == "fc1.weight" and roles["hidden_bias"] == "fc1.bias" and Wn.shape == (2, 3)
    with pytest.raises(InputError, match="both 'inp.weight' and 'out.weight' fit"):
        map_state_dict({"inp.weight": W, "out.weight": A}, 2, 2)
    Wn, _, _ = map_state_dict({"inp.weight": W, "out.weight": A}, 2, 2, "inp.weight,out.weight")
    assert Wn.tolist() == W.tolist()
    # distinct shapes: the order in the file does not matter
    W3 = torch.ones(3, 2)
    Wn, An, roles = map_state_dict({"b.weight": torch.ones(1, 3), "a.weight": W3}, 2, 1)
    assert roles["input_weight"] == "a.weight" and Wn.shape == (3, 2) and An.shape == (3, 1)
    with pytest.raises(InputError, match="do not fit a network with 5 inputs"):
        map_state_dict({"b.weight": torch.ones(1, 3), "a.weight": W3}, 5, 1)


# ---------------------------------------------------------------------------------------------
# (d) checkpoint containers; (e) pickled modules; (f) safetensors
# ---------------------------------------------------------------------------------------------

def _wrapped(sd, opt_sd):
    pre = {"module." + k: v for k, v in sd.items()}
    return {
        "plain": (sd, "state_dict", "", ()),
        "model": ({"model": sd, "optimizer": opt_sd, "epoch": 3}, "checkpoint['model']", "", ("optimizer", "epoch")),
        "state_dict": ({"state_dict": sd, "global_step": 10}, "checkpoint['state_dict']", "", ("global_step",)),
        "model_state_dict": ({"model_state_dict": sd}, "checkpoint['model_state_dict']", "", ()),
        "net": ({"net": sd}, "checkpoint['net']", "", ()),
        "module": ({"module": sd}, "checkpoint['module']", "", ()),
        "dataparallel": (pre, "state_dict", "module.", ()),
        "lightning_dp": ({"state_dict": pre, "epoch": 1}, "checkpoint['state_dict']", "module.", ("epoch",)),
    }


@pytest.mark.parametrize("kind", ["plain", "model", "state_dict", "model_state_dict", "net", "module",
                                  "dataparallel", "lightning_dp"])
def test_checkpoint_containers(tmp_path, kind):
    X, Y, W, b, A = CASES["local_min"]
    net = mlp(W, b, A)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(2, 1)).sum().backward()
    opt.step()
    sd = net.state_dict()
    obj, container, prefix, ignored = _wrapped(sd, opt.state_dict())[kind]
    ck = tmp_path / f"{kind}.pth"
    torch.save(obj, ck)
    data = write_data(tmp_path / "data.json", X, Y)
    pb, pt, info = load_torch_info(str(ck), data)
    assert (info.container, info.prefix, info.ignored) == (container, prefix, ignored)
    assert info.hidden_bias == "0.bias" and pb.d == 2
    assert pt.W.tolist() == [[q(v) for v in list(exact(sd["0.weight"])[0]) + [exact(sd["0.bias"])[0]]]]
    keys = "module.0.weight,module.0.bias,module.2.weight" if prefix else "0.weight,0.bias,2.weight"
    _, pt2, _ = load_torch_info(str(ck), data, keys)
    assert pt2.W.tolist() == pt.W.tolist() and pt2.A.tolist() == pt.A.tolist()
    if prefix:
        assert load_torch_info(str(ck), data, "0.weight,0.bias,2.weight")[1].W.tolist() == pt.W.tolist()
    assert any("checkpoint entries beside the model" in ln for ln in info.lines()) == bool(ignored)


@pytest.mark.parametrize("obj,msg", [
    (lambda sd: {"model": sd, "state_dict": sd}, "several state_dicts ('state_dict', 'model')"),
    (lambda sd: dict(sd, epoch=3), "entries 'epoch' are not tensors"),
    (lambda sd: {"model": sd, "ema": sd["0.weight"]}, "tensors 'ema' beside checkpoint['model']"),
    (lambda sd: {"optimizer": {"lr": 0.1}, "epoch": 3}, "no state_dict found"),
    (lambda sd: {"model": {"inner": sd}}, "checkpoint['model'] entry 'inner' is a"),
    (lambda sd: list(sd.values()), "expected a state_dict"),
    (lambda sd: {}, "no state_dict found"),
])
def test_checkpoint_containers_refused(tmp_path, capsys, obj, msg):
    sd = mlp(*CASES["local_min"][2:]).state_dict()
    ck = tmp_path / "ck.pt"
    torch.save(obj(sd), ck)
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    code, _, err = cli(capsys, "certify", "--torch", str(ck), "--data", data)
    one_line_error(code, err, "ck.pt", msg)


def test_pickled_module_is_refused_in_one_line(tmp_path):
    net = mlp(*CASES["local_min"][2:])
    ck = tmp_path / "whole.pt"
    torch.save(net, ck)                                         # the whole module, pickled
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    r = subprocess.run(CLI + ["certify", "--torch", str(ck), "--data", data], capture_output=True, text=True,
                       timeout=HANG)
    line = one_line_error(r.returncode, r.stderr, "whole.pt", "pickled torch module", "weights_only=True",
                          "torch.save(model.state_dict(), PATH)")
    assert "torch.nn.modules.container.Sequential" in line and len(line) < 400


def test_damaged_checkpoints(tmp_path, capsys):
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    code, _, err = cli(capsys, "certify", "--torch", str(bad), "--data", data)
    one_line_error(code, err, "cannot load", "bad.pt", "weights_only=True")
    code, _, err = cli(capsys, "certify", "--torch", str(tmp_path / "missing.pt"), "--data", data)
    one_line_error(code, err, "no such file", "missing.pt")


def test_safetensors(tmp_path, capsys):
    st = pytest.importorskip("safetensors.torch")
    X, Y, W, b, A = CASES["saddle"]
    net = mlp(W, b, A)
    data = write_data(tmp_path / "data.json", X, Y)
    torch.save(net.state_dict(), tmp_path / "m.pt")
    st.save_file(net.state_dict(), str(tmp_path / "m.safetensors"))
    pb1, pt1, info1 = load_torch_info(str(tmp_path / "m.pt"), data)
    pb2, pt2, info2 = load_torch_info(str(tmp_path / "m.safetensors"), data)
    assert info2.container == "safetensors" and info2.hidden_bias == "0.bias"
    assert pt1.W.tolist() == pt2.W.tolist() and pt1.A.tolist() == pt2.A.tolist() and pb1.X.tolist() == pb2.X.tolist()
    code, out, err = cli(capsys, "certify", "--torch", str(tmp_path / "m.safetensors"), "--data", data, "--json",
                         "--exact-only")
    assert code == 0 and json.loads(out)["verdict"] == "saddle", err
    # an output bias in a safetensors file: read as c, exactly as from a .pt file
    st.save_file(mlp(W, b, A, c=[0.5]).state_dict(), str(tmp_path / "ob.safetensors"))
    _, pt4, info4 = load_torch_info(str(tmp_path / "ob.safetensors"), data)
    assert info4.output_bias == "2.bias" and pt4.c.tolist() == [fmpq(1, 2)]
    # bfloat16 in safetensors: exact
    sd16 = {k: v.to(torch.bfloat16) for k, v in mlp([[0.1], [-3.3]], [1e-3, 7.7], [[1.1], [-2.2]]).state_dict().items()}
    st.save_file(sd16, str(tmp_path / "bf.safetensors"))
    _, pt3, info3 = load_torch_info(str(tmp_path / "bf.safetensors"), data)
    assert info3.dtypes == ("bfloat16",)
    assert pt3.W[:, 0].tolist() == [q(v) for v in exact(sd16["0.weight"])[:, 0]]
    # damaged file
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    code, _, err = cli(capsys, "certify", "--torch", str(tmp_path / "bad.safetensors"), "--data", data)
    one_line_error(code, err, "cannot read", "bad.safetensors", "as a .safetensors file")


def test_safetensors_missing_gives_a_clean_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    data = write_data(tmp_path / "data.json", *CASES["local_min"][:2])
    monkeypatch.setitem(sys.modules, "safetensors", None)        # import safetensors -> ImportError
    code, _, err = cli(capsys, "certify", "--torch", str(tmp_path / "m.safetensors"), "--data", data)
    one_line_error(code, err, "m.safetensors", "needs the safetensors package", "pip install safetensors")


# ---------------------------------------------------------------------------------------------
# (g) every float dtype exactly; non-float dtypes refused
# ---------------------------------------------------------------------------------------------

def _from_bits_f16(bits: int) -> Fraction:
    s, e, f = bits >> 15 & 1, bits >> 10 & 0x1F, bits & 0x3FF
    v = Fraction(f, 2 ** 24) if e == 0 else Fraction(1024 + f) * Fraction(2) ** (e - 25)
    return -v if s else v


def _from_bits_bf16(bits: int) -> Fraction:
    s, e, f = bits >> 15 & 1, bits >> 7 & 0xFF, bits & 0x7F
    v = Fraction(f, 2 ** 133) if e == 0 else Fraction(128 + f) * Fraction(2) ** (e - 134)
    return -v if s else v


@pytest.mark.parametrize("dtype,decode", [(torch.float16, _from_bits_f16), (torch.bfloat16, _from_bits_bf16)])
def test_half_precision_weights_convert_exactly(tmp_path, dtype, decode):
    fi = torch.finfo(dtype)
    vals = [0.1, -1 / 3, 2.0 ** -20, 1e-3, fi.max, -fi.max, fi.tiny, fi.tiny / 4, fi.smallest_normal * 0.75,
            12345.678, -0.0]
    Wt = torch.tensor([[v] for v in vals], dtype=torch.float64).to(dtype)   # m x 1
    bt = torch.tensor(vals[::-1], dtype=torch.float64).to(dtype)
    At = torch.tensor([vals], dtype=torch.float64).to(dtype)                # 1 x m
    sd = {"0.weight": Wt, "0.bias": bt, "2.weight": At}
    ck = tmp_path / "h.pt"
    torch.save(sd, ck)
    data = write_data(tmp_path / "data.json", [[1], [2]], [[0], [1]])
    _, pt, info = load_torch_info(str(ck), data)
    assert info.dtypes == (str(dtype).replace("torch.", ""),)
    bits = lambda t: [b & 0xFFFF for b in t.reshape(-1).view(torch.int16).tolist()]   # noqa: E731
    for j in range(len(vals)):
        for got, t, idx in ((pt.W[j, 0], Wt, j), (pt.W[j, 1], bt, j), (pt.A[j, 0], At, j)):
            via_double = Fraction(t.reshape(-1)[idx].double().item())
            via_bits = decode(bits(t)[idx])
            assert via_double == via_bits and got == q(via_bits), (dtype, j, got, via_bits)
    # the subnormal survived (not flushed to zero)
    assert any(0 < abs(v) < Fraction(fi.tiny) for v in map(Fraction, exact(Wt)[:, 0]))


def test_float64_and_float32_weights_exact(tmp_path):
    sd = {"0.weight": torch.tensor([[0.1]], dtype=torch.float64), "2.weight": torch.tensor([[0.1]], dtype=torch.float32)}
    W, A, roles = map_state_dict(sd, 1, 1)
    assert Fraction(W[0, 0]) == Fraction(0.1) and Fraction(A[0, 0]) == Fraction(float(np.float32(0.1)))
    assert roles["dtypes"] == ("float64", "float32")


@pytest.mark.parametrize("dtype,kind", [(torch.int64, "integer"), (torch.int8, "integer"),
                                        (torch.complex64, "complex"), (torch.bool, "boolean")])
def test_non_float_weights_are_refused(dtype, kind):
    sd = {"0.weight": torch.ones(1, 1, dtype=dtype), "2.weight": torch.ones(1, 1)}
    with pytest.raises(InputError, match=f"'0.weight' has {kind} dtype {str(dtype).replace('torch.', '')}"):
        map_state_dict(sd, 1, 1, None, "x.pt")


def test_non_finite_weights_are_refused():
    sd = {"0.weight": torch.tensor([[float("nan")]]), "2.weight": torch.ones(1, 1)}
    with pytest.raises(InputError, match=r"'0.weight' contains NaN at index \[0, 0\]"):
        map_state_dict(sd, 1, 1, None, "x.pt")


# ---------------------------------------------------------------------------------------------
# (h) screening a directory of checkpoints with biases, consistently with certify
# ---------------------------------------------------------------------------------------------

def test_screen_directory_with_hidden_biases(tmp_path, capsys):
    X, Y, W, b, A = CASES["local_min"]
    data = write_data(tmp_path / "data.json", X, Y)
    d = tmp_path / "ckpts"
    d.mkdir()
    for step in range(6):
        scale = 1.0 + 0.5 ** (step + 3) if step < 2 else 1.0     # converging onto the local minimum
        torch.save(mlp([[w * scale for w in r] for r in W], b, A).state_dict(), d / f"ckpt_{step}.pt")
    traj = load_trajectory(str(d), data)
    assert traj.W.shape == (6, 1, 2) and traj.problem.d == 2 and all(traj.problem.X[i, 1] == 1 for i in range(4))
    assert "hidden bias 0.bias folded" in traj.source and "constant-1 column at index 1" in traj.source
    pb, pt, _ = load_torch_info(str(d / "ckpt_5.pt"), data)
    assert [[q(v) for v in r] for r in traj.W[-1].tolist()] == pt.W.tolist()
    assert traj.problem.X.tolist() == pb.X.tolist()
    code, out, err = cli(capsys, "screen", str(d), "--data", data, "--json", "--workers", "1")
    assert code == 0, err
    res = json.loads(out)
    assert res["final"]["loss"] == pytest.approx(0.25)       # half_mean of residuals (1, -1, 0, 0)
    verdicts = {p["verdict"] for p in res["plateaus"] if "verdict" in p}
    code, out, err = cli(capsys, "certify", "--torch", str(d / "ckpt_5.pt"), "--data", data, "--json")
    assert code == 0, err
    certified = json.loads(out)["verdict"]
    assert certified == "local_min" and verdicts == {certified}, (verdicts, certified)


def test_screen_directory_reads_c_and_refusals_match_certify(tmp_path, capsys):
    X, Y, W, b, A = CASES["local_min"]
    data = write_data(tmp_path / "data.json", X, Y)
    d = tmp_path / "ob"
    d.mkdir()
    for step in range(3):
        torch.save(mlp(W, b, A, c=[0.5]).state_dict(), d / f"ckpt_{step}.pt")
    # screen and certify both read the output bias exactly into c (never dropped)
    traj = load_trajectory(str(d), data)
    assert traj.c is not None and traj.c.shape == (3, 1) and (traj.c == 0.5).all()
    assert "2.bias -> c" in traj.source
    code, out, err = cli(capsys, "certify", "--torch", str(d / "ckpt_0.pt"), "--data", data, "--json",
                         "--exact-only")
    assert code == 0 and json.loads(out)["torch_mapping"]["output_bias"] == "2.bias", err
    code, out, err = cli(capsys, "screen", str(d), "--data", data, "--json", "--no-certify")
    assert code == 0, err
    # |dL/dc| = |mean residual| (half_mean), the same network at every checkpoint: by hand in float64
    x = np.asarray(X, dtype=float).reshape(len(X), -1)
    e = (2.0 * np.maximum(x @ np.array([1.0]) - 1.0, 0.0)) + 0.5 - np.asarray(Y, dtype=float).ravel()
    assert np.allclose(json.loads(out)["per_checkpoint"]["grad_c"], [abs(e.mean())] * 3, rtol=1e-12, atol=0)
    # --keys dropping the hidden bias: refused in screen as in certify
    d2 = tmp_path / "hb"
    d2.mkdir()
    torch.save(mlp(W, b, A).state_dict(), d2 / "ckpt_0.pt")
    with pytest.raises(InputError, match="'0.bias'.*never dropped"):
        load_trajectory(str(d2), data, "0.weight,2.weight")
    # checkpoints that map differently (one with a hidden bias, one without)
    torch.save(mlp(W, None, A).state_dict(), d2 / "ckpt_1.pt")
    with pytest.raises(InputError, match="checkpoints map differently"):
        load_trajectory(str(d2), data)


def test_read_checkpoint_reports_raw_tensors(tmp_path):
    sd = mlp(*CASES["local_min"][2:]).state_dict()
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "m.pt")
    raw, container, prefix, ignored = read_checkpoint(str(tmp_path / "m.pt"))
    assert sorted(raw) == ["0.bias", "0.weight", "2.weight"] and prefix == "module." and container == "state_dict"
