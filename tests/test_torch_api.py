"""The Python API for live PyTorch models (relucert/torch.py): ``from_torch`` reads a model exactly (the
same Problem and Point as the file loader), ``OnlinePlateaus`` is ``detect_plateaus`` one step at a
time, ``Monitor`` certifies plateaus as a training loop runs; notebook / LaTeX rendering
(relucert/tools/render.py) and the CLI's --latex flags; examples/torch runs."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

torch.set_num_threads(1)      # tiny models: threads only contend (and runs stay reproducible)

import relucert  # noqa: E402
from flint import fmpq  # noqa: E402
from relucert.cli import main  # noqa: E402
from relucert.core.problem import as_problem_point  # noqa: E402
from relucert.errors import InputError  # noqa: E402
from relucert.io import load_torch_info  # noqa: E402
from relucert.tools import render  # noqa: E402
from relucert.tools.screen import PlateauOptions, PlateauRow, _representative, detect_plateaus  # noqa: E402
from relucert.torch import Monitor, OnlinePlateaus, from_torch, from_torch_info  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERDICTS = ("NOT_STATIONARY", "GLOBAL_MIN", "LOCAL_MIN", "SADDLE", "INCONCLUSIVE")


def q(v) -> fmpq:
    v = Fraction(v)
    return fmpq(v.numerator, v.denominator)


def exact(t) -> np.ndarray:
    """A tensor's entries as exact fmpq (float64 holds every float32 value)."""
    return np.vectorize(q, otypes=[object])(t.detach().double().numpy())


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and all(x == y for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))


def data(n=6, d=2, k=1, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, k, generator=g, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# from_torch
# ---------------------------------------------------------------------------------------------

def test_sequential_with_default_biases_is_read_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    X, Y = data()
    pb, pt, info = from_torch_info(net, X, Y)
    # the hidden bias is W's last column and X's constant-1 column; the output bias is c
    assert pb.d == 3 and same(pb.X[:, :2], exact(X)) and all(v == 1 for v in pb.X[:, 2].tolist())
    assert same(pt.W[:, :2], exact(net[0].weight)) and same(pt.W[:, 2], exact(net[0].bias))
    assert same(pt.A, exact(net[2].weight).T) and same(pt.c, exact(net[2].bias))
    assert (info.input_weight, info.hidden_bias, info.output_weight, info.output_bias) == \
        ("0.weight", "0.bias", "2.weight", "2.bias")
    assert pb.loss == "mse" and pb.activation.name == "relu"
    # the exact loss is the model's own loss, up to float32 rounding
    from relucert.core.formulas import loss_half_mean
    exact_mse = float(loss_half_mean(pb, pt) * pb.loss_factor())
    assert exact_mse == pytest.approx(float(nn.functional.mse_loss(net(X), Y).detach()), rel=1e-5)


def test_sequential_without_biases_and_numpy_data_with_1d_targets():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)).double()
    X, Y = data(dtype=torch.float64)
    pb, pt = from_torch(net, X.numpy(), Y[:, 0].numpy(), loss="half_mean")
    assert (pb.n, pb.d, pb.k, pt.m) == (6, 2, 1, 3) and pt.c is None and pb.loss == "half_mean"
    assert same(pt.W, exact(net[0].weight)) and same(pt.A, exact(net[2].weight).T)
    pb2, pt2 = from_torch(net, X, Y, loss="half_mean")          # tensors, 2-D Y: the same problem
    assert same(pb.X, pb2.X) and same(pb.Y, pb2.Y) and same(pt.W, pt2.W) and same(pt.A, pt2.A)


def test_leaky_relu_slope_is_the_floats_exact_value():
    net = nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(0.1), nn.Linear(2, 1))
    pb, _ = from_torch(net, *data())
    assert pb.activation.alpha_plus == 1
    assert pb.activation.alpha_minus == fmpq(3602879701896397, 36028797018963968)   # the double 0.1
    assert pb.activation.alpha_minus != fmpq(1, 10)
    pb, _ = from_torch(nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(), nn.Linear(2, 1)), *data())
    assert pb.activation.alpha_minus == q(0.01)


