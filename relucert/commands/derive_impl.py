"""The body of ``relucert derive`` (imported only when the command runs: sympy takes ~0.8 s to import;
the parser is in derive_cmd)."""
from __future__ import annotations

import sys

import sympy as sp

from relucert.errors import InputError
from relucert.io import load
from relucert.tools.symbolic import SymbolicModel
from relucert.core.problem import fmpq_to_float

FULL_LOSS_PARAMS = 12  # print the expanded loss polynomial when there are at most this many parameters


class _Out:
    def __init__(self, latex: bool, digits: int | None, names: dict):
        self.latex = latex
        self.digits = digits
        self.names = names
        enc = (getattr(sys.stdout, "encoding", None) or "").lower()
        self.unicode = "utf" in enc

    def num(self, e):
        e = sp.sympify(e) if not isinstance(e, (list, sp.MatrixBase)) else e
        if self.digits is None:
            return e
        if isinstance(e, list):
            return [self.num(v) for v in e]
        return sp.N(e, self.digits)

    def text(self, s: str) -> None:
        print(("% " + s) if self.latex else s)

    def formula(self, label: str, label_tex: str, expr, indent: str = "  ") -> None:
        if isinstance(expr, list):
            expr = sp.Matrix(expr) if len(expr) != 1 else expr[0]
        expr = self.num(expr)
        if self.latex:
            print(f"$$ {label_tex} = {sp.latex(expr, symbol_names=self.names)} $$")
            return
        body = sp.pretty(expr, use_unicode=self.unicode, num_columns=110)
        if "\n" not in body:
            print(f"{indent}{label} = {body}")
        else:
            print(f"{indent}{label} =")
            for line in body.splitlines():
                print(f"{indent}    {line}")


def _vec(v, digits: int | None = None) -> str:
    if digits is None:
        return "(" + ", ".join(str(x) for x in v) + ")"
    return "(" + ", ".join(f"{fmpq_to_float(x):.{digits}g}" for x in v) + ")"


def _long_numbers(problem, point) -> bool:
    arrs = (problem.X, problem.Y, point.W, point.A)
    return any(len(str(v)) > 24 for a in arrs for v in a.ravel().tolist())


def _status(problem, point, pattern, j) -> str:
    if all(v == 0 for v in point.W[j]):
        return "zero" if all(v == 0 for v in point.A[j]) else "zero-input"
    if problem.activation.alpha_minus == 0 and all(pattern.signs[i][j] < 0 for i in range(problem.n)):
        return "dead"
    return "alive"


def run(args, small_m: int) -> int:
    """``relucert derive``; ``small_m`` (derive_cmd.SMALL_M): up to this width every neuron is printed."""
    problem, point = load(args.file, args.index)
    model = SymbolicModel.from_problem(problem, point)
    pat = model.pattern
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    if args.neuron:
        for j in args.neuron:
            if not 0 <= j < m:
                raise InputError(f"--neuron {j} out of range: the point has {m} neurons (0..{m - 1})")
        shown = list(dict.fromkeys(args.neuron))
    elif m <= small_m:
        shown = list(range(m))
    else:
        shown = [j for j in range(m) if pat.kinks(j)]
    out = _Out(args.latex, args.digits, model.latex_names())
    act = problem.activation
    out.text(f"problem: n={n} data points, d={d} inputs, k={k} outputs, m={m} neurons; activation "
             f"{act.name} (alpha+ = {act.alpha_plus}, alpha- = {act.alpha_minus})")
    has_c = point.c is not None
    out.text("loss: L = (1/2n) sum_i ||e_i||^2 (half_mean), e_i = f(x_i) - y_i, f(x) = sum_j a_j sigma(w_j . x)"
             + (" + c (output bias c, a free parameter)" if has_c else "")
             + ("" if problem.loss == "half_mean" else f"; the file's convention '{problem.loss}' is "
                f"{problem.loss_factor()} x this"))
    out.text("activation pattern: sign of z_ij = w_j . x_i over the data points (0 = kink, z_ij = 0)")
    if m <= 12 or args.neuron:
        for j in range(m) if m <= 12 else shown:
            K = pat.kinks(j)
            out.text(f"  neuron {j}: {pat.row(j)}" + (f"   kinks at data points {K}" if K else ""))
    if args.digits is None and _long_numbers(problem, point):
        out.text("numbers are exact rationals (long ones come from floats); add --float for decimals")
    kink_neurons = [j for j in range(m) if pat.kinks(j)]
    out.text(f"neurons with kinks: {kink_neurons if kink_neurons else 'none'}")
    if kink_neurons:
        out.text("on a kink the pattern polynomials below use the branch alpha- (directions with "
                 "x_i . Delta w_j <= 0); L'(theta; Delta), D_j and phi_j are exact for every direction")

    if has_c:
        out.text(f"output bias: c = {_vec(point.c, out.digits)}")
    L_val = model.at_point(model.loss())
    out.formula("L (at the point)", r"L(\theta)", L_val, indent="")
    args_txt, args_tex = ("W, A, c", "W, A, c") if has_c else ("W, A", "W, A")
    if len(model.params()) <= FULL_LOSS_PARAMS:
        if kink_neurons:
            out.formula(f"L({args_txt}) near the point", rf"L({args_tex})", sp.expand(model.local_loss()), indent="")
        else:
            out.formula(f"L({args_txt}) on this pattern", rf"L({args_tex})", sp.expand(model.loss()), indent="")
    res = [model.residual_at_point(i) for i in range(n)]
    if n * k <= 40:
        out.formula("residuals e_i (rows)", r"e", sp.Matrix(res), indent="")
    if has_c:
        cs = model.bias_params()
        out.text("dL/dc = (1/n) sum_i e_i, the mean residual over every data point (docs/biases.md §3.2); "
                 "stationarity needs it to vanish: (S0) sum_i e_i = 0")
        out.formula("dL/dc on this pattern" + (" (branch alpha- on the kinks)" if kink_neurons else ""),
                    r"\partial L/\partial c", [sp.expand(g) for g in model.gradient(cs)], indent="")
        eb = model.mean_residual(at_point=True)
        out.formula("dL/dc (at the point)", r"\partial L/\partial c(\theta)", eb, indent="")
        out.text("(S0) " + ("holds: sum_i e_i = 0" if all(v == 0 for v in eb) else
                            "fails: sum_i e_i != 0, so the point is not stationary (Delta c = -e_bar descends)"))
        if len(model.params()) <= FULL_LOSS_PARAMS:
            out.formula("Hessian of L in (W, A, c) at the point (parameters " + ", ".join(map(str, model.params()))
                        + ")" + (" (branch alpha- on the kinks)" if kink_neurons else ""),
                        r"\nabla^2_{(W, A, c)} L", model.at_point(model.hessian()), indent="")
    if m <= small_m:
        out.formula("L'(theta; Delta)", r"L'(\theta;\Delta)", model.directional_derivative(at_point=True, form="max"), indent="")

    if m > small_m and not args.neuron:
        out.text("summary per neuron (at the point; G_j = dL/da_j, grad_w = dL/dw_j on the pattern):")
        grads = {}
        for j in range(m):
            v = model.view(j)
            g = v.at_point(v.gradient())
            grads[j] = g
            gw, ga = g[:d], g[d:]
            K = pat.kinks(j)
            st = _status(problem, point, pat, j)
            out.text(f"  {j:3d} {st:10s} kinks {len(K):2d}  |G_j| = {_fmt_norm(ga)}  |grad_w| = {_fmt_norm(gw)}")
        if not shown:
            out.text("no neuron has a kink; use --neuron J for the formulas of neuron J")

    for j in shown:
        _neuron_block(out, model, problem, point, j)
    return 0


