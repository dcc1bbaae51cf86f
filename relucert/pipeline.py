"""The whole job as one library call: certify a checkpoint, refine it when it is near-stationary,
re-check every certificate with the independent checker, and report.

    report = relucert.certify_checkpoint(problem, point)
    report.verdict            # the answer for the point the report is about (refined if refinement ran)
    report.given              # decide.certify.Result for the point exactly as given
    report.refined            # the refined point's report (dict, as in the JSON output) or None
    report.certificate        # the certificate of report.verdict
    report.to_json()          # what ``relucert certify --json`` prints
    report.text()             # what ``relucert certify`` prints

The command line only parses options, loads files and prints this report.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from relucert import check
from relucert.core.formulas import pattern_margin
from relucert.core.problem import Point, Problem
from relucert.decide.certify import Result, certify, escape_path_losses
from relucert.decide.report import short_number
from relucert.errors import InputError, RelucertError
from relucert.io import point_file
from relucert.refine import DECISIVE, Tolerances, effective_kink_tol, float_gradient_norm, refine_point
from relucert.refine import exact as _refine_exact

AUTO_CHECK_MAX = 20000     # the pure-Fraction checker takes seconds beyond n*m = this ...
AUTO_CHECK_MAX_PRODUCTS = 400_000   # ... or beyond n*m*d products (its cost grows with n*m*d)
REFINE_MODES = ("auto", "always", "never")
TOLERANCE_FIELDS = ("kink", "tiny", "stationary", "alive", "max_move", "replica_angle")


@dataclass
class CheckpointReport:
    """Everything ``certify_checkpoint`` found, typed; ``to_json`` / ``text`` render it."""

    given: Result
    refined: dict | None                  # refine.refined_report(...) of the refined point, or None
    float_gradient_relative: float | None  # None when refinement was not considered (refine="never")
    tolerances: Tolerances
    independent_check: list[str] = field(default_factory=list)
    refine_mode: str = "auto"
    converged: "Converged | None" = None            # refine.converge.Converged: where the dynamics led
    at_converged: "CheckpointReport | None" = None  # the report of the converged point

    @property
    def about_refined(self) -> bool:
        return self.refined is not None and bool(self.refined.get("certificate"))

    @property
    def verdict(self) -> str:
        """The verdict of the point this report is about: the converged point's when the training
        dynamics were followed, else the refined point's when refinement ran, else the given point's."""
        if self.at_converged is not None:
            return self.at_converged.verdict
        return self.refined["verdict"] if self.refined is not None else self.given.verdict

    @property
    def certificate(self) -> dict:
        """The certificate of ``verdict``: the converged point's (or its refinement's) after
        --converge, else the refined point's when it has one, else the given point's."""
        if self.at_converged is not None:
            return self.at_converged.certificate
        return self.refined["certificate"] if self.about_refined else self.given.certificate

    def certificates(self) -> list[tuple[str, dict]]:
        out = [("given point's", self.given.certificate)]
        if self.about_refined:
            out.append(("refined point's", self.refined["certificate"]))
        if self.at_converged is not None:
            names = {"given point's": "converged point's", "refined point's": "refined converged point's"}
            out += [(names[label], cert) for label, cert in self.at_converged.certificates()]
        return out

    def refined_point(self) -> Point | None:
        """The refined point (exact), or None when refinement did not run or produced no point; after
        --converge the converged point's refinement, else the converged point itself."""
        if self.at_converged is not None:
            return self.at_converged.refined_point() or self.converged.point
        pj = (self.refined or {}).get("point")
        return None if pj is None else Point.make(pj["W"], pj["A"], self.given.problem, c=pj.get("c"))

    def refined_point_file(self) -> dict:
        """The refined point as a problem file (the input format of every command), with a note of
        where it came from; InputError when there is no refined point."""
        pt = self.refined_point()
        if pt is None:
            why = ("refinement did not run (the given point is decided or not near-stationary; --refine forces it)"
                   if self.refined is None else f"refinement produced no point: {self.refined['reason']}")
            raise InputError(f"no refined point to save: {why}")
        if self.at_converged is not None and self.at_converged.refined_point() is None:
            return point_file(self.given.problem, pt, provenance={
                "what": "the end point of the training dynamics followed by 'relucert certify --converge'",
                "verdict": self.verdict, "reading": None, "moved": self.converged.distance})
        rf = self.at_converged.refined if self.at_converged is not None else self.refined
        ball = (rf.get("certificate") or {}).get("format") == check.BALL_FORMAT
        what = ("the centre of a ball certificate's box: the exact stationary point it proves lies in the box"
                if ball else "the refined point of 'relucert certify'")
        if self.at_converged is not None:
            what += " (refined from the end point of the training dynamics, --converge)"
        return point_file(self.given.problem, pt, provenance={
            "what": what, "verdict": rf["verdict"], "reading": rf["reading"], "moved": self._headline()["moved"]})

    @property
    def about(self) -> str:
        """Which point the headline verdict is about: "converged point", "refined converged point",
        "refined point" or "given point"."""
        if self.at_converged is not None:
            return "refined converged point" if self.at_converged.refined is not None else "converged point"
        return "refined point" if self.refined is not None else "given point"

    def converged_json(self) -> dict | None:
        """How far the dynamics went and what the end point is (the issue's "converged" object)."""
        if self.converged is None:
            return None
        c, r = self.converged, self.at_converged
        out = c.to_json()
        out.update({"verdict": r.verdict, "about": r.about, "loss_change": c.end_loss - c.start_loss,
                    "certificate": r.certificate, "refined": r.refined,
                    "given": r.given.to_json()})
        return out

    def pattern_margin(self) -> dict | None:
        """For a local_min: how far its point is from changing activation pattern
        (``core.formulas.pattern_margin``); None otherwise."""
        if self.at_converged is not None:
            return self.at_converged.pattern_margin()
        if self.verdict != "local_min":
            return None
        if "_margin" not in self.__dict__:
            pt = self.refined_point() if self.refined is not None else self.given.point
            self.__dict__["_margin"] = None if pt is None else pattern_margin(self.given.problem, pt)
        return self.__dict__["_margin"]

    def _headline(self) -> dict:
        if self.at_converged is not None:
            h = self.at_converged._headline()
            h["about"] = self.about
            h["moved"] = self.converged.distance
            return h
        if self.refined is not None:
            rf = self.refined
            return {"verdict": rf["verdict"], "about": self.about, "reason": rf["reason"],
                    "escape_neurons": rf["escape_neurons"], "loss": rf["loss"], "reading": rf["reading"],
                    "moved": rf["distance"], "pattern_margin": self.pattern_margin()}
        g = self.given
        return {"verdict": g.verdict, "about": self.about, "reason": g.reason, "escape_neurons": g.escape_neurons,
                "loss": g.loss_json(), "reading": None, "moved": None, "pattern_margin": self.pattern_margin()}

    def to_json(self) -> dict:
        """The answer first (verdict, which point, reason, loss, how far refinement moved), then the
        exact analysis of the point as given, the refined point's report and the checks."""
        out = self._headline()
        g = self.given.to_json()
        out.update({"n": g["n"], "d": g["d"], "k": g["k"], "m": g["m"], "activation": g["activation"],
                    "defaults_used": list(self.given.problem.defaulted)})
        g["escape_path_losses"] = escape_path_losses(self.given)
        out["given"] = g
        out["float_gradient_relative"] = self.float_gradient_relative
        out["refined"] = self.refined
        out["converged"] = self.converged_json()
        out["independent_check"] = self.independent_check
        return out

    def answer_text(self) -> str:
        """The first lines of the report: the verdict the user came for and what it is about."""
        h = self._headline()
        res = self.given
        lines = []
        if self.at_converged is not None:
            return self._converged_answer_text()
        if self.refined is not None and not self.about_refined:
            lines.append(f"VERDICT: {h['verdict'].upper()}  refinement found no certifiable exact point near the "
                         "checkpoint")
        elif self.refined is not None:
            d = h["moved"] or {}
            moved = (f"refinement moved theta by {d['max_abs']:.2e} at most (relative {d['relative']:.2e})"
                     if d else "refined")
            lines.append(f"VERDICT: {h['verdict'].upper()}  for the refined point near the checkpoint ({moved}; "
                         f"reading of tiny neurons: {h['reading']})")
            used = [row for row in self.refined.get("kink_alternatives") or [] if row["used"]]
            if used and used[0]["direction"] != "as chosen":
                lines.append(f"  decided at the neighbouring kink tolerance {used[0]['kink_tol']:.2e} "
                             f"({used[0]['direction']}); the chosen one gave "
                             f"{self.refined['kink_alternatives'][0]['verdict']}")
        else:
            lines.append(f"VERDICT: {h['verdict'].upper()}  for the point exactly as given")
        lines.append(f"  {h['reason']}")
        if res.problem.defaults_note():
            lines.append(f"  {res.problem.defaults_note()}")
        if h["loss"]:
            exact = h["loss"]["exact"]
            approx = "" if "/" not in exact or len(exact) > 24 else f" = {h['loss']['float']:.10g}"
            lines.append(f"  loss ({h['loss']['convention']}): {short_number(exact)}{approx}")
        if h["escape_neurons"]:
            lines.append(f"  escape neurons: {h['escape_neurons']}")
        pm = h["pattern_margin"]
        if pm is not None:
            lines.append(f"  pattern margin {pm['absolute']:.1e} (relative to |theta| {pm['relative']:.1e}; neuron "
                         f"{pm['neuron']} ({pm['neuron_status']}) on data point {pm['data']}): a larger change of one "
                         "w_j can change the activation pattern, so the minimum may be no wider")
        if self.refined is not None:
            lines.append(f"  the checkpoint itself, exactly as given: {res.verdict.upper()}"
                         + (" (float checkpoints are almost never exactly stationary)"
                            if res.verdict == "not_stationary" else ""))
            amb = self.refined.get("ambiguities") or []
            if amb:
                lines.append(f"  {len(amb)} ambiguit{'y' if len(amb) == 1 else 'ies'} decided (listed under the "
                             "refined point below)")
        elif self.refine_mode != "never" and res.verdict not in DECISIVE:
            if self.float_gradient_relative == float("inf"):
                lines.append("  not refined: the point's numbers exceed the float range that refinement works in")
            else:
                lines.append(f"  not refined: relative float gradient {self.float_gradient_relative:.2e} > "
                             f"{self.tolerances.stationary:g} (not near a stationary point; --refine forces it)")
        checked = [line for line in self.independent_check if ": OK" in line]
        status = ("re-checked by the independent checker" if len(checked) == len(self.certificates())
                  else "not re-checked (see the last lines)")
        if self.about_refined:
            lines.append(f"  certificates: the refined point's proves '{self.certificate['verdict']}', the given "
                         f"point's proves '{res.verdict}'; {status}")
        else:
            lines.append(f"  certificate: proves '{self.certificate['verdict']}' for the given point; {status}")
        return "\n".join(lines)

    def _converged_answer_text(self) -> str:
        c, r = self.converged, self.at_converged
        inner = r.answer_text().split("\n")
        first = inner[0].replace("for the refined point near the checkpoint",
                                 "for the refined end point of the training dynamics").replace(
                                 "for the point exactly as given", "for the end point of the training dynamics")
        lines = [first,
                 f"  followed training from the checkpoint: {c.method}, {c.steps} steps ({c.stopped}), moved theta "
                 f"by {c.distance['max_abs']:.2e} at most (relative {c.distance['relative']:.2e}); loss "
                 f"({c.loss_convention}) {c.start_loss:.6g} -> {c.end_loss:.6g}; relative float gradient "
                 f"{c.start_gradient_relative:.1e} -> {c.gradient_relative:.1e}"]
        bm = (r.refined or {}).get("beyond_max_move")
        if bm:
            lines.append(f"  the end point's refinement moved {bm['move_relative_to_scale']:.2e} (relative to the "
                         f"problem's scale), beyond max move {bm['max_move']:g}; accepted because it went on "
                         f"downhill: move <= {bm['cap']:g}, float64 loss {bm['loss_start']:.10g} -> "
                         f"{bm['loss_end']:.10g}, and no rise along the straight segment ({bm['samples']} steps, "
                         f"rounding tolerance {bm['tolerance']:.1e})")
        lines += [ln.replace("the checkpoint itself, exactly as given", "the end point itself, exactly as given")
                  for ln in inner[1:] if not ln.startswith("  certificate")]
        lines.append(f"  the checkpoint itself, exactly as given: {self.given.verdict.upper()}")
        checked = [line for line in self.independent_check if ": OK" in line]
        status = ("re-checked by the independent checker" if len(checked) == len(self.certificates())
                  else "not re-checked (see the last lines)")
        lines.append(f"  certificates: the converged point's proves '{self.certificate['verdict']}'; {status}")
        return "\n".join(lines)

    def text(self) -> str:
        res = self.given
        lines = ["== answer ==", self.answer_text()]
        if self.at_converged is not None:
            r = self.at_converged
            if r.refined is not None:
                lines.append(refined_text(r.refined).replace("== refined point ==",
                                                             "== refined end point of the training dynamics =="))
            lines += ["", "== the end point of the training dynamics, as reached ==", r.given.report()]
        if self.refined is not None:
            lines.append(refined_text(self.refined))
        lines += ["", "== the point as given ==", res.report()]
        for row in escape_path_losses(res):
            lines.append(f"  escape path: t = {row['t']}: loss decreases by {float(Fraction(row['decrease'])):.3e}")
        lines.append("")
        lines.extend(self.independent_check)
        return "\n".join(lines)


