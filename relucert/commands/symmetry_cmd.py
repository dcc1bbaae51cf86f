"""relucert symmetry FILE | relucert symmetry --count --max-width M"""
from __future__ import annotations

import json
import sys

from relucert.errors import InputError
from relucert.io import load
from relucert.decide.report import short_number


def add_parser(sub) -> None:
    p = sub.add_parser(
        "symmetry", help="symmetries of a point (rescaling, permutation, shared directions, flat lines, Hessian) "
                         "or, with --count, the counting of symmetry-induced critical sets",
        description="Exact symmetry analysis (docs/theory.md §7, §9). With --count: brute-force enumeration of the "
                    "groupings that embed a width-r point into width m, versus T(r*, m) and G(r, m).")
    p.add_argument("file", nargs="?", help="problem+point file (.json or .npz) or a certificate (.json)")
    p.add_argument("--index", type=int, default=None, help="checkpoint index in a trajectory .npz")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-hessian", action="store_true", help="skip the exact Hessian")
    p.add_argument("--count", action="store_true", help="counting table instead of a point analysis")
    p.add_argument("--max-width", type=int, default=4, metavar="M", help="with --count: widths up to M (<= 6)")
    p.add_argument("--realise-up-to", type=int, default=4, metavar="R",
                   help="with --count: build and check a point of every grouping for m <= R (default %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from relucert.tools import symmetry as S
    if args.count:
        if args.file:
            raise InputError("--count takes no FILE")
        if not 1 <= args.max_width <= 6:
            raise InputError(f"--max-width must be between 1 and 6 (brute force), got {args.max_width}")
        tab = S.count_table(args.max_width, realise_up_to=args.realise_up_to)
        if args.json:
            json.dump(tab, sys.stdout, indent=1)
            print()
        else:
            print(count_text(tab))
        return 0
    if not args.file:
        raise InputError("symmetry needs a FILE (or --count --max-width M)")
    problem, point = load(args.file, args.index)
    an = S.analyze(problem, point, do_hessian=not args.no_hessian)
    if args.json:
        json.dump(an, sys.stdout, indent=1, default=str)
        print()
        return 0
    print(analysis_text(an))
    return 0


def _short(v, n=60):
    """Exact numbers shortened for reading (whole in --json)."""
    s = ", ".join(short_number(x) for x in v) if isinstance(v, list) else short_number(v)
    return s if len(s) <= 4 * n else s[:4 * n] + "..."


def analysis_text(an: dict) -> str:
    L = [f"symmetry analysis: m={an['m']} n={an['n']} d={an['d']} k={an['k']} activation={an['activation']}"]
    if "certify" in an:
        c = an["certify"]
        L.append(f"verdict: {c['verdict']} (stationary: {c['stationary']}); {c['reason']}")
    st = {}
    for nr in an["neurons"]:
        st.setdefault(nr["status"], []).append(nr["j"])
    L.append("neurons: " + "; ".join(f"{k} {v}" for k, v in st.items()))
    L.append("direction groups (positively parallel input weights):")
    shown = 0
    for g in an["direction_groups"]:
        if len(g["neurons"]) == 1 and g["kind"] == "single":
            continue
        shown += 1
        if shown > 30:
            L.append("  ...")
            break
        dirn = "0" if g["direction"] is None else f"({_short(g['direction'])})"
        L.append(f"  {g['neurons']}: direction {dirn}, effective a ({_short(g['effective_a'])}): {g['kind']}")
    singles = sum(1 for g in an["direction_groups"] if len(g["neurons"]) == 1 and g["kind"] == "single")
    L.append(f"  ({singles} neuron(s) alone in their direction with a != 0)")
    if an["antiparallel_pairs"]:
        L.append(f"anti-parallel pairs: {an['antiparallel_pairs'][:10]}")
    if "sign_symmetry" in an:
        L.append(an["sign_symmetry"])
    if "output_bias" in an:
        L.append(f"output bias c = ({_short(an['output_bias']['c'])}): unchanged by rescalings and permutations; "
                 "|w_j|^2 - |a_j|^2 is still conserved; the Hessian is the joint one in (W, A, c)")
    r = an["rescaling"]
    L.append(f"rescaling: {r['dimension']} neuron(s) with a one-dimensional orbit (c w, a / c)")
    p = an["permutation"]
    L.append(f"permutation orbit size: {p['orbit_size']} (modulo rescaling: {p['orbit_size_modulo_rescaling']}); "
             f"identical pairs: {p['identical_pairs'][:10] or 'none'}")
    if an["flat_lines"]:
        L.append("flat lines (a_i + delta, a_j - delta) for w_i = w_j:")
        for fl in an["flat_lines"][:20]:
            tag = " [permutation point]" if fl["permutation_point"] else ""
            d0 = fl["directions"][0]
            L.append(f"  pair {fl['pair']}{tag}: {'exactly flat' if fl['flat'] else 'NOT FLAT'}; loss as a "
                     f"polynomial in delta: [{', '.join(d0['polynomial_delta_positive']['coefficients'])}] "
                     f"(L0, delta, delta^2, ...); loss at delta = {', '.join(d0['loss_at_delta'])}: "
                     f"{'all equal' if fl['flat'] else _short(list(d0['loss_at_delta'].values()))}")
    else:
        L.append("flat lines: none (no two neurons share an input weight)")
    if "constant_neuron_lines" in an:
        cl = an["constant_neuron_lines"]
        if not cl:
            L.append("constant-neuron lines (a_j + delta, c - h_j delta): none (no neuron has the same activation "
                     "h_j != 0 on every data point)")
        else:
            L.append("constant-neuron lines (a_j + delta, c - h_j delta), sigma(w_j . x_i) = h_j on every data point:")
        for ln in cl[:20]:
            for e in ln["directions"][:4]:
                extra = []
                if "in_hessian_kernel" in e:
                    extra.append("in ker H" if e["in_hessian_kernel"] else
                                 "NOT in ker H: negative curvature u^T H u = " + e["negative_curvature"]["u_H_u"])
                if e["every_point_critical"] is not None:
                    extra.append("every point critical" if e["every_point_critical"] else "not every point critical")
                L.append(f"  neuron {ln['neuron']}, output {e['output']}, h = {ln['h']}: "
                         f"{'exactly flat' if ln['flat'] else 'NOT FLAT'}"
                         + (f"; {'; '.join(extra)}" if extra else ""))
    h = an.get("hessian")
    if h is not None:
        if not h["available"]:
            L.append("Hessian: not defined (no second-order expansion): " + "; ".join(h["reasons"][:3]) +
                     (" ..." if len(h["reasons"]) > 3 else ""))
        else:
            ks = h["kernel_split"]
            L.append(f"Hessian (exact, {h['size']}x{h['size']}): rank {h['rank']}, zero eigenvalues {h['zero_eigenvalues']}"
                     f" = rescaling {ks['rescaling']} + flat lines {ks['flat_lines']} + dead neurons "
                     f"{ks['dead_neurons']} + rest {ks['rest']}; gradient zero: {h['gradient_zero']}")
            if "inertia" in h:
                i = h["inertia"]
                L.append(f"  inertia: {i['positive']} positive, {i['negative']} negative, {i['zero']} zero eigenvalues")
            if h["not_in_kernel"]["flat_lines"]:
                L.append(f"  flat-line directions NOT in the kernel (pair, pair, output): "
                         f"{h['not_in_kernel']['flat_lines'][:6]}: negative curvature")
            if "negative_curvature" in h:
                L.append(f"  negative curvature: v^T H v = {h['negative_curvature']['vHv']} ({h['negative_curvature']['how']})")
            if "second_order_saddle" in h:
                s = h["second_order_saddle"]
                L.append(f"  SECOND-ORDER SADDLE: L(theta + t v) - L = [{', '.join(s['polynomial'])}] in t on "
                         f"0 < t < {s['t_max']}; at t = {s['t']}: loss {s['loss_at_t']} < {s['loss']}")
            if h.get("morse_bott_local_min"):
                L.append("  " + h["morse_bott_local_min"])
    return "\n".join(L)


def count_text(tab: dict) -> str:
    rows = tab["rows"]
    cols = [("r", "r"), ("m", "m"), ("T enum", "T_enumerated"), ("T formula", "T_formula"), ("match", "T_match"),
            ("G enum", "G_enumerated"), ("G formula", "G_formula"), ("match", "G_match"),
            ("T real.0-loss", "T_realised_zero_loss"), ("T distinct", "T_realised_distinct"),
            ("G real.stat.", "G_realised_stationary"), ("0-out grp stat.", "zero_output_groups_generic_direction_stationary"),
            ("G+zero nrns", "G_with_zero_neurons"), ("zero-nrn stat.", "zero_neuron_families_stationary")]
    wid = [max(len(h), *(len(str(r.get(k, "-"))) for r in rows)) + 2 for h, k in cols]
    out = ["".join(h.rjust(w) for (h, _), w in zip(cols, wid))]
    for r in rows:
        out.append("".join(str(r.get(k, "-")).rjust(w) for (_, k), w in zip(cols, wid)))
    out.append("")
    out.append("T(r, r+1) = (r+2)!/2: " + ", ".join(
        f"r={c['r']}: {c['T(r,r+1)']} vs {c['(r+2)!/2']} {'ok' if c['match'] else 'MISMATCH'}" for c in tab["T_r_r_plus_1"]))
    out.append("findings: " + ("; ".join(tab["findings"]) if tab["findings"] else
                               "enumeration matches T and G for every (r, m) above"))
    for n in tab["notes"]:
        out.append("- " + n)
    return "\n".join(out)
