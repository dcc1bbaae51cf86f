"""Readable text reports."""
from __future__ import annotations

from flint import fmpq

from relucert.core.problem import fmpq_to_float


def short_number(v, keep: int = 24) -> str:
    """An exact number for reading: whole when short, else ~float and its size, e.g.
    "0.0278859611 (exact, 212 digits)".  Whole values stay in JSON and certificates."""
    t = str(v)
    if len(t) <= keep:
        return t
    num, _, den = t.partition("/")
    digits = len(num.lstrip("-")) + len(den)
    try:
        approx = f"{fmpq_to_float(fmpq(int(num), int(den or 1))):.10g}"
    except (ValueError, ZeroDivisionError):
        approx = t[:12] + "..."
    return f"{approx} (exact, {digits} digits)"


def short_vector(vs, limit: int = 6) -> str:
    items = [short_number(v, 16) for v in list(vs)[:limit]]
    more = f", ... {len(vs) - limit} more" if len(vs) > limit else ""
    return "[" + ", ".join(items) + more + "]"


def _fmt_kinks(k: list, limit: int = 8) -> str:
    if not k:
        return "-"
    s = ",".join(str(i) for i in k[:limit])
    return s + (f",+{len(k) - limit}" if len(k) > limit else "")


def _yn(v) -> str:
    return {True: "yes", False: "no", None: "?"}[v]


def text_report(res, max_neurons: int = 60) -> str:
    pb, pt = res.problem, res.point
    lines = [
        f"verdict: {res.verdict.upper()}",
        f"  {res.reason}",
        f"loss ({pb.loss}, exact rational): {res.loss}" if len(str(res.loss)) <= 24 else
        f"loss ({pb.loss}): {short_number(res.loss)}",
        f"problem: n={pb.n} d={pb.d} k={pb.k} m={pt.m} activation={pb.activation.name}",
        *([f"output bias c = {short_vector(pt.c.tolist())} (a free parameter: (S0) sum_i e_i = 0 is required)"]
          if pt.c is not None else []),
        *([pb.defaults_note()] if pb.defaults_note() else []),
        f"escape neurons (0-based): {res.escape_neurons if res.escape_neurons else 'none'}",
        "",
        f"{'neuron':>6} {'status':<11} {'kinks':<16} {'S1':<4} {'S2':<4} {'escape':<6} why",
    ]
    shown = res.neurons if len(res.neurons) <= max_neurons else \
        [n for n in res.neurons if n.kinks or n.escape or n.s2 is not True or n.status != "alive"][:max_neurons]
    for n in shown:
        lines.append(f"{n.j:>6} {n.status:<11} {_fmt_kinks(n.kinks):<16} {_yn(n.s1):<4} {_yn(n.s2):<4} "
                     f"{_yn(n.escape):<6} {n.why}")
    if len(shown) < len(res.neurons):
        lines.append(f"  ({len(res.neurons) - len(shown)} plain alive neurons without kinks not shown)")
    ev = res.certificate.get("evidence", {})
    if "not_stationary" in ev:
        ns = ev["not_stationary"]
        where = (f"the output bias, dc = -mean residual = {short_vector(ns['direction']['dc'])}"
                 if ns["reason"] == "S0" else f"neuron {ns['direction']['neuron']}")
        lines += ["", f"descent direction on {where}: "
                      f"L'(theta;Delta) = {short_number(ns['derivative'])} (half_mean)",
                  f"  loss at step t = {short_number(ns['step'])}: {short_number(ns['loss_at_step'])} ({pb.loss})"]
    if "escape_path" in ev:
        ep = ev["escape_path"]
        lines += ["", f"escape path on neuron {ep['neuron']}: w_j + t r, a_j = -t^2 D with r = {short_vector(ep['r'])}, "
                      f"D = {short_vector(ep['D'])}",
                  "  L(t) - L = " + " + ".join(f"({short_number(c, 16)}) t^{i}" for i, c in enumerate(ep["polynomial"])
                                               if c != "0") + " (half_mean)",
                  f"  valid for 0 < t < {short_number(ep['t_max'] or 'infinity')}; at t0 = {short_number(ep['t0'])} "
                  f"the loss is {short_number(ep['loss_at_t0'])} ({pb.loss})"]
    if "second_order" in ev:
        so = ev["second_order"]
        moved = [j for j in range(len(so["dW"])) if any(v != "0" for v in so["dW"][j] + so["dA"][j])]
        lines += ["", f"second-order descent ray ({so['how']}): theta + t Delta, Delta moves neurons {moved}",
                  *[f"  neuron {j}: dw = {short_vector(so['dW'][j])}, da = {short_vector(so['dA'][j])}"
                    for j in moved[:6]],
                  *([f"  output bias: dc = {short_vector(so['dc'])}"] if "dc" in so else []),
                  "  L(t) - L = " + " + ".join(f"({short_number(c, 16)}) t^{i}" for i, c in enumerate(so["polynomial"])
                                               if c != "0") + " (half_mean; L'(theta;Delta) = 0)",
                  f"  valid for 0 < t < {short_number(so['t_max'] or 'infinity')}; at t0 = {short_number(so['t0'])} "
                  f"the loss is {short_number(so['loss_at_t0'])} ({pb.loss})"]
    lines.append(f"\n(exact analysis in {res.seconds:.3f} s; exact values in full in --json and the certificate)")
    return "\n".join(lines)