def validate_tolerances(tol: Tolerances) -> None:
    for name in TOLERANCE_FIELDS:
        v = getattr(tol, name)
        if not (v >= 0) or v == float("inf"):
            raise InputError(f"tolerance {name!r} must be a finite number >= 0, got {v}")


def independent_check(certs: list[tuple[str, dict]], problem: Problem, point: Point, *,
                      check_mode: bool | str = "auto", limit: int = AUTO_CHECK_MAX) -> list[str]:
    """Re-check every certificate with the Fraction-only checker (imports nothing from the decision
    code).  Returns report lines; a rejection is a bug and raises RelucertError, never a verdict."""
    if check_mode is False:
        return ["independent check: skipped (--no-check); run 'relucert check CERT'"]
    if check_mode == "auto" and problem.n * point.m > limit:
        return [f"independent check: skipped (n*m = {problem.n * point.m} > {limit}); run 'relucert check CERT'"]
    nmd = problem.n * point.m * max(1, problem.d)
    if check_mode == "auto" and limit == AUTO_CHECK_MAX and nmd > AUTO_CHECK_MAX_PRODUCTS:
        return [f"independent check: skipped (n*m*d = {nmd} > {AUTO_CHECK_MAX_PRODUCTS}); run 'relucert check CERT'"]
    lines = []
    for label, cert in certs:
        t0 = time.perf_counter()
        got = check.check_certificate(cert)
        if not got.ok:
            raise RelucertError(f"internal error: the independent checker rejects the {label} certificate "
                                f"({'; '.join(got.reasons)}); no verdict is claimed, please report this point")
        if got.verdict != cert["verdict"]:
            raise RelucertError(f"internal error: the checker derives {got.verdict!r} for the {label} certificate "
                                f"claiming {cert['verdict']!r}")
        lines.append(f"independent check of the {label} certificate: OK, proves '{got.verdict}' "
                     f"({time.perf_counter() - t0:.2f} s)")
    return lines


