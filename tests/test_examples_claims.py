"""Every printed claim of the example READMEs, checked (issue 17, item 7).

examples/showcase/README.md: the commands it shows are run (`run_showcase.py --no-train` on the
committed final.npz, `--numpy` retrains in ~10 s, `relucert certify` / `check` on the committed files,
the other reading with `--fixed-kink-tol`, the one-configuration search); its quoted output must be
what the current tool prints (timings masked), and the numbers of its prose hold at the precision
stated.  The torch retraining (1-2 min) is not run; its first 3 600 steps are (the training-history
claims), and the committed final.npz is what it produced.
examples/paper/README.md: the tables (final losses, numpy-vs-torch gaps, plateaus), the file keys
and the description of the 1-D end point, on the committed files.
examples/embedding/README.md: the hand cases, every row of "Predicted versus certified" and the
commands it shows."""
import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOW = os.path.join(ROOT, "examples", "showcase")
PAPER = os.path.join(ROOT, "examples", "paper")
EMB = os.path.join(ROOT, "examples", "embedding")
CLI = [sys.executable, "-m", "relucert.cli"]


def readme(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def block_after(text: str, marker: str) -> list[str]:
    """The lines of the first ``` block after ``marker``."""
    i = text.index(marker)
    a = text.index("```", i)
    a = text.index("\n", a) + 1
    b = text.index("```", a)
    return text[a:b].rstrip("\n").split("\n")


def table_after(text: str, marker: str) -> list[list[str]]:
    """The body rows of the first markdown table after ``marker`` (cells stripped)."""
    lines = text[text.index(marker):].split("\n")
    rows, started = [], False
    for line in lines:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif started:
            break
    return rows[1:]                                   # without the header


def run(args, cwd=ROOT, timeout=300):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return r


def mask(line: str) -> str:
    """Timings masked, whitespace runs collapsed (columns padded around a timing shift)."""
    line = re.sub(r" \(earlier run, --no-train\)", "", line)
    line = re.sub(r"\b\d+\.\d+ s\b", "T s", line)
    return re.sub(r"\s+", " ", line).strip()


def close(value: float, stated: str) -> bool:
    """``value`` rounds to ``stated`` at the precision it is written with ("1.2e-11", "6e-7", "0.119")."""
    m = re.fullmatch(r"([+-]?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?", stated)
    assert m, stated
    digits = len(m.group(3) or "")
    exp = int(m.group(4) or 0)
    half = 0.5 * 10.0 ** (exp - digits)
    return abs(value - float(stated)) <= half * (1 + 1e-9)


# =============================================================================================
# examples/showcase
# =============================================================================================

SHOW_README = os.path.join(SHOW, "README.md")
FULL_OUTPUT = "## Full output"
EXCERPT = "## Excerpt for the project README"
# every command of the README's command block, with the test that runs it
SHOWCASE_COMMANDS = {
    "python examples/showcase/run_showcase.py": "test_showcase_quoted_output_is_what_it_prints (certification "
                                                "part, on the committed final.npz) and the training tests",
    "python examples/showcase/run_showcase.py --numpy": "test_showcase_numpy_trainer_same_conclusions",
    "python examples/showcase/run_showcase.py --no-train": "test_showcase_quoted_output_is_what_it_prints",
    "relucert certify examples/showcase/final.json": "test_showcase_cli_certify",
    "relucert check examples/showcase/certificate.json": "test_showcase_committed_certificate",
    "relucert certify examples/showcase/final.json --tol-kink 6e-8 --fixed-kink-tol": "test_showcase_other_reading",
}


def _showcase_mod(name):
    sys.path.insert(0, SHOW)
    try:
        import importlib
        return importlib.import_module(name)
    finally:
        sys.path.remove(SHOW)


@pytest.fixture(scope="module")
def showcase_no_train(tmp_path_factory):
    out = tmp_path_factory.mktemp("showcase")
    r = run([sys.executable, os.path.join(SHOW, "run_showcase.py"), "--no-train", "--outdir", str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, out


@pytest.fixture(scope="module")
def showcase_json():
    r = run(CLI + ["certify", os.path.join(SHOW, "final.json"), "--json"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_showcase_readme_commands_are_all_tested():
    text = readme(SHOW_README)
    cmds = [re.split(r"\s+#", line)[0].strip() for line in block_after(text, "```")]
    cmds = [c for c in cmds if c]
    assert set(cmds) == set(SHOWCASE_COMMANDS), cmds


def test_showcase_quoted_output_is_what_it_prints(showcase_no_train):
    """The README's full output and excerpt: every line is printed by run_showcase.py (timings masked);
    the certification part runs on the committed final.npz, which the torch run wrote."""
    out, folder = showcase_no_train
    printed = {mask(line) for line in out.split("\n")}
    text = readme(SHOW_README)
    full = block_after(text, FULL_OUTPUT)
    excerpt = [line for line in block_after(text, EXCERPT) if not line.startswith("$ ")]
    missing = [line for line in full + excerpt if mask(line) and mask(line) not in printed]
    assert not missing, "README lines not printed:\n" + "\n".join(missing) + "\n--- printed:\n" + out
    assert (folder / "certificate.json").exists() and (folder / "final.json").exists()
    # --outdir: the committed files are not the ones written
    with open(os.path.join(SHOW, "final.json")) as a, open(folder / "final.json") as b:
        assert a.read() == b.read()                 # final.npz and final.json hold the same point
    # 'What happens': at the certified saddle, +2.9e-7 and none of 5000 down; every neuron: 1 in 5000
    m = re.search(r"itself \(same amplitude\): min loss change (\S+) \((\d+) of (\d+) < 0\); perturbing every "
                  r"neuron, dead ones too: \S+ \((\d+) < 0\)", out)
    assert m and close(float(m.group(1)), "+2.9e-7") and m.groups()[1:] == ("0", "5000", "1")
    assert "minimum loss change is\n  +2.9e-7 and none of the 5000 trials goes down" in text
    assert "only 1 trial in 5000 lowers the loss" in text and "the same amplitude 9.29e-3" in text
    m = re.search(r"torch (\S+)\)", text[text.index(FULL_OUTPUT):].split("\n")[0])
    assert m and f"trained with torch {m.group(1)}" in out   # the version in the heading made final.npz


def test_showcase_numpy_trainer_same_conclusions(tmp_path):
    r = run([sys.executable, os.path.join(SHOW, "run_showcase.py"), "--numpy", "--outdir", str(tmp_path)],
            timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r"^conclusion\s+LOCAL MINIMUM\s+SADDLE \(not a local minimum\)$", out, re.M)
    assert re.search(r"^evidence\s+min loss change \+\S+ \(0 < 0\)\s+escape neuron 5, exact escape path$", out, re.M)
    assert "independent checker on certificate_numpy.json: OK, proves 'saddle'" in out
    assert re.search(r"the other reading, neuron 5 strictly dead .*--fixed-kink-tol\): refined point local_min, "
                     r"but .* \(a local minimum only within ~1e-11\)", out)
    assert sorted(os.listdir(tmp_path)) == ["certificate_numpy.json", "final_numpy.json", "final_numpy.npz"]


def test_showcase_cli_certify(showcase_json):
    d = showcase_json
    assert d["verdict"] == "saddle" and d["about"] == "refined point" and d["escape_neurons"] == [5]
    assert d["reading"] == "tiny_output_zero" and d["given"]["verdict"] == "not_stationary"
    text = readme(SHOW_README)
    assert "That point is about 1e-4 away" in text
    assert close(d["moved"]["max_abs"], "1e-4")
    rf = d["refined"]
    readings = {x["reading"]: x["verdict"] for x in rf["readings"]}
    assert readings == {"as_given": "not_stationary", "tiny_output_zero": "saddle", "tiny_zero": "saddle",
                        "snapped_as_dead": "local_min"}
    assert any("read as strictly dead instead of on their kinks" in a["what"] and "neurons [5]" in a["what"]
               for a in rf["ambiguities"])
    assert rf["tolerances"]["kink_used"] == 1e-4                  # the automatic raise finds no gap here
    snapped = rf["pattern_changes"]["snapped"]
    assert [(x["neuron"], x["data"]) for x in snapped] == [(5, 0)] and close(snapped[0]["relative_z"], "6e-7")
    assert rf["pattern_changes"]["tiny"] == [5]
    ep = rf["certificate"]["evidence"]["escape_path"]
    assert ep["neuron"] == 5 and ep["r"] == ["-1", "0", "0"] and ep["t_max"] is None
    for row, stated in zip(rf["escape_path_losses"], ("1.3029e-07", "1.3029e-10", "1.3029e-13")):
        assert close(float(Fraction(row["decrease"])), stated)
    r = run(CLI + ["certify", os.path.join(SHOW, "final.json")])
    assert r.returncode == 0 and "VERDICT: SADDLE" in r.stdout


def test_showcase_committed_certificate(showcase_json):
    path = os.path.join(SHOW, "certificate.json")
    r = run(CLI + ["check", path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "saddle" in r.stdout
    cert = json.load(open(path))
    assert cert["verdict"] == "saddle"
    fresh = showcase_json["refined"]["certificate"]
    # the certificate of the refined point, as the current tool writes it
    assert cert["point"] == fresh["point"] and cert["evidence"]["escape_path"] == fresh["evidence"]["escape_path"]
    # README: r = (-1, 0, 0), D = (0.008071)
    ep = cert["evidence"]["escape_path"]
    assert ep["r"] == ["-1", "0", "0"] and close(float(Fraction(ep["D"][0])), "0.008071")


def test_showcase_other_reading():
    """--tol-kink 6e-8 --fixed-kink-tol: neuron 5 strictly dead, local_min; without --fixed-kink-tol the
    tolerance is raised to 1.7e-5 (between 6e-7 and 5e-4), neuron 5 snaps again: saddle."""
    f = os.path.join(SHOW, "final.json")
    r = run(CLI + ["certify", f, "--tol-kink", "6e-8", "--fixed-kink-tol", "--json"])
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["verdict"] == "local_min" and d["about"] == "refined point"
    assert d["refined"]["tolerances"]["kink_used"] == 6e-8 and 5 in d["refined"]["pattern_changes"]["dead"]
    r = run(CLI + ["certify", f, "--tol-kink", "6e-8", "--json"])
    d = json.loads(r.stdout)
    assert d["verdict"] == "saddle" and close(d["refined"]["tolerances"]["kink_used"], "1.7e-5")
    text = readme(SHOW_README)
    assert "`relucert certify final.json --tol-kink 6e-8 --fixed-kink-tol`" in text
    assert "here to 1.7e-5, between\n6e-7 and 5e-4" in text


def test_showcase_other_reading_numbers():
    """The strictly-dead point: w_5.x_0 = -1.2e-11, radius ~1e-11, moving w_5 by 1e-9 x_0 lowers the loss
    by 2.1e-16, along w_5 + s x_0 at rate 2|a_5 e_0| |x_0|^2 / n = 2.1e-7 per unit of s."""
    import relucert
    rs = _showcase_mod("run_showcase")
    pb, pt = relucert.load(os.path.join(SHOW, "final.json"))
    sd = rs.strictly_dead_reading(pb, pt, 5, 0, 6e-8)
    assert sd["verdict"] == "local_min" and sd["kink_used"] == 6e-8
    assert close(float(sd["z"]), "-1.2e-11") and close(sd["radius"], "1e-11")
    assert close(float(sd["decrease"]), "2.1e-16")
    text = readme(SHOW_README)
    for s in ("lowers that\npoint's loss by 2.1e-16", "≈ 2.1e-7 per unit of s", "within about 1e-11"):
        assert s in text
    d = json.load(open(os.path.join(SHOW, "final.json")))
    X = [[Fraction(v) for v in r] for r in d["X"]]
    Y = [Fraction(r[0]) for r in d["Y"]]
    W = [[Fraction(v) for v in r] for r in d["W"]]
    A = [Fraction(r[0]) for r in d["A"]]
    f0 = sum(a * max(sum((p * q for p, q in zip(w, X[0])), Fraction(0)), 0) for w, a in zip(W, A))
    e0 = f0 - Y[0]
    rate = 2 * abs(A[5] * e0) * sum(q * q for q in X[0]) / len(X)
    assert close(float(rate), "2.1e-7")


def test_showcase_prose_numbers_on_the_end_point():
    """'What happens': w_5.x_0 = -1.2e-11 (relative -6e-7), the next nearest pair 5e-4, size ~1e-10 < 1e-6,
    e_0 ends at +0.119, a_5 < 0; the data; the plateau from step 25 000."""
    d = json.load(open(os.path.join(SHOW, "final.json")))
    X = np.array([[float(Fraction(v)) for v in r] for r in d["X"]])
    W = np.array([[float(Fraction(v)) for v in r] for r in d["W"]])
    A = np.array([float(Fraction(r[0])) for r in d["A"]])
    Y = np.array([float(Fraction(r[0])) for r in d["Y"]])
    Z = X @ W.T
    rel = Z / np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    assert close(Z[0, 5], "-1.2e-11") and close(rel[0, 5], "-6e-7")
    others = sorted(abs(v) for (i, j), v in np.ndenumerate(rel) if (i, j) != (0, 5))
    assert close(others[0], "5e-4") and others[0] > 1e-4
    size = abs(A[5]) * np.linalg.norm(W[5]) * np.linalg.norm(X, axis=1).max() / np.abs(Y).max()
    assert size < 1e-6 and close(size, "1e-10")
    e = np.maximum(Z, 0) @ A - Y
    assert close(e[0], "+0.119") and A[5] < 0
    text = readme(SHOW_README)
    for s in ("w₅·x₀ = −1.2e-11, a relative −6e-7", "6e-7 against\n  the 1e-4 tolerance; the next nearest pair is at 5e-4",
              "|a||w|·max|x|/max|y| ≈ 1e-10 < 1e-6", "it ends at +0.119"):
        assert s in text
    # data: README's **Data** paragraph
    sc = _showcase_mod("_showcase")
    Xd, Yd = sc.make_dataset(24, 5)
    assert [tuple(r[:2]) for r in Xd] == [("-0.34", "-0.19"), ("0.15", "0.01"), ("0.13", "0.14"), ("0.75", "-0.83"),
                                          ("0.48", "0.64")]
    assert all(r[2] == "1.0" for r in Xd) and [r[0] for r in Yd] == ["0.42", "-0.18", "0.89", "-0.94", "0.61"]
    assert d["X"] == Xd and d["Y"] == Yd
    z = np.load(os.path.join(SHOW, "final.npz"))
    rs = _showcase_mod("run_showcase")
    assert int(z["steps"]) == 50000 and rs.flat_since(z["curve_step"], z["curve_loss"]) == 25000
    assert list(np.diff(z["curve_step"][:-1])) == [1000] * (len(z["curve_step"]) - 2)   # recorded every 1000 steps


def test_showcase_training_history():
    """'The trap': neuron 5 starts active only on x_0 with a_5 < 0 while e_0 = -0.42; it dies at step
    ≈ 480; e_0 changes sign at step ≈ 3 350 (the torch run's first 3 600 steps, same protocol)."""
    pytest.importorskip("torch")
    sc = _showcase_mod("_showcase")
    rs = _showcase_mod("run_showcase")
    run_ = rs.RUN
    X, Y = sc.make_dataset(run_["data_seed"], run_["n"])
    z = np.load(os.path.join(SHOW, "init.npz"))
    W0, A0 = sc.torch_init(3, run_["width"], 1, run_["mu"], run_["seed"])
    assert np.array_equal(W0, z["W"]) and np.array_equal(A0, z["A"])     # init.npz is the torch initialisation
    assert A0[5, 0] < 0
    e0 = float(np.maximum(sc.as_float(X) @ W0.T.astype(float), 0)[0] @ A0.astype(float)[:, 0]) - float(Y[0][0])
    assert close(e0, "-0.42")
    h = sc.neuron_history(X, Y, run_["width"], run_["mu"], run_["lr"], run_["seed"], 3600, 5, 0)
    assert h["active_at_init"] == [0]
    assert abs(h["died"] - 480) <= 20, h
    assert len(h["sign_changes"]) == 1 and abs(h["sign_changes"][0] - 3350) <= 50, h
    text = readme(SHOW_README)
    assert "it dies at step ≈ 480" in text and "At step ≈ 3 350" in text and "e₀ = f(x₀) − y₀ = −0.42" in text


def test_showcase_perturbation_rule_reproduces_the_paper_dead_ids():
    """'the rule "relu output 0 on every data point" reproduces their hand-made dead_ids on the paper's
    1-D run exactly' (and examples/paper/README.md: the 13 tiny neurons are that list)."""
    sc = _showcase_mod("_showcase")
    d = json.load(open(os.path.join(PAPER, "1d_input_with_bias.json")))
    W = np.load(os.path.join(PAPER, "1d_input_with_bias_final.npz"))["W"]
    dead_ids = [1, 13, 15, 18, 25, 28, 33, 37, 39, 42, 47, 5, 9]          # the authors' notebook
    assert sc.dead_neurons(d["X"], W) == sorted(dead_ids)


def test_showcase_search_single_configuration(tmp_path):
    r = run([sys.executable, os.path.join(SHOW, "search.py"), "--data-seeds", "24", "--n", "5", "--seeds", "3",
             "--width", "10", "--mu=-5", "--max-iter", "40000", "--outdir", str(tmp_path)], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    hit = [line for line in r.stdout.split("\n") if line.startswith("HIT data  24 n 5 seed   3 width 10 mu -5")]
    assert len(hit) == 1 and "refined saddle (tiny_output_zero)" in hit[0] and "esc [5]" in hit[0]
    m = re.search(r"max snap (\S+) .* check min (\S+)", hit[0])
    assert close(float(m.group(1)), "6e-7") and close(float(m.group(2)), "+2.7e-7")
    assert "hits: [(24, 5, 3, 10, -5.0)]" in r.stdout
    text = readme(SHOW_README)
    assert "re-runs\njust this configuration in a few seconds and reports it as a HIT" in text


# =============================================================================================
# examples/paper
# =============================================================================================

PAPER_README = os.path.join(PAPER, "README.md")
RUNS = {"1d_input_with_bias": "1d", "3d_input": "3d", "2d_input_2d_output": "2d→2d"}


def _npz(name):
    return np.load(os.path.join(PAPER, name))


def test_paper_final_losses_table():
    rows = table_after(readme(PAPER_README), "| run | m | steps |")
    assert len(rows) == 3
    for cells in rows:
        name = re.match(r"`(\w+)`", cells[0]).group(1)
        z = _npz(f"{name}_final.npz")
        assert int(cells[1]) == z["W"].shape[0] and int(cells[2]) == int(z["step"])
        assert cells[3].split()[0] == repr(float(z["final_loss"]))
        n, d = z["X"].shape
        k = z["Y"].shape[1]
        assert f"(n={n}, d={d}, k={k})" in cells[0]


def test_paper_numpy_trainer_gaps():
    """'ends within one float32 ulp of torch's loss on 1d and 2d→2d (1d: +1.9e-9, 2d→2d: −7.5e-9) and
    1.2e-4 relative on 3d, whose loss is still falling (3d: +2.7e-9)'."""
    text = " ".join(readme(PAPER_README).split())
    m = re.search(r"\(1d: ([+−-][\d.e-]+), 2d→2d: ([+−-][\d.e-]+)\) and ([\d.e-]+) relative on 3d, whose loss is "
                  r"still falling \(3d: ([+−-][\d.e-]+)\)", text)
    assert m
    g1, g2, rel3, g3 = m.groups()

    def gap(name):
        return float(_npz(f"{name}_numpy_final.npz")["final_loss"]) - float(_npz(f"{name}_final.npz")["final_loss"])

    for name, stated in (("1d_input_with_bias", g1), ("2d_input_2d_output", g2)):
        assert close(gap(name), stated.replace("−", "-"))
        assert abs(gap(name)) <= np.spacing(np.float32(_npz(f"{name}_final.npz")["final_loss"]))   # one ulp
    assert close(gap("3d_input"), g3.replace("−", "-"))
    assert close(gap("3d_input") / float(_npz("3d_input_final.npz")["final_loss"]), rel3)


def test_paper_file_keys():
    for name in RUNS:
        f = _npz(f"{name}_final.npz")
        for key in ("X", "Y", "W", "A", "alpha_plus", "alpha_minus", "loss", "loss_convention", "X_float32",
                    "Y_float32", "step", "final_loss", "last_loop_loss"):
            assert key in f.files, (name, key)
        assert f["W"].dtype == np.float32 and f["A"].dtype == np.float32
        assert str(f["loss"]) == "mse" and str(f["loss_convention"]) == "mse"
        t = _npz(f"{name}_traj.npz")
        for key in ("W", "A", "step", "loss", "curve_step", "curve_loss", "X", "Y", "alpha_plus", "loss_convention"):
            assert key in t.files, (name, key)
        step = t["step"]
        early = step[(step > 0) & (step < 500)]
        assert step[0] == 0 and len(early) == 22
        late = step[step >= 500]
        assert list(np.diff(late[:-1])) == [500] * (len(late) - 2) and late[-1] == int(f["step"])
        assert list(np.diff(t["curve_step"][:10])) == [100] * 9
        assert _npz(f"{name}_init.npz")["W"].shape == f["W"].shape
        j = json.load(open(os.path.join(PAPER, f"{name}.json")))
        assert j["activation"] == "relu" and j["loss"] == "mse"
        Wj = np.array([[np.float32(Fraction(v)) for v in r] for r in j["W"]], dtype=np.float32)
        assert np.array_equal(Wj, f["W"])                              # read back bit for bit


def test_paper_plateau_table():
    sys.path.insert(0, PAPER)
    try:
        import plateaus
    finally:
        sys.path.remove(PAPER)
    rows = table_after(readme(PAPER_README), "| run | plateau | steps |")
    by_run: dict = {}
    short = {v: k for k, v in RUNS.items()}
    for cells in rows:
        name = short[cells[0]]
        i = int(cells[1])
        start, end = (int(x) for x in cells[2].split("–"))
        p = _npz(f"{name}_plateau{i}.npz")
        assert (int(p["plateau_start"]), int(p["plateau_end"]), int(p["step"])) == (start, end, int(cells[3]))
        assert cells[4] == repr(float(p["loss_value"]))
        assert close(float(p["grad_norm"]), cells[5])
        by_run.setdefault(name, []).append((start, end))
    for name, spans in by_run.items():
        t = _npz(f"{name}_traj.npz")
        assert plateaus.find_plateaus(t["curve_step"], t["curve_loss"]) == spans


def test_paper_1d_end_point():
    f = _npz("1d_input_with_bias_final.npz")
    X, W, A = f["X"], f["W"].astype(float), f["A"].astype(float)[:, 0]
    wn, xn = np.linalg.norm(W, axis=1), np.linalg.norm(X, axis=1)
    tiny = [j for j in range(50) if wn[j] < 1e-3]
    assert tiny == [1, 5, 9, 13, 15, 18, 25, 28, 33, 37, 39, 42, 47]
    assert close(wn[tiny].min(), "4e-6") and close(wn[tiny].max(), "2.3e-5") and np.abs(A[tiny]).max() <= 1.5e-5
    live = [j for j in range(50) if j not in tiny]
    ang = np.arctan2(W[:, 1], W[:, 0])
    Z = X @ W.T
    assert (Z[:, live] > 0).all()                                     # all active on all 5 points
    g1 = [j for j in live if A[j] > 0]
    g2 = [j for j in live if A[j] < 0]
    assert g1 == [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 17, 20, 22, 23, 24, 29, 30, 31, 32, 35, 36, 40, 41, 43, 45,
                  46, 48]
    assert g2 == [16, 19, 21, 26, 27, 34, 38, 44, 49]
    assert np.abs(ang[g1] - 2.5308).max() < 1e-4                      # angle ≈ 2.5308 rad
    assert ang[g2].min() >= 0.8755 and ang[g2].max() < 0.8855          # 0.876…0.885
    assert np.allclose(np.abs(A[live]), wn[live], rtol=1e-2)          # a_j ≈ |w_j|, balanced
    assert X[4].tolist() == [0.7, 1.0]
    z4 = Z[4, g1]
    assert close(z4.min(), "+1.4e-7") and close(z4.max(), "+6.2e-6")
    r4 = z4 / wn[g1] / xn[4]
    assert close(r4.min(), "2.3e-6") and close(r4.max(), "6.4e-5")
    rel2 = np.abs(Z[:, g2]) / np.outer(xn, wn[g2])
    assert rel2.min() >= 0.09
    assert close(Z[0, 18], "-2.2e-11") and close(abs(Z[0, 18]) / wn[18] / xn[0], "1.6e-6")


def test_paper_plateau2_kink_group():
    """'1d plateau 2: the 28 neurons at angle ≈ 2.531 rad all have |w·x_4| < 6.6e-6, 6 positive, 22 negative'."""
    p = _npz("1d_input_with_bias_plateau2.npz")
    X, W = p["X"], p["W"].astype(float)
    ang = np.arctan2(W[:, 1], W[:, 0])
    g = [j for j in range(W.shape[0]) if np.linalg.norm(W[j]) > 1e-3 and close(ang[j], "2.531")]
    z = X[4] @ W[g].T
    assert len(g) == 28 and np.abs(z).max() < 6.6e-6 and (z > 0).sum() == 6 and (z < 0).sum() == 22


# =============================================================================================
# examples/embedding
# =============================================================================================

EMB_README = os.path.join(EMB, "README.md")
# README row (point, operation) -> relucert embed arguments
EMBED_ROWS = {
    ("kink_min", "add zero neuron"): ["--add-neuron", "zero"],
    ("kink_min", "add dead neuron (−1,−1)"): ["--add-neuron", "dead"],
    ("kink_min", "add w = (1,−1) (Σ eᵢ σ(w·xᵢ) = 0)"): ["--add-neuron=1,-1"],
    ("kink_min", "add w = (−1,1) (Σ eᵢ σ(w·xᵢ) ≠ 0)"): ["--add-neuron=-1,1"],
    ("kink_min", "split β = (1/2,1/2), γ = (1,2)"): ["--split", "0", "--beta", "1/2,1/2", "--gamma", "1,2"],
    ("kink_min", "split β = (1,0)"): ["--split", "0", "--beta", "1,0"],
    ("kink_min", "split β = (2,−1)"): ["--split", "0", "--beta=2,-1"],
    ("diff_min", "add zero neuron"): ["--add-neuron", "zero"],
    ("diff_min", "add dead neuron"): ["--add-neuron", "dead"],
    ("diff_min", "split β = (1/3,2/3), γ = (2,1/2)"): ["--split", "0", "--beta", "1/3,2/3", "--gamma", "2,1/2"],
    ("diff_min", "split β = (1,0)"): ["--split", "0", "--beta", "1,0"],
    ("diff_min", "split β = (2,−1) (φ ≡ 0)"): ["--split", "0", "--beta=2,-1"],
    ("zero_not_escape", "add zero neuron (D ≡ 0)"): ["--add-neuron", "zero"],
    ("vec_kink_min", "add zero neuron"): ["--add-neuron", "zero"],
    ("vec_kink_min", "split β = (1/2,1/2)"): ["--split", "0", "--beta", "1/2,1/2"],
    ("vec_kink_min", "split β = (1,0)"): ["--split", "0", "--beta", "1,0"],
    ("vec_kink_min", "split β = (3/2,−1/2)"): ["--split", "0", "--beta=3/2,-1/2"],
    ("leaky_zero_input_min", "add zero neuron"): ["--add-neuron", "zero"],
    ("leaky_zero_input_min", "split β = (1,0)"): ["--split", "0", "--beta", "1,0"],
    ("leaky_zero_input_min", "split β = (2,−1)"): ["--split", "0", "--beta=2,-1"],
    ("vec_morse_bott_min", "split β = (1/2,1/2)"): ["--split", "0", "--beta", "1/2,1/2"],
    ("vec_morse_bott_min", "add zero neuron"): ["--add-neuron", "zero"],
    # two-step rows: (first operation, -o), then this one
    ("kink_min split (1,0)", "merge 0,1"): ("kink_min", ["--split", "0", "--beta", "1,0"], ["--merge", "0,1"]),
    ("diff_min split", "merge, permute"): ("diff_min", ["--split", "0", "--beta", "1/3,2/3", "--gamma", "2,1/2"],
                                          ["--merge", "0,1"]),
}


def _verdict(cell: str) -> str:
    return re.match(r"\**([a-z_]+)", cell).group(1)


def _cli(capsys, args):
    from relucert.cli import main
    rc = main(args)
    out = capsys.readouterr().out
    return rc, out


def test_embedding_hand_cases(capsys):
    rows = {re.match(r"`(\w+)\.json`", r[0]).group(1): r for r in table_after(readme(EMB_README), "| file | point |")}
    assert set(rows) == {f[:-5] for f in os.listdir(EMB) if f.endswith(".json")}
    files = {k: json.load(open(os.path.join(EMB, k + ".json"))) for k in rows}
    assert files["kink_min"]["X"] == [[1, 0], [0, 1]] and files["kink_min"]["W"] == [[1, 0]]
    assert files["diff_min"]["W"] == [["2/3", "2/3"]] and files["diff_min"]["Y"] == [[1], [1], [1]]
    assert files["zero_not_escape"]["X"] == [[1], [2]] and files["zero_not_escape"]["W"] == [["3/5"]]
    assert files["vec_kink_min"]["A"] == [[1, 2]] and files["vec_morse_bott_min"]["A"] == [[1, 0]]
    assert files["leaky_zero_input_min"]["activation"] == "leaky_relu:0.1" and files["leaky_zero_input_min"]["W"] == [[0]]
    for name, cells in rows.items():
        rc, out = _cli(capsys, ["certify", os.path.join(EMB, name + ".json"), "--json"])
        d = json.loads(out)
        assert rc == 0 and d["verdict"] == _verdict(cells[2]) == "local_min", name
        kinks = [k for n in d["given"]["neurons"] for k in n["kinks"]]
        if "(not differentiable)" in cells[2]:
            assert kinks, name
        if "(differentiable)" in cells[2]:
            assert not kinks, name
        if "loss 1/18" in cells[2]:
            assert d["loss"]["exact"] == "1/18" and d["loss"]["convention"] == "half_mean"
        if "Morse–Bott" in cells[2]:
            assert "Morse-Bott" in d["reason"] and d["escape_neurons"] == [0]


def test_embedding_predicted_versus_certified(capsys, tmp_path):
    rows = table_after(readme(EMB_README), "| point | operation | before |")
    assert {(r[0], r[1]) for r in rows} == set(EMBED_ROWS)
    for point, op, before, predicted, certified in rows:
        spec = EMBED_ROWS[(point, op)]
        if isinstance(spec, tuple):
            base, first, second = spec
            mid = str(tmp_path / f"{base}_mid.json")
            rc, _ = _cli(capsys, ["embed", os.path.join(EMB, base + ".json"), *first, "-o", mid])
            assert rc == 0
            src, args = mid, second
        else:
            src, args = os.path.join(EMB, point + ".json"), spec
        rc, out = _cli(capsys, ["embed", src, *args, "--certify", "--json"])
        c = json.loads(out)["comparison"]
        assert rc == 0 and c["checked"], (point, op)
        got = (c["before"], c["predicted"], c["certified"])
        assert got == (_verdict(before), _verdict(predicted), _verdict(certified)), (point, op, got)
        if op == "merge, permute":
            perm = str(tmp_path / "perm.json")
            rc, _ = _cli(capsys, ["embed", src, "--permute", "1,0", "-o", perm])
            rc2, out = _cli(capsys, ["certify", perm, "--json"])
            assert rc == rc2 == 0 and json.loads(out)["verdict"] == _verdict(certified)


def test_embedding_readme_commands(tmp_path, monkeypatch, capsys):
    """The command block, run in order (the CLI in-process) in a scratch folder (wide.json, vec2.json
    are written there)."""
    text = readme(EMB_README)
    i = text.index("Commands (values that start")
    lines = []
    for line in text[i:].split("\n")[1:]:
        if line.startswith("    relucert "):
            lines.append(re.split(r"\s+#", line.strip())[0].split()[1:])
        elif lines and not line.strip():
            if lines:
                break
    assert len(lines) == 10
    outs = []
    monkeypatch.chdir(tmp_path)
    for args in lines:
        args = [os.path.join(ROOT, a) if a.startswith("examples/") else a for a in args]
        rc, out = _cli(capsys, args)
        assert rc == 0, (args, out)
        outs.append(out)
    verdict_row = re.compile(r"^\s*(\w+)\s+(\w+)\s+(\w+)\s+(yes|no)$", re.M)
    assert verdict_row.search(outs[0]).groups() == ("local_min", "saddle", "saddle", "yes")
    assert verdict_row.search(outs[1]).groups() == ("local_min", "local_min", "local_min", "yes")
    assert verdict_row.search(outs[2]).groups() == ("local_min", "saddle", "saddle", "yes")
    assert (tmp_path / "wide.json").exists() and (tmp_path / "vec2.json").exists()
    assert verdict_row.search(outs[4]).groups() == ("saddle", "local_min", "local_min", "yes")
    # `symmetry vec2.json  # flat line, Hessian, second-order saddle`, and the Finding's exact polynomial
    assert "exactly flat" in outs[8] and "Hessian (exact" in outs[8]
    assert "SECOND-ORDER SADDLE: L(theta + t v) - L = [0, 0, -4/9, 0, 4/27]" in outs[8]
    assert "L(θ + t v) − L(θ) = −4/9 t² + 4/27 t⁴ exactly" in text
    # `symmetry --count --max-width 5  # enumerated groupings against T(r*, m) and G(r, m)`
    assert "findings: enumeration matches T and G for every (r, m) above" in outs[9]


def test_readme_own_model_walkthrough(tmp_path):
    """The README's 'Your own model' block: train the example torch model (seed 1), certify the
    state_dict with --torch; the answer quoted there (local_min of the refined point, decided at the
    neighbouring kink tolerance) is what it prints."""
    pytest.importorskip("torch")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "own"
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "own_model", "train.py"), "--seed", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "relucert.cli", "certify", "--torch", str(out / "ckpt.pt"),
                        "--data", str(out / "data.json")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    readme = open(os.path.join(root, "README.md")).read()
    block = readme.split("## Your own model, from clone to certificate")[1].split("## First example")[0]
    quoted = [ln for ln in block.split("```")[3].strip().splitlines() if not ln.endswith("...")]
    for line in quoted:
        assert line in r.stdout, line
    assert "VERDICT: LOCAL_MIN  for the refined point" in r.stdout
