"""Readable text reports."""
from __future__ import annotations

from relucert.core.problem import fmpq_to_float


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
        f"loss ({pb.loss}, exact rational): {res.loss}" if len(str(res.loss)) < 80 else
        f"loss ({pb.loss}): {fmpq_to_float(res.loss):.17g} (exact rational, {len(str(res.loss))} chars)",
        f"problem: n={pb.n} d={pb.d} k={pb.k} m={pt.m} activation={pb.activation.name}",
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
        lines += ["", f"descent direction on neuron {ns['direction']['neuron']}: "
                      f"L'(theta;Delta) = {ns['derivative']} (half_mean, exact)",
                  f"  loss at step t = {ns['step']}: {ns['loss_at_step']} ({pb.loss}, exact)"]
    if "escape_path" in ev:
        ep = ev["escape_path"]
        lines += ["", f"escape path on neuron {ep['neuron']}: w_j + t r, a_j = -t^2 D with r = {ep['r']}, "
                      f"D = {ep['D']}",
                  f"  L(t) - L = " + " + ".join(f"({c}) t^{i}" for i, c in enumerate(ep["polynomial"]) if c != "0")
                  + " (half_mean, exact)",
                  f"  valid for 0 < t < {ep['t_max'] or 'infinity'}; at t0 = {ep['t0']} the loss is {ep['loss_at_t0']}"]
    if "second_order" in ev:
        so = ev["second_order"]
        moved = [j for j in range(len(so["dW"])) if any(v != "0" for v in so["dW"][j] + so["dA"][j])]
        lines += ["", f"second-order descent ray ({so['how']}): theta + t Delta, Delta moves neurons {moved}",
                  *[f"  neuron {j}: dw = {so['dW'][j]}, da = {so['dA'][j]}" for j in moved[:6]],
                  f"  L(t) - L = " + " + ".join(f"({c}) t^{i}" for i, c in enumerate(so["polynomial"]) if c != "0")
                  + " (half_mean, exact; L'(theta;Delta) = 0)",
                  f"  valid for 0 < t < {so['t_max'] or 'infinity'}; at t0 = {so['t0']} the loss is {so['loss_at_t0']}"]
    lines.append(f"\n(exact analysis in {res.seconds:.3f} s)")
    return "\n".join(lines)