def certify_checkpoint(problem: Problem, point: Point, *, method: str = "auto",
                       tolerances: Tolerances | None = None, refine_mode: str = "auto",
                       check_mode: bool | str = "auto", check_limit: int = AUTO_CHECK_MAX,
                       converge: str | None = None, converge_options: dict | None = None,
                       progress=None, analysis_progress=None, refine_progress=None) -> CheckpointReport:
    """Certify ``point`` exactly as given; refine it to a nearby exact point when it is not decided
    and its relative float gradient is below ``tolerances.stationary`` (``refine_mode="auto"``), always
    (``"always"``) or never (``"never"``); re-check every certificate with the independent checker
    (``check_mode``: True, False, or "auto" = up to n*m = ``check_limit``).

    ``converge`` ("lbfgs" or "flow"): when the point is not decided as given and refinement does not
    decide it (or it is not near-stationary), follow the float training dynamics from it
    (``refine.converge.converge``, options ``converge_options``, ``progress(step, max, loss)``) and
    certify the end point the same way; the report is then about that point and says how far it is.
    With ``converge`` the given point's refinement has GIVEN_REFINE_BUDGET_WITH_CONVERGE seconds and the
    converged point's what is left of CONVERGE_TOTAL_BUDGET for the whole call (at least
    CONVERGED_REFINE_MIN, at most the usual refine.driver.REFINE_BUDGET), so that the call stays under
    a minute.
    ``analysis_progress(done, total, None)`` follows the exact per-neuron analysis of the given point
    (``decide.certify.certify``'s ``progress``), ``refine_progress`` the refinement's readings
    (``refine.driver.refine_point``'s)."""
    if converge is not None and converge not in CONVERGE_METHODS:
        raise InputError(f"converge must be one of {CONVERGE_METHODS} or None, got {converge!r}")
    # with --converge a second refinement may follow (at the converged point): the given point's
    # refinement gets a shorter budget, and the second one what is left of the whole call's
    started = time.monotonic()
    with _refine_exact.time_budget(GIVEN_REFINE_BUDGET_WITH_CONVERGE if converge is not None else math.inf,
                                   "the given point's budget with --converge, pipeline.GIVEN_REFINE_BUDGET_WITH_CONVERGE"):
        report = _certify_checkpoint(problem, point, method=method, tolerances=tolerances, refine_mode=refine_mode,
                                     check_mode=check_mode, check_limit=check_limit,
                                     analysis_progress=analysis_progress, refine_progress=refine_progress)
    if converge is None or report.verdict in DECISIVE:
        return report
    from relucert.refine.converge import converge as follow
    c = follow(problem, point, method=converge, progress=progress, tolerances=report.tolerances,
               **(converge_options or {}))
    report.converged = c
    left = CONVERGE_TOTAL_BUDGET - (time.monotonic() - started)
    # the converged point's refinement may go beyond max_move when it goes on downhill (refine.driver
    # downhill_evidence): the user asked where the dynamics lead
    report.at_converged = _certify_checkpoint(problem, c.point, method=method, tolerances=tolerances,
                                              refine_mode="auto" if refine_mode == "never" else refine_mode,
                                              check_mode=check_mode, check_limit=check_limit, downhill=True,
                                              refine_budget=max(CONVERGED_REFINE_MIN, round(left, 1)))
    report.independent_check += [line.replace("given point's", "converged point's")
                                 .replace("refined point's", "refined converged point's")
                                 for line in report.at_converged.independent_check]
    return report


