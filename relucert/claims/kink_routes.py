"""Which route decides the hard vector-output stationary points (issue 13, docs/second_order_kinks.md).

The instances: vector-output (k = 2, 3) points that are stationary by construction, with kinks,
replicas, zero and dead neurons and every a_j != 0 (``generators.stationary_point`` with kink-heavy
modes).  The claim ``kink-route`` evaluates ``certify`` and

* holds on the points decided by the piece-wise second-order route (``local_min`` with
  ``kink_second_order`` evidence, or ``saddle`` found on a kink piece) when the independent checker
  accepts the certificate and brute force agrees: no ray of a local minimum descends (exact ray
  polynomials, ``claims.brute``), no kink-preserving second-order direction lowers the loss, and the
  saddle's ray lowers the loss exactly at t0 / 2^h;
* is skipped, with the deciding route as the reason, on every other point -- so the skip reasons of a
  run are the measurement of how often each route decides (Theorem A, escape path, second-order ray,
  Morse-Bott, not stationary, inconclusive with the kink route's reason).
"""
from __future__ import annotations

from flint import fmpq

from relucert.check import Rejected, require_valid
from relucert.claims import brute
from relucert.claims import generators as gen
from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.instance import Instance
from relucert.core.formulas import ExactState, loss_half_mean
from relucert.decide.certify import certify
from relucert.decide.second_order import moved, split_direction

N_DIRECTIONS = 20


def hard_vector_point(src) -> Instance:
    return gen.stationary_point(src, ks=(2, 3), max_n=5, max_d=3, max_m=3,
                                modes=("kink", "random", "kink", "dup", "zero", "dead"), zero_prob=0)


def route(res) -> str:
    """The route that decided a result (its evidence kind, or the verdict)."""
    ev = res.certificate["evidence"]
    if res.verdict == "inconclusive":
        return "inconclusive (kink route stops)" if "kink second-order test stops" in res.reason else "inconclusive"
    for key, name in (("kink_second_order", "kink pieces: local_min"), ("morse_bott", "Morse-Bott"),
                      ("escape_path", "escape path"), ("not_stationary", "not stationary")):
        if key in ev:
            return name
    if "second_order" in ev:
        return "kink pieces: saddle" if "kink piece" in res.reason else "second-order ray"
    return {"local_min": "Theorem A", "global_min": "loss 0"}.get(res.verdict, res.verdict)


@claim("vector output, escape neurons with a_j != 0, data on kinks: every verdict of the piece-wise "
       "second-order route is right -- the independent checker accepts it, no exact ray and no "
       "kink-preserving second-order direction lowers the loss at a certified local_min, and the "
       "certified saddle ray lowers the loss exactly; the skip reasons count how often each other route "
       "decides (docs/second_order_kinks.md)",
       hard_vector_point, name="kink-route", budget=60, theory="docs/second_order_kinks.md [derived]",
       tags=("second-order", "brute-force"))
def kink_route(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    how = route(res)
    if not how.startswith("kink pieces"):
        return skipped(f"decided by {how}")
    try:
        if require_valid(res.certificate) != res.verdict:
            return counterexample("the checker derives another verdict")
    except Rejected as e:
        return counterexample(f"the checker rejects the certificate: {e}")
    st = ExactState(pb, pt)
    base = st.loss_half_mean
    if res.verdict == "saddle":
        so = res.certificate["evidence"]["second_order"]
        v = [fmpq(x) for row in so["dW"] for x in row] + [fmpq(x) for row in so["dA"] for x in row] + \
            ([fmpq(x) for x in so["dc"]] if "dc" in so else [])
        dW, dA, dc = split_direction(pb, pt, v)
        t0 = fmpq(so["t0"])
        for h in (0, 5, 10):
            if not loss_half_mean(pb, moved(pt, t0 / 2 ** h, dW, dA, dc)) < base:
                return counterexample(f"the saddle ray does not lower the loss at t0 / 2^{h}")
        return held(how)
    seed = brute.fingerprint(pb, pt)
    for dW, dA, label in brute.random_directions(pb, pt, st, N_DIRECTIONS, seed):
        r = brute.ray(pb, pt, st, dW, dA, label)
        mm = brute.ray_mismatch(pb, pt, base, r)
        if mm:
            return counterexample(f"core: {mm}", ray=r.to_json())
        lead = r.leading()
        if lead is not None and lead[1] < 0:
            return counterexample(f"certified local_min but the ray '{label}' has leading coefficient {lead[1]}",
                                  ray=r.to_json())
    d2 = brute.second_order_descent(pb, pt, st)
    if d2 is not None:
        return counterexample(f"certified local_min but a kink-preserving second-order direction lowers the "
                              f"loss ({d2.how})", descent=d2.to_json())
    return held(how)