@pytest.mark.parametrize("act", [nn.Tanh(), nn.GELU(), nn.Sigmoid()])
def test_non_relu_activation_is_refused_in_one_line(act):
    net = nn.Sequential(nn.Linear(2, 3), act, nn.Linear(3, 1))
    with pytest.raises(InputError) as e:
        from_torch(net, *data())
    msg = str(e.value)
    assert "\n" not in msg and f"module '1' is {type(act).__name__}" in msg and "not a ReLU-like" in msg


def test_other_architectures_are_refused_naming_what_was_found():
    X, Y = data()
    cases = [(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)),
              "found 3 nn.Linear layers"),
             (nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 1)), "'2' Dropout"),
             (nn.Sequential(nn.Linear(2, 3), nn.PReLU(), nn.Linear(3, 1)), "a learned slope"),
             (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)), "expected m x 2"),
             (nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 1)), "BatchNorm1d")]
    for net, what in cases:
        with pytest.raises(InputError, match=re.escape(what)):
            from_torch(net, X, Y)
    with pytest.raises(InputError, match="expected a torch.nn.Module"):
        from_torch({"0.weight": torch.zeros(3, 2)}, X, Y)


class Functional(nn.Module):
    """Two Linear layers registered output-first, the activation applied in forward()."""

    def __init__(self, d, m, k):
        super().__init__()
        self.out = nn.Linear(m, k)
        self.hidden = nn.Linear(d, m, bias=False)

    def forward(self, x):
        return self.out(nn.functional.relu(self.hidden(x)))


def test_custom_module_layers_found_by_shape_activation_named_by_the_caller():
    torch.manual_seed(2)
    net = Functional(2, 3, 1)
    X, Y = data()
    with pytest.raises(InputError, match="pass activation='relu'"):
        from_torch(net, X, Y)
    pb, pt, info = from_torch_info(net, X, Y, activation="relu")
    assert (info.input_weight, info.hidden_bias, info.output_weight, info.output_bias) == \
        ("hidden.weight", None, "out.weight", "out.bias")
    assert same(pt.W, exact(net.hidden.weight)) and same(pt.c, exact(net.out.bias))
    with pytest.raises(InputError, match="contradicts"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), X, Y, activation="abs")


def test_float32_model_equals_the_file_loader_on_the_same_files(tmp_path):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(0.25), nn.Linear(4, 2))     # float32, biases
    X, Y = data(n=7, k=2, seed=4)
    torch.save(net.state_dict(), tmp_path / "ckpt.pt")
    np.savez(tmp_path / "data.npz", X=X.numpy(), Y=Y.numpy(), activation="leaky_relu:0.25",
             loss_convention="mse")
    pb1, pt1 = from_torch(net, X, Y)
    pb2, pt2, _ = load_torch_info(str(tmp_path / "ckpt.pt"), str(tmp_path / "data.npz"))
    assert same(pb1.X, pb2.X) and same(pb1.Y, pb2.Y)
    assert pb1.activation == pb2.activation and pb1.loss == pb2.loss
    assert same(pt1.W, pt2.W) and same(pt1.A, pt2.A) and same(pt1.c, pt2.c)
    assert pt1.to_json() == pt2.to_json() and pb1.to_json() == pb2.to_json()


def test_import_relucert_does_not_import_torch():
    code = "import sys, relucert; relucert.from_torch; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# online plateau detection = the offline one
# ---------------------------------------------------------------------------------------------

def _online(loss, opts):
    det = OnlinePlateaus(len(loss), opts)
    out, when = [], []
    for t, v in enumerate(loss):
        got = det.push(v)
        out += got
        when += [t] * len(got)
    assert det.finish() == []           # after the last step nothing is left open
    return out, when