CONVERGE_METHODS = ("lbfgs", "flow")
GIVEN_REFINE_BUDGET_WITH_CONVERGE = 15.0   # seconds for the given point's refinement when --converge may follow
# seconds for a whole call with --converge: the converged point's refinement gets what the given point's
# refinement and the dynamics left (at most refine.driver.REFINE_BUDGET), but at least CONVERGED_REFINE_MIN;
# a refinement stops at its next budget check (a round can take a few seconds), so the call may end a
# few seconds after this
CONVERGE_TOTAL_BUDGET = 45.0
CONVERGED_REFINE_MIN = 20.0
CONVERGED_BUDGET_NAME = "what is left of the --converge call's budget, pipeline.CONVERGE_TOTAL_BUDGET"


def _certify_checkpoint(problem: Problem, point: Point, *, method: str = "auto",
                        tolerances: Tolerances | None = None, refine_mode: str = "auto",
                        check_mode: bool | str = "auto", check_limit: int = AUTO_CHECK_MAX,
                        analysis_progress=None, refine_progress=None, downhill: bool = False,
                        refine_budget: float | None = None) -> CheckpointReport:
    tol = tolerances if tolerances is not None else Tolerances()
    validate_tolerances(tol)
    if refine_mode not in REFINE_MODES:
        raise InputError(f"refine_mode must be one of {REFINE_MODES}, got {refine_mode!r}")
    if check_mode not in (True, False, "auto"):
        raise InputError(f"check_mode must be True, False or 'auto', got {check_mode!r}")
    if not (isinstance(check_limit, int) and check_limit >= 0):
        raise InputError(f"check_limit must be an integer >= 0, got {check_limit!r}")
    res = certify(problem, point, method=method, progress=analysis_progress)
    refined = None
    grad = None
    if refine_mode != "never":
        if _float_views_finite(problem, point):
            grad = float_gradient_norm(problem, point, effective_kink_tol(problem, point, tol))
        elif refine_mode == "always":
            raise InputError("cannot refine: the point's numbers exceed the float range that refinement "
                             "works in (certify the point exactly as given with --exact-only)")
        else:
            grad = float("inf")       # beyond the float range: refinement (float-guided) cannot run
        if refine_mode == "always" or (res.verdict not in DECISIVE and grad <= tol.stationary):
            refined = refine_point(problem, point, tol, progress=refine_progress, downhill=downhill,
                                   budget=refine_budget, budget_name=CONVERGED_BUDGET_NAME)
    report = CheckpointReport(res, refined, grad, tol, refine_mode=refine_mode)
    report.independent_check = independent_check(report.certificates(), problem, point,
                                                 check_mode=check_mode, limit=check_limit)
    return report


