"""Markdown (Jupyter) and LaTeX (papers) renderings of the objects users hold: a certify ``Result``, a
``CheckpointReport``, plateau rows of ``relucert screen``, a ``ScreenResult`` and a training
``Monitor``'s rows.  The verdict comes first (a headline, or the first column of a table); exact
rationals are shortened for reading (``decide.report.short_number``: whole when short, else ~float and
the number of digits); the exact values stay in the JSON output and the certificates.  LaTeX tables are
booktabs tabulars (``\\usepackage{booktabs}``)."""
from __future__ import annotations

from typing import Any, Sequence

from relucert.decide.report import short_number, short_vector

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "…": r"\ldots{}", "⊆": r"$\subseteq$", "≥": r"$\geq$", "≤": r"$\leq$", "|": r"$|$"}


def latex_escape(text: Any) -> str:
    """``text`` with LaTeX's special characters (and the few non-ASCII signs the tables use) escaped."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def markdown_escape(text: Any) -> str:
    """A markdown table cell: '|' escaped, line breaks as spaces."""
    return str(text).replace("|", r"\|").replace("\n", " ")


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A GitHub / Jupyter markdown table; columns in ``right`` are right-aligned."""
    lines = ["| " + " | ".join(markdown_escape(h) for h in head) + " |",
             "|" + "|".join("---:" if i in right else ":---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(markdown_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def latex_table(head: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (),
                wide: dict | None = None, comments: Sequence[str] = ()) -> str:
    """A booktabs tabular; columns in ``right`` are right-aligned, ``wide`` maps a column to a width
    (a paragraph column, e.g. {6: "6cm"}); ``comments`` become %-lines above it."""
    wide = wide or {}
    spec = "".join(f"p{{{wide[i]}}}" if i in wide else ("r" if i in right else "l") for i in range(len(head)))
    lines = ["% " + " ".join(str(c).split()) for c in comments]     # comments are not typeset: no escaping
    lines += [f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def neuron_list(items, width: int = 28) -> str:
    from relucert.tools.screen import summarise_list
    return summarise_list(list(items or []), width)


def _yn(v) -> str:
    return {True: "yes", False: "no", None: "?"}[v]


def _kinks(k: list, limit: int = 8) -> str:
    if not k:
        return "-"
    return ",".join(str(i) for i in k[:limit]) + (f",+{len(k) - limit}" if len(k) > limit else "")


# ---------------------------------------------------------------------------------------------
# certify: Result (the point as given) and CheckpointReport (the whole job)
# ---------------------------------------------------------------------------------------------

NEURON_HEAD = ("neuron", "status", "kinks", "S1", "S2", "escape", "why")


def neuron_rows(res) -> list[list[str]]:
    return [[str(n.j), n.status, _kinks(n.kinks), _yn(n.s1), _yn(n.s2), _yn(n.escape), n.why] for n in res.neurons]


def _facts(res) -> list[str]:
    pb, pt = res.problem, res.point
    out = [f"loss ({pb.loss}): {short_number(res.loss)}",
           f"problem: n={pb.n}, d={pb.d}, k={pb.k}, m={pt.m}, activation {pb.activation.name}"]
    if pt.c is not None:
        out.append(f"output bias c = {short_vector(pt.c.tolist())} (a free parameter: (S0) sum_i e_i = 0 is required)")
    out.append(f"escape neurons: {neuron_list(res.escape_neurons)}")
    return out


def result_markdown(res) -> str:
    """A ``decide.certify.Result``: verdict and reason, loss, problem, output bias, escape neurons, then
    the neuron table."""
    lines = [f"**{res.verdict.upper()}** (the point exactly as given): {markdown_escape(res.reason)}", ""]
    lines += [f"- {markdown_escape(f)}" for f in _facts(res)]
    if res.neurons:
        lines += ["", markdown_table(NEURON_HEAD, neuron_rows(res), right=(0,))]
    return "\n".join(lines)


def result_latex(res, about: str = "the point exactly as given") -> str:
    """The neuron table of a ``Result`` as a booktabs tabular, with the verdict and facts as %-comments."""
    return latex_table(NEURON_HEAD, neuron_rows(res), right=(0,), wide={6: "7cm"},
                       comments=[f"verdict: {res.verdict} ({about}): {res.reason}"] + _facts(res))


def report_markdown(report) -> str:
    """A ``pipeline.CheckpointReport``: the verdict and what it is about, the reason, the given point's
    verdict when it differs in scope, the certificates' check status, then the given point's neuron table."""
    h = report._headline()
    lines = [f"**{h['verdict'].upper()}** for the {report.about}: {markdown_escape(h['reason'])}", ""]
    if h["loss"]:
        lines.append(f"- loss ({h['loss']['convention']}): {short_number(h['loss']['exact'])}")
    if h["escape_neurons"]:
        lines.append(f"- escape neurons: {neuron_list(h['escape_neurons'])}")
    moved = h.get("moved")
    if moved:
        lines.append(f"- moved: max |change| {moved['max_abs']:.2e} (relative {moved['relative']:.2e})")
    if report.about != "given point":
        lines.append(f"- the checkpoint exactly as given: {report.given.verdict}")
    checked = [line for line in report.independent_check if ": OK" in line]
    lines.append("- certificates re-checked by the independent checker" if len(checked) == len(report.certificates())
                 else "- certificates not re-checked: " + markdown_escape("; ".join(report.independent_check)))
    lines += ["", "The point as given:", "", result_markdown(report.given)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# screen: plateau rows, the per-checkpoint pass
# ---------------------------------------------------------------------------------------------

def plateau_head(convention: str) -> list[str]:
    return ["verdict", "plateau", "steps", f"loss ({convention})", "reading", "escape neurons", "grew after",
            "grown ⊆ escape"]


def plateau_cells(r) -> list[str]:
    ok = {True: "yes", False: "NO", None: "n/a"}[r.grown_are_escape]
    return [r.verdict or "-", str(r.index), f"{r.step_range[0]}-{r.step_range[1]}", f"{r.loss:.10g}", r.reading or "-",
            neuron_list(r.escape_neurons), neuron_list(r.grown), ok]


def plateau_markdown(rows, convention: str = "half_mean") -> str:
    """``tools.screen.PlateauRow`` rows as a markdown table (verdict first)."""
    return markdown_table(plateau_head(convention), [plateau_cells(r) for r in rows], right=(1, 3))


def plateau_latex(rows, convention: str = "half_mean", comments: Sequence[str] = ()) -> str:
    """``tools.screen.PlateauRow`` rows as a booktabs tabular (verdict first)."""
    return latex_table(plateau_head(convention), [plateau_cells(r) for r in rows], right=(1, 3), comments=comments)


def screen_markdown(sc, step=None) -> str:
    """A ``tools.screen.ScreenResult``: the first and last checkpoints' statistics."""
    T = len(sc.loss)
    head = ["checkpoint", "loss", "|dL/dA|", "|dL/dW| off kinks", "near-kink pairs", "tiny", "dead"]
    rows = []
    for t in sorted({0, T - 1}):
        r = sc.row(t)
        name = str(t if step is None else int(step[t]))
        rows.append([name, f"{r['loss']:.10g}", f"{r['grad_A']:.2e}", f"{r['grad_W']:.2e}", str(r["near_kink"]),
                     str(r["tiny"]), str(r["dead"])])
    return f"{T} checkpoints screened in {sc.seconds:.3f} s\n\n" + markdown_table(head, rows, right=tuple(range(7)))


# ---------------------------------------------------------------------------------------------
# relucert.torch.Monitor rows
# ---------------------------------------------------------------------------------------------

def monitor_head(convention: str) -> list[str]:
    return ["verdict", "plateau", "steps", "certified step", f"loss ({convention})", "about", "escape neurons"]


def monitor_cells(r) -> list[str]:
    name = "final" if r.kind == "final" else str(r.index)
    steps = f"{r.start}-{r.end}" if r.kind == "plateau" else str(r.end)
    return [r.verdict, name, steps, str(r.certified), f"{r.loss:.8g}", r.about, neuron_list(r.escape_neurons)]


def monitor_markdown(rows, convention: str = "mse") -> str:
    return markdown_table(monitor_head(convention), [monitor_cells(r) for r in rows], right=(3, 4))


def monitor_latex(rows, convention: str = "mse") -> str:
    return latex_table(monitor_head(convention), [monitor_cells(r) for r in rows], right=(3, 4))


# ---------------------------------------------------------------------------------------------
# notebook display
# ---------------------------------------------------------------------------------------------

def _plateau_row_markdown(row) -> str:
    return plateau_markdown([row])


def install() -> list[str]:
    """Give the classes users hold in a notebook a ``_repr_markdown_`` (Jupyter shows it instead of the
    repr): ``decide.certify.Result``, ``pipeline.CheckpointReport``, ``tools.screen.PlateauRow`` and
    ``tools.screen.ScreenResult``.  Done from here, the layer above them (a method of theirs could not
    import this module: layers import downward only); a class that defines its own is left alone.
    ``relucert/__init__.py`` calls it; returns the names of the classes it equipped."""
    from relucert.decide.certify import Result
    from relucert.pipeline import CheckpointReport
    from relucert.tools.screen import PlateauRow, ScreenResult
    done = []
    for cls, fn in ((Result, result_markdown), (CheckpointReport, report_markdown),
                    (PlateauRow, _plateau_row_markdown), (ScreenResult, screen_markdown)):
        if "_repr_markdown_" not in cls.__dict__:
            cls._repr_markdown_ = lambda self, _fn=fn: _fn(self)
            done.append(cls.__name__)
    return done


__all__ = ["install", "latex_escape", "markdown_escape", "markdown_table", "latex_table", "result_markdown", "result_latex",
           "report_markdown", "plateau_markdown", "plateau_latex", "screen_markdown", "monitor_markdown",
           "monitor_latex"]