def _as_tuples(ps):
    return [(tuple(p), p.segments, p.spikes) for p in ps]


def test_online_detection_equals_offline_on_random_curves():
    """Cross-check against tools.screen.detect_plateaus (the offline detection, the oracle here) on
    seeded random loss curves: levels, noise, spikes, ties, every option range."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        T = int(rng.integers(3, 300))
        levels = np.exp(-np.cumsum(rng.exponential(1.0, size=5)))
        L = levels[np.searchsorted(np.sort(rng.integers(0, T, size=4)), np.arange(T))]
        L = L * (1 + rng.normal(0, 10 ** rng.uniform(-5, -2), T))
        for _ in range(int(rng.integers(0, 4))):
            a = int(rng.integers(0, T))
            L[a:a + int(rng.integers(1, 6))] *= 1 + rng.uniform(0, 1)
        if rng.random() < 0.2:
            L = np.round(L, 3)
        opts = PlateauOptions(float(10 ** rng.uniform(-4, -1)), float(rng.choice([0.0, 0.005, 0.05, rng.uniform(0, .2)])),
                              float(rng.choice([0.0, 0.015, rng.uniform(0, 0.3)])),
                              spike_frac=float(rng.choice([0.0, 0.02, rng.uniform(0, 0.2)])),
                              spike_tol=float(rng.choice([0.01, 0.5])))
        assert _as_tuples(_online(L, opts)[0]) == _as_tuples(detect_plateaus(np.arange(T), L, opts)), (T, opts)


def test_online_detection_emits_a_plateau_when_it_ends_not_at_the_end():
    T = 1000
    L = np.where(np.arange(T) < 300, 1.0, np.where(np.arange(T) < 400, 1.0 - (np.arange(T) - 300) / 200, 0.5))
    got, when = _online(L, PlateauOptions())
    assert [tuple(p) for p in got] == [(0, 299), (400, 999)] == [tuple(p) for p in detect_plateaus(np.arange(T), L)]
    # flat up to 295 (its window reaches step 300); known to have ended once a window (5 steps) and
    # spike_frac (2% of the run, 20 steps) have passed: at step 319
    assert when == [319, T - 1]
    with pytest.raises(InputError, match="steps=3"):
        det = OnlinePlateaus(3)
        for v in (1, 1, 1, 1):
            det.push(v)


# ---------------------------------------------------------------------------------------------
# Monitor
# ---------------------------------------------------------------------------------------------

def _training_run(keep=256, steps=500, stream=None, loss_given=True):
    """Small-initialised SGD: the loss sits on a plateau, drops, and settles (seeded)."""
    torch.manual_seed(0)
    X = torch.randn(20, 2, dtype=torch.float64)
    Y = torch.relu(X @ torch.tensor([[1.0], [-0.5]], dtype=torch.float64))[:, 0]
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e-2)
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    out = stream if stream is not None else io.StringIO()
    returned, sizes = [], []
    with Monitor(net, X, Y, steps=steps, keep=keep, stream=out) as mon:
        for t in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(X)[:, 0], Y)
            loss.backward()
            opt.step()
            returned += [(t, r) for r in mon.step(loss=loss if loss_given else None)]
            sizes.append(len(mon._kept))
    return mon, out, returned, sizes, (net, X, Y)


def test_monitor_certifies_the_offline_plateaus_as_they_end():
    mon, out, returned, sizes, _ = _training_run()
    T = 500
    offline = detect_plateaus(np.arange(T), mon.losses, mon.options)
    plateau_rows = [r for r in mon.rows if r.kind == "plateau"]
    assert len(offline) >= 1 and offline[0][0] < T // 4                  # the small-init plateau, early
    assert [(r.start, r.end, r.spikes) for r in plateau_rows] == [(p[0], p[1], p.spikes) for p in offline]
    reps = [_representative(np.arange(T, dtype=float), p[0], p[1], p.segments) for p in offline]
    assert [r.representative for r in plateau_rows] == reps == [r.certified for r in plateau_rows]
    # certified live, inside the loop, long before the run ended
    assert returned and returned[0][0] < T // 2 and returned[0][1] is plateau_rows[0]
    assert mon.rows[-1].kind == "final" and mon.rows[-1].certified == T - 1 and mon.closed
    for r in mon.rows:
        assert r.verdict.upper() in VERDICTS and r.report.verdict == r.verdict
        assert r.report.certificate["verdict"] == r.report.verdict
        assert relucert.check_certificate(r.report.certificate).ok
    # the live table: a header and one line per row, as table() gives it
    assert out.getvalue().strip() == mon.table() and len(mon.table().splitlines()) == len(mon.rows) + 1
    assert mon.table().splitlines()[0].split()[:2] == ["plateau", "steps"]
    # bounded memory: the window, not every step
    assert max(sizes) < 100


def test_monitor_bounded_keep_and_computed_losses():
    mon, out, _, sizes, (net, X, Y) = _training_run(keep=4, steps=300, loss_given=False)
    assert max(sizes) <= 4
    offline = detect_plateaus(np.arange(300), mon.losses, mon.options)
    rows = [r for r in mon.rows if r.kind == "plateau"]
    assert [(r.start, r.end) for r in rows] == [tuple(p) for p in offline] and rows
    assert all(r.start <= r.certified <= r.end for r in rows)
    # the computed loss is the model's mse at the call (last step: the final parameters)
    assert mon.losses[-1] == pytest.approx(float(nn.functional.mse_loss(net(X)[:, 0], Y).detach()), rel=1e-12)
    assert "| verdict | plateau |" in mon._repr_markdown_() and mon.latex().startswith("\\begin{tabular}")


def test_monitor_checkpoints_are_copies_not_views():
    """float64 weights without a hidden bias: .double().numpy() would share the parameter's memory."""
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)).double()
    X, Y = data(dtype=torch.float64)
    mon = Monitor(net, X, Y, steps=10, quiet=True)
    W, A, c = mon._snapshot()
    W0, A0 = W.copy(), A.copy()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert (W == W0).all() and (A == A0).all() and c is None
    assert (mon._snapshot()[0] == W0 + 1).all()