def _float_views_finite(problem: Problem, point: Point) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        views = (problem.Xf, problem.Yf, point.Wf, point.Af)
        if not all(np.isfinite(v).all() for v in views):
            return False
        if point.c is not None and not (np.isfinite(point.cf).all() and float(np.abs(point.cf).max()) < 1e150):
            return False
        # the float forward pass must stay finite too (|z| and outputs far inside the float range)
        scale = (np.abs(views[0]).max() * np.abs(views[2]).max() * np.abs(views[3]).max() * views[0].shape[1]
                 * max(1, point.m))
        return bool(np.isfinite(scale) and scale < 1e150)


def refined_text(rf: dict) -> str:
    """The refined point's part of the text report."""
    pc = rf["pattern_changes"]
    d = rf["distance"]
    lines = ["", "== refined point ==",
             f"verdict: {rf['verdict'].upper()}   (reading of tiny neurons: {rf['reading']})",
             f"  {rf['reason']}"]
    if rf.get("loss"):
        lines.append(f"loss ({rf['loss']['convention']}): {rf['loss']['float']:.17g} (exact rational in the certificate)")
    lines.append(f"escape neurons: {rf['escape_neurons'] or 'none'}")
    if d:
        lines.append(f"moved: max |change| = {d['max_abs']:.3e} (W {d['max_abs_W']:.3e}, A {d['max_abs_A']:.3e}), "
                     f"relative {d['relative']:.3e} (to the problem's scale {d['relative_to_scale']:.3e})")
    lines.append(f"method: {rf['method']}")
    for i, js in pc["snapped_by_data_point"].items():
        lines.append(f"snapped onto the kink of data point {i}: neurons {js}")
    if pc["tiny"]:
        lines.append(f"tiny neurons: {pc['tiny']}")
    if pc["dead"]:
        lines.append(f"dead neurons: {pc['dead']}")
    if rf["left_pattern"]:
        lines.append(f"left the pattern at (neuron, data): {rf['left_pattern'][:10]}")
    t = rf["tolerances"]
    lines.append(f"tolerances: kink {t['kink_used']:.3g} (base {t['kink_relative']:g}{', auto' if t['kink_auto'] else ''}), "
                 f"tiny {t['tiny_relative']:g}, alive {t['alive_relative']:g}, "
                 f"near-stationary {t['near_stationary']:g}, max move {t['max_move_relative']:g}")
    if len(rf["readings"]) > 1:
        lines.append("verdict under each reading (tiny neurons; snapped-but-dead neurons):")
        for r in rf["readings"]:
            lines.append(f"  {r['reading']:<17} {r['verdict']:<15} {r['reason'][:110]}")
    cert = rf.get("certificate") or {}
    ep = cert.get("evidence", {}).get("escape_path")
    if ep:
        lines.append(f"escape path on neuron {ep['neuron']} of the refined point: w_j + t r, a_j = -t^2 D, "
                     f"r = {[short_number(v) for v in ep['r']]}, D = {[short_number(v) for v in ep['D']]}")
        for row in rf.get("escape_path_losses", []):
            lines.append(f"  t = {row['t']}: loss decreases by {float(Fraction(row['decrease'])):.4e} "
                         f"({rf['loss']['convention']}, exact)")
    alts = rf.get("kink_alternatives") or []
    if alts:
        lines.append("kink snapping not clear-cut; refined at the neighbouring kink tolerances too:")
        for row in alts:
            mv = row["distance"].get("relative") if row["distance"] else None
            lines.append(f"  kink tol {row['kink_tol']:.2e} ({row['direction']}, {row['snapped']} pair(s) snapped): "
                         f"{row['verdict']}" + (f", moved {mv:.2e} (relative)" if mv is not None else "")
                         + ("   <- this report" if row["used"] else ""))
    for a in rf["ambiguities"]:
        lines.append(f"ambiguity: {a['what']}" + (f" -> {a['verdicts']}" if "verdicts" in a else ""))
    return "\n".join(lines)


__all__ = ["CheckpointReport", "certify_checkpoint", "independent_check", "refined_text", "validate_tolerances",
           "AUTO_CHECK_MAX", "AUTO_CHECK_MAX_PRODUCTS", "REFINE_MODES"]
