"""relucert embed FILE (--add-neuron ... | --split J --beta ... | --merge I,J | --permute ...)"""
from __future__ import annotations

import json
import sys

from relucert.errors import InputError
from relucert.io import load, point_file


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed", help="widen a point without changing its function (docs/theory.md §7): add / split / merge / permute",
        description="Apply a network-embedding operation, verify exactly that the network function is "
                    "unchanged, write the new point (input schema, exact strings), and with --certify "
                    "compare the verdict the theory predicts with the certified one. Values starting with "
                    "'-' need '=', e.g. --add-neuron=-1,2 or --beta=-1,2.")
    p.add_argument("file", help="problem+point file (.json or .npz) or a certificate (.json)")
    p.add_argument("--index", type=int, default=None, help="checkpoint index in a trajectory .npz")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--add-neuron", metavar="zero|dead|W1,W2,...",
                   help="E1: append a neuron with a = 0 and input weight 0, a dead direction (ReLU), or the given w")
    g.add_argument("--split", metavar="J", help="E2: replicate neuron J into copies (gamma_l w, beta_l a / gamma_l)")
    g.add_argument("--merge", metavar="I,J[,...]", help="merge positively parallel neurons into the first one")
    g.add_argument("--permute", metavar="P0,P1,...", help="new neuron l is old neuron P_l")
    p.add_argument("--beta", metavar="B1,B2,...", help="with --split: exact rationals summing to 1 (0 and < 0 allowed)")
    p.add_argument("--gamma", metavar="G1,G2,...", help="with --split: positive scales, one per copy (default 1)")
    p.add_argument("-o", "--output", metavar="OUT.json", help="write the new point here (default: stdout "
                   "unless --certify or --json)")
    p.add_argument("--certify", action="store_true",
                   help="certify before and after and compare with the predicted verdict")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _operation(args, problem, point):
    from relucert.tools import embedding as E
    if args.split is None and (args.beta is not None or args.gamma is not None):
        raise InputError("--beta/--gamma apply to --split only")
    if args.add_neuron is not None:
        return E.add_neuron(problem, point, args.add_neuron)
    if args.split is not None:
        if args.beta is None:
            raise InputError("--split needs --beta B1,B2,... (exact rationals summing to 1)")
        try:
            j = int(args.split)
        except ValueError:
            raise InputError(f"--split: neuron index {args.split!r} is not an integer") from None
        return E.split(problem, point, j, args.beta, args.gamma)
    if args.merge is not None:
        return E.merge(problem, point, args.merge)
    return E.permute(problem, point, args.permute)


def run(args) -> int:
    from relucert.tools.embedding import embed_and_certify
    problem, point = load(args.file, args.index)
    emb = _operation(args, problem, point)
    wide = point_file(problem, emb.after)
    if args.output:
        try:
            with open(args.output, "w") as fh:
                json.dump(wide, fh, indent=1)
        except OSError as e:
            raise InputError(f"cannot write {args.output}: {e.strerror}") from None
    cmp = None
    if args.certify:
        cmp = embed_and_certify(problem, point, emb)
        cmp.pop("_after_result", None)
    if args.json:
        out = {"operation": emb.to_json(), "output": args.output}
        if not args.output:
            out["point"] = wide
        if cmp is not None:
            out["comparison"] = cmp
        json.dump(out, sys.stdout, indent=1, default=str)
        print()
        return 0
    if not args.output and not args.certify:
        json.dump(wide, sys.stdout, indent=1)
        print()
        return 0
    print(describe(emb))
    if args.output:
        print(f"wider point written to {args.output}")
    if cmp is not None:
        print(comparison_text(cmp))
    return 0


def describe(emb) -> str:
    p = emb.params
    if emb.op == "add_neuron":
        what = f"added neuron {p['index']} ({p['kind']}): w = [{', '.join(p['w'])}], a = 0"
    elif emb.op == "split":
        what = (f"split neuron {p['neuron']} into copies {p['copy_indices']}: beta = [{', '.join(p['beta'])}], "
                f"gamma = [{', '.join(p['gamma'])}]")
    elif emb.op == "merge":
        what = f"merged neurons {p['neurons']} (w_l = c_l w_{p['neurons'][0]}, c = [{', '.join(p['factors'])}])"
    else:
        what = f"permuted neurons: new l <- old {p['perm']}"
    c = emb.check
    bias = ""
    if emb.after.c is not None:
        bias = f"; output bias c = ({', '.join(str(v) for v in emb.after.c.tolist())}) carried unchanged"
    return (f"{what}; width {emb.before.m} -> {emb.after.m}\n"
            f"function unchanged (exact): outputs equal on {c['data_points_equal']} data points and "
            f"{c['extra_inputs_equal']} extra rational inputs; canonical hinge form equal{bias}")


def comparison_text(cmp: dict) -> str:
    agree = {True: "yes", False: "NO", None: "n/a (no prediction)"}[cmp["agree"]]
    heads = ("verdict before", "predicted after", "certified after", "agree")
    vals = (cmp["before"], cmp["predicted"], cmp["certified"], agree)
    wid = [max(len(h), len(str(v))) + 2 for h, v in zip(heads, vals)]
    lines = ["", "  " + "".join(h.ljust(w) for h, w in zip(heads, wid)).rstrip(),
             "  " + "".join(str(v).ljust(w) for v, w in zip(vals, wid)).rstrip()]
    lines.append(f"  rule: {cmp['rule']}")
    lines.append(f"  certified because: {cmp['certified_reason']}")
    if cmp.get("certified_escape_neurons"):
        lines.append(f"  escape neurons after: {cmp['certified_escape_neurons']}")
    if "checked" in cmp:
        lines.append("  independent checker: " + ("OK" if cmp["checked"] else "REJECTED " + cmp.get("check_error", "")))
    return "\n".join(lines)