def test_monitor_quiet_and_misuse():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    X, Y = data()
    buf = io.StringIO()
    mon = Monitor(net, X, Y, steps=5, stream=buf, quiet=True)
    for _ in range(5):
        mon(1.0)
    with pytest.raises(InputError, match="steps=5"):
        mon(1.0)
    rows = mon.close()
    assert buf.getvalue() == "" and rows[-1].kind == "final" and mon.close() is rows
    with pytest.raises(InputError, match="after close"):
        mon(1.0)
    with pytest.raises(InputError, match="integer >= 3"):
        Monitor(net, X, Y, steps=2)


# ---------------------------------------------------------------------------------------------
# rendering (hand-checked strings)
# ---------------------------------------------------------------------------------------------

def _row():
    return PlateauRow(1, 0, 9, (0, 90), 5, 0.125, verdict="saddle", reading="as_given", escape_neurons=[0, 2],
                      grown=[2], grown_are_escape=True)


def test_plateau_rows_markdown_and_latex():
    assert render.plateau_markdown([_row()], "half_mean") == (
        "| verdict | plateau | steps | loss (half_mean) | reading | escape neurons | grew after | grown ⊆ escape |\n"
        "|:---|---:|:---|---:|:---|:---|:---|:---|\n"
        "| saddle | 1 | 0-90 | 0.125 | as_given | [0, 2] | [2] | yes |")
    assert render.plateau_latex([_row()], "half_mean", comments=["two\nlines"]) == (
        "% two lines\n"
        "\\begin{tabular}{lrlrllll}\n\\toprule\n"
        "verdict & plateau & steps & loss (half\\_mean) & reading & escape neurons & grew after & "
        "grown $\\subseteq$ escape \\\\\n\\midrule\n"
        "saddle & 1 & 0-90 & 0.125 & as\\_given & [0, 2] & [2] & yes \\\\\n"
        "\\bottomrule\n\\end{tabular}\n")
    assert render.latex_escape("a_b & 50% {x} #1 $") == "a\\_b \\& 50\\% \\{x\\} \\#1 \\$"
    assert render.markdown_table(["a", "b|c"], [["1", "x|y"]], right=(0,)) == \
        "| a | b\\|c |\n|---:|:---|\n| 1 | x\\|y |"