def _fmt_norm(v) -> str:
    s = sum((x * x for x in v), sp.Integer(0))
    if s == 0:
        return "0"
    return f"{float(sp.sqrt(s)):.3e}"


def _neuron_block(out: _Out, model: SymbolicModel, problem, point, j: int) -> None:
    d, k = problem.d, problem.k
    v = model.view(j)
    K = model.pattern.kinks(j)
    out.text("")
    out.text(f"neuron {j}: w_{j} = {_vec(point.W[j], out.digits)}, a_{j} = {_vec(point.A[j], out.digits)}, "
             f"status {_status(problem, point, model.pattern, j)}, pattern {model.pattern.row(j)}"
             + (f", kinks at data points {K}" if K else ", no kinks (L is differentiable in w_" + str(j) + ")"))
    wj = [v.W[j, q] for q in range(d)]
    aj = [v.A[j, c] for c in range(k)]
    out.formula(f"L(w_{j}, a_{j}) near the point (others fixed)", rf"L(w_{{{j}}}, a_{{{j}}})",
                sp.expand(v.local_loss()))
    G = v.G(j)
    Gl = v.G(j, local=True) if K else G
    out.formula(f"G_{j} = dL/da_{j}" + (" near the point" if K else ""),
                rf"G_{{{j}}} = \partial L/\partial a_{{{j}}}", [sp.expand(g) for g in Gl])
    out.formula(f"G_{j} (at the point)", rf"G_{{{j}}}(\theta)", [v.at_point(g) for g in G])
    gw = v.gradient(wj)
    br = " (branch alpha- on the kinks)" if K else ""
    out.formula(f"dL/dw_{j} on the pattern" + br, rf"\nabla_{{w_{{{j}}}}} L", [sp.expand(g) for g in gw])
    out.formula(f"dL/dw_{j} (at the point)", rf"\nabla_{{w_{{{j}}}}} L(\theta)", [v.at_point(g) for g in gw])
    out.formula(f"D_{j}(r)", rf"D_{{{j}}}(r)", v.D(j, at_point=True, form="max"))
    out.formula(f"phi_{j}(r) = a_{j} . D_{j}(r)", rf"\varphi_{{{j}}}(r)", v.phi(j, at_point=True, form="max"))
    H = v.at_point(v.hessian(wj + aj))
    out.formula(f"Hessian of L in (w_{j}, a_{j}) at the point" + (" (branch alpha- on the kinks)" if K else ""),
                rf"\nabla^2_{{(w_{{{j}}}, a_{{{j}}})}} L", H)