def test_result_and_report_render_verdict_first():
    pb, pt = as_problem_point([[1]], [[1]], [[0]], [[0]])       # the origin: a saddle, loss 1/2
    res = relucert.certify(pb, pt)
    md = res._repr_markdown_()
    assert md.splitlines()[:6] == [
        f"**SADDLE** (the point exactly as given): {render.markdown_escape(res.reason)}", "",
        "- loss (half_mean): 1/2", "- problem: n=1, d=1, k=1, m=1, activation relu", "- escape neurons: [0]", ""]
    assert md.splitlines()[6:8] == ["| neuron | status | kinks | S1 | S2 | escape | why |",
                                    "|---:|:---|:---|:---|:---|:---|:---|"]
    assert md.splitlines()[8].startswith("| 0 | zero | 0 | yes | yes | yes | ")
    tex = render.result_latex(res)
    assert tex.splitlines()[0] == f"% verdict: saddle (the point exactly as given): {res.reason}"
    assert "\\begin{tabular}{rlllllp{7cm}}" in tex and tex.count("\\\\") == 2
    rep = relucert.certify_checkpoint(pb, pt)
    assert rep._repr_markdown_().startswith("**SADDLE** for the given point: ")
    # long exact rationals are shortened in text
    pb, pt = as_problem_point([[1]], [[1]], [["1/3"]], [["1/7"]])
    assert "- loss (half_mean): 200/441" in relucert.certify(pb, pt)._repr_markdown_()
    pb, pt = as_problem_point([[1]], [[1]], [["1234567890123/9876543210987"]], [["1/7"]])
    assert "(exact, " in relucert.certify(pb, pt)._repr_markdown_().splitlines()[2]


# ---------------------------------------------------------------------------------------------
# CLI --latex
# ---------------------------------------------------------------------------------------------

def test_certify_latex(tmp_path, capsys):
    out = tmp_path / "neurons.tex"
    src = os.path.join(ROOT, "examples", "hand", "kink_min.json")
    assert main(["certify", src, "--latex", str(out)]) == 0
    assert f"LaTeX neuron table written to {out}" in capsys.readouterr().out
    tex = out.read_text().splitlines()
    m = len(json.load(open(src))["W"])
    assert tex[0].startswith("% relucert certify: local_min for the ")
    assert tex.count("\\toprule") == 1 and tex.count("\\bottomrule") == 1 and tex[-1] == "\\end{tabular}"
    body = tex[tex.index("\\midrule") + 1:tex.index("\\bottomrule")]
    assert [ln.split(" & ")[0] for ln in body] == [str(j) for j in range(m)]
    assert main(["certify", src, "--latex", str(tmp_path / "no" / "x.tex")]) == 2
    assert "folder" in capsys.readouterr().err


def test_screen_latex(tmp_path, capsys):
    T = 200
    t = np.arange(T)
    loss = np.where(t < 80, 0.45, np.where(t < 120, 0.45 - (t - 80) * (0.43 / 40), 0.02))
    s = np.sqrt(1 - np.sqrt(2 * loss))                     # X = Y = [[1]], w = a = s: loss (s^2 - 1)^2 / 2
    W = s[:, None, None] * np.ones((1, 1, 1))
    np.savez(tmp_path / "traj.npz", X=np.array([[1.0]]), Y=np.array([[1.0]]), W=W, A=W.copy(), step=t * 10,
             loss_convention=np.array("half_mean"))
    tex = tmp_path / "plateaus.tex"
    assert main(["screen", str(tmp_path / "traj.npz"), "--latex", str(tex), "--workers", "1", "--json"]) == 0
    plateaus = json.loads(capsys.readouterr().out)["plateaus"]
    lines = tex.read_text().splitlines()
    body = lines[lines.index("\\midrule") + 1:lines.index("\\bottomrule")]
    assert len(plateaus) == 2 and len(body) == 2
    for ln, p in zip(body, plateaus):
        assert ln.startswith(f"{p['verdict'].replace('_', chr(92) + '_')} & {p['index']} & "
                             f"{p['step_range'][0]}-{p['step_range'][1]} & ")
    assert lines[0].startswith("% relucert screen traj.npz: 200 checkpoints, 2 plateau(s)")
    assert main(["screen", str(tmp_path / "traj.npz"), "--latex", str(tex), "--no-certify"]) == 0
    assert "LaTeX plateau table written" in capsys.readouterr().out
    assert "0-790 & 0 \\\\" in tex.read_text() and "not certified" in tex.read_text()


# ---------------------------------------------------------------------------------------------
# examples/torch
# ---------------------------------------------------------------------------------------------

def test_examples_torch_script_runs(tmp_path, capsys, monkeypatch):
    """The script as a user runs it (``python train_and_certify.py OUT``), in this process: torch and its
    optimizers are imported once for the whole file (seconds on a loaded machine)."""
    import runpy
    script = os.path.join(ROOT, "examples", "torch", "train_and_certify.py")
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path)])
    runpy.run_path(script, run_name="__main__")
    out = capsys.readouterr().out
    verdict = out.splitlines()[1].split()[1]
    assert out.splitlines()[0] == "== answer ==" and verdict in VERDICTS
    assert "output bias c = [" in out                       # the report names the output bias
    checks = [ln for ln in out.splitlines() if ln.startswith("independent check of")]
    assert checks and all(": OK, proves" in ln for ln in checks)
    # the one-line CLI command of its docstring, on the files it saved: the same verdict, and a
    # certificate that 'relucert check' accepts
    cert = tmp_path / "cert.json"
    assert main(["certify", "--torch", str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "data.npz"),
                 "--certificate", str(cert)]) == 0
    cli_out = capsys.readouterr().out
    assert f"VERDICT: {verdict} " in cli_out and "output bias 2.bias read exactly" in cli_out
    assert main(["check", str(cert)]) == 0


def test_identity_and_flatten_modules_are_read_as_what_they_do():
    """nn.Flatten() in front (image-shaped data) and nn.Identity anywhere: the same problem and point as
    the plain Sequential on the flattened data; any other Flatten is refused in one line."""
    torch.manual_seed(4)
    core = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    wrapped = nn.Sequential(nn.Flatten(), core[0], nn.Identity(), core[1], core[2], nn.Identity())
    X = torch.randn(5, 2, 2)
    Y = torch.randn(5, 2)
    pb, pt = from_torch(wrapped, X, Y)
    pb0, pt0 = from_torch(core, X.reshape(5, 4), Y)
    assert same(pb.X, pb0.X) and same(pb.Y, pb0.Y) and same(pt.W, pt0.W) and same(pt.A, pt0.A)
    assert same(pt.c, pt0.c) and pb.d == 5          # 4 inputs + the folded hidden bias column
    # the certificate is about the model's own function: its loss is the model's loss
    from relucert.core.formulas import loss_half_mean
    exact_mse = float(loss_half_mean(pb, pt) * pb.loss_factor())
    assert exact_mse == pytest.approx(float(nn.functional.mse_loss(wrapped(X), Y).detach()), rel=1e-5)
    with pytest.raises(InputError, match=r"nn.Flatten\(start_dim=0") as e:
        from_torch(nn.Sequential(nn.Flatten(0), core), X, Y)
    assert "\n" not in str(e.value)
