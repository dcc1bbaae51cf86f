"""What `relucert screen` shows: the plateau table (whole-number neuron lists), plateau detection
under loss spikes (Adam), the conservation-drift line (gradient descent only), and the plots
(any d and k, PNG/PDF/SVG for print, legend, unwrapped angles)."""
import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from relucert.core.problem import Problem
from relucert.errors import InputError
from relucert.tools.screen import (PlateauOptions, PlateauRow, Trajectory, _representative, detect_plateaus,
                                   drift_line, is_gradient_descent, plateau_table, screen_arrays, summarise_list)

CLI = [sys.executable, "-m", "relucert.cli"]
PAPER = os.path.join(os.path.dirname(__file__), "..", "examples", "paper")
LIST_CELL = re.compile(r"\[([^\]]*)\]")


def _check_list_cell(cell: str, full: list) -> None:
    """A summarised list: whole numbers that are a prefix of the full list, then '… N more'."""
    items = [t.strip() for t in cell.split(",")]
    more = 0
    if items[-1].startswith("…"):
        m = re.fullmatch(r"… (\d+) more", items.pop())
        assert m, cell
        more = int(m.group(1))
    assert all(re.fullmatch(r"\d+", t) for t in items), cell
    assert [int(t) for t in items] == list(full[:len(items)]) and len(items) + more == len(full), (cell, full)


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------

def test_summarise_list_never_cuts_a_number():
    assert summarise_list([]) == "-"
    assert summarise_list([3, 7, 12]) == "[3, 7, 12]"
    long = [3, 7, 12] + list(range(100, 109))
    s = summarise_list(long, width=22)
    assert s == "[3, 7, 12, … 9 more]"
    _check_list_cell(LIST_CELL.search(s).group(1), long)
    for width in range(1, 60):
        for lst in (list(range(40)), [123456, 7, 999999999], [10 ** 30, 1]):
            s = summarise_list(lst, width)
            _check_list_cell(LIST_CELL.search(s).group(1), lst)
            assert len(s) <= width or s.count(",") == 1      # only a single leading number may overflow


def _full_lists(text: str) -> dict:
    """{(plateau, "escape neurons" | "grew after"): list} from the notes below a table."""
    res = {}
    for ln in text.splitlines():
        m = re.match(r"  plateau (\d+): (escape neurons|grew after) \((\d+)\): (.*)$", ln)
        if m:
            assert re.fullmatch(r"\d+(, \d+)*", m.group(4)), ln          # whole numbers, nothing cut
            res[(int(m.group(1)), m.group(2))] = [int(t) for t in m.group(4).split(", ")]
            assert len(res[(int(m.group(1)), m.group(2))]) == int(m.group(3))
    return res


def _row(i, esc, grown, verdict="saddle", ok=True):
    return PlateauRow(i, 0, 10, (1000 * i, 1000 * i + 500), 5, 0.1 / i, verdict, "tiny_zero", esc, grown, ok)


def test_plateau_table_lists_are_whole_numbers_and_complete_below():
    esc = [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 27, 29, 30]
    rows = [_row(1, esc, esc[:20]), _row(2, [16, 18], [18]), _row(3, [], [], "local_min", None)]
    table = plateau_table(rows, "mse")
    lines = table.splitlines()
    assert "loss (mse)" in lines[0]
    body = [ln for ln in lines if ln.strip()[:1].isdigit()]
    assert len(body) == 3
    # the columns line up: every row's verdict starts where the header's does
    col = lines[0].index("verdict")
    assert [ln[col:].split()[0] for ln in body] == ["saddle", "saddle", "local_min"]
    cells = LIST_CELL.findall(body[0])
    assert len(cells) == 2 and "more" in cells[0] and "more" in cells[1]
    _check_list_cell(cells[0], esc)
    _check_list_cell(cells[1], esc[:20])
    assert LIST_CELL.findall(body[1]) == ["16, 18", "18"]
    assert body[2].split()[-3:] == ["-", "-", "n/a"]
    # the complete lists of summarised rows follow the table, wrapped between numbers
    assert _full_lists(table) == {(1, "escape neurons"): esc, (1, "grew after"): esc[:20]}
    # without full lists, only the table
    assert len(plateau_table(rows, "mse", full_lists=False).splitlines()) == 4


# ------------------------------------------------------------------------------------------------
# plateaus under loss spikes
# ------------------------------------------------------------------------------------------------

def _adam_like(n_spikes=6, level=0.3, second=0.05, T=4000, spike_len=12, seed=0, within=(0.08, 0.52)):
    """A plateau at ``level`` for 60% of the run with ``n_spikes`` Adam-like spikes (a jump to 3x,
    decaying back within ``spike_len`` checkpoints) spread over the fractions ``within`` of the run,
    a drop, and a second plateau at ``second``."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    loss = np.empty(T)
    p1, drop = int(0.6 * T), int(0.05 * T)
    loss[:p1] = level * (1 - 1e-4 * t[:p1] / p1)
    loss[p1:p1 + drop] = level * (second / level) ** (np.arange(drop) / drop)
    loss[p1 + drop:] = second * (1 - 1e-4 * np.arange(T - p1 - drop) / T)
    starts = np.linspace(within[0] * T, within[1] * T, n_spikes).astype(int)
    for s in starts:
        k = np.arange(spike_len)
        loss[s:s + spike_len] *= 1 + 2.0 * np.exp(-k / (spike_len / 5))
    loss *= 1 + 1e-5 * rng.standard_normal(T)
    return t * 25, loss, starts


def test_adam_spikes_inside_one_plateau_give_one_plateau():
    step, loss, starts = _adam_like()
    pl = detect_plateaus(step, loss)
    assert len(pl) == 2, pl
    (s, e), second = pl
    assert s <= 5 and abs(e - int(0.6 * len(step))) < 40
    assert pl[0].spikes == 6 and second.spikes == 0
    # without merging, the spikes split the first plateau into 7
    unmerged = detect_plateaus(step, loss, PlateauOptions(spike_frac=0))
    assert len(unmerged) == 8
    # the representative checkpoint of a merged plateau is never inside a spike: ranges of it
    # whose middle falls in a spike are represented by a checkpoint of a flat stretch
    for s0 in starts:
        mid = s0 + 6
        half = min(mid, e - mid)
        rep = _representative(step, mid - half, mid + half, pl[0].segments)
        assert not any(a <= rep < a + 12 for a in starts) and abs(rep - mid) < 30, (rep, s0)
    assert _representative(step, 0, 100, [(0, 100)]) == 50            # no spikes: the middle, as before
    # the options show up in the JSON of the plateau options
    assert PlateauOptions().to_json()["spike_frac"] == 0.02 and PlateauOptions().to_json()["spike_tol"] == 0.01


def test_frequent_spikes_chopping_a_plateau_into_short_pieces():
    # every flat piece between spikes shorter than min_frac: found only because merging comes first
    step, loss, _ = _adam_like(n_spikes=40, T=8000, spike_len=10, within=(0.01, 0.59))
    assert len(detect_plateaus(step, loss, PlateauOptions(spike_frac=0))) == 1       # only the second
    pl = detect_plateaus(step, loss)
    assert len(pl) == 2 and pl[0].spikes == 40 and pl[0][0] == 0


@pytest.mark.parametrize("second", [0.27, 0.24, 0.15])
def test_different_plateau_levels_stay_two_plateaus(second):
    # a quick drop between two levels (10%, 20%, 50% apart) shorter than the spike length
    T = 3000
    t = np.arange(T)
    loss = np.where(t < 1500, 0.3, second) * (1 - 1e-5 * t / T)
    loss[1500:1520] = 0.3 * (second / 0.3) ** (np.arange(20) / 20)
    pl = detect_plateaus(t * 10, loss)
    assert len(pl) == 2 and pl[0].spikes == 0 == pl[1].spikes
    # and a spike on the way down (up, then to a new level) does not merge them either
    loss[1500:1510] = 0.6
    assert len(detect_plateaus(t * 10, loss)) == 2


def test_spike_tolerance_is_an_option():
    T = 3000
    t = np.arange(T)
    loss = np.where(t < 1500, 0.3, 0.298) * 1.0
    loss[1495:1510] = 0.9                     # a spike, after which the loss is 0.7% lower
    assert len(detect_plateaus(t, loss)) == 1
    assert len(detect_plateaus(t, loss, PlateauOptions(spike_tol=0.005))) == 2
    assert len(detect_plateaus(t, loss, PlateauOptions(spike_frac=0.002))) == 2   # spike longer than allowed


# ------------------------------------------------------------------------------------------------
# the conservation-drift line
# ------------------------------------------------------------------------------------------------

def _tiny_screen():
    pb = Problem.make(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0], [-1.0]]), "relu")
    rng = np.random.default_rng(1)
    return screen_arrays(pb, rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 1)))


@pytest.mark.parametrize("opt, gd", [("sgd", True), ("SGD", True), ("torch.optim.SGD", True), ("gd", True),
                                     ("gradient_flow", True), ("gradient descent", True),
                                     ("sgd(momentum=0)", True), ("adam", False), ("AdamW", False),
                                     ("sgd(momentum=0.9)", False), ("rmsprop", False), (None, None), ("", None)])
def test_is_gradient_descent(opt, gd):
    assert is_gradient_descent(opt) is gd


def test_drift_line_conditions():
    sc = _tiny_screen()
    sgd = drift_line(sc, "sgd")
    assert sgd.startswith("balance |w_j|^2-|a_j|^2: max drift") and "only" not in sgd
    unknown = drift_line(sc, None)
    assert "(meaningful for gradient descent only" in unknown
    assert drift_line(sc, "adam") is None
    sc.balance = None
    assert drift_line(sc, "sgd") is None and drift_line(sc, None) is None


def _spiky_traj_npz(path, loss, optimizer=None):
    """X = [[1]], Y = [[1]], one neuron w = a = s with half_mean loss (s^2 - 1)^2 / 2 = loss."""
    s = np.sqrt(1 - np.sqrt(2 * np.asarray(loss)))
    W = s[:, None, None] * np.ones((1, 1, 1))
    extra = {} if optimizer is None else {"optimizer": np.array(optimizer)}
    np.savez(path, X=np.array([[1.0]]), Y=np.array([[1.0]]), W=W, A=W.copy(), step=np.arange(len(loss)) * 25,
             loss_convention=np.array("half_mean"), **extra)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", None])
def test_screen_cli_drift_line_and_spikes(tmp_path, optimizer):
    step, loss, _ = _adam_like(T=2000, level=0.1, second=0.02)
    p = tmp_path / "adam.npz"
    _spiky_traj_npz(p, loss, optimizer)
    r = subprocess.run(CLI + ["screen", str(p), "--no-certify"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    steps = [ln for ln in out.splitlines() if ln.startswith("  steps ")]
    assert len(steps) == 2 and "(6 short loss spike(s) merged)" in steps[0], out
    drift = [ln for ln in out.splitlines() if ln.startswith("balance")]
    if optimizer == "adam":
        assert drift == [] and "optimizer adam" in out.splitlines()[0]
    elif optimizer == "sgd":
        assert len(drift) == 1 and "only" not in drift[0]
    else:
        assert len(drift) == 1 and "(meaningful for gradient descent only" in drift[0]
    j = json.loads(subprocess.run(CLI + ["screen", str(p), "--no-certify", "--json"], capture_output=True,
                                  text=True).stdout)
    assert j["optimizer"] == optimizer and [pl["spikes"] for pl in j["plateaus"]] == [6, 0]
    assert ("balance_drift_max" in j) == (optimizer != "adam")
    assert j["plateau_options"]["spike_frac"] == 0.02
    # switched off from the command line: the spikes split the plateau again
    r = subprocess.run(CLI + ["screen", str(p), "--no-certify", "--plateau-spike", "0"], capture_output=True, text=True)
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("  steps ")]) == 8, r.stdout


def test_screen_help_documents_optimizer_key():
    r = subprocess.run(CLI + ["screen", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "optimizer" in text and "'adam'" in text and "--plateau-spike" in text and "(default 0.02)" in text


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------

def _png_info(path):
    """(width, height, dpi or None) from a PNG's IHDR and pHYs chunks."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, w, h, dpi = 8, None, None, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"pHYs":
            px, _, unit = struct.unpack(">IIB", body)
            if unit == 1:
                dpi = px * 0.0254
        pos += 12 + n
    return w, h, dpi


def _synthetic(kind, m=4, T=400):
    """Trajectories with neurons that turn through +-180 degrees several times."""
    rng = np.random.default_rng(7)
    t = np.linspace(0, 1, T)[:, None]
    turn = 2 * np.pi * (0.3 + 3 * np.arange(m)[None, :] / max(m - 1, 1)) * t + rng.uniform(0, 6.3, m)  # T x m
    r = 1e-3 + t * rng.uniform(0.5, 2.0, m)
    if kind == "1d_bias":                 # x in R, bias column: W = (w, b)
        X = np.column_stack([np.linspace(-1, 1, 6), np.ones(6)])
        W = np.stack([r * np.cos(turn), r * np.sin(turn)], axis=2)
        k = 1
    elif kind == "2d_bias":               # d = 3 with a bias column (the middle one, to be found)
        X = np.column_stack([rng.normal(size=5), np.ones(5), rng.normal(size=5)])
        W = np.stack([r * np.cos(turn), 0.1 + 0 * r, r * np.sin(turn)], axis=2)
        k = 1
    elif kind == "3d":
        X = rng.normal(size=(7, 3))
        W = np.stack([r * np.cos(turn), r * np.sin(turn), r * np.cos(2 * turn)], axis=2)
        k = 1
    else:                                 # k = 2 (vector output), d = 2
        X = rng.normal(size=(4, 2))
        W = np.stack([r * np.cos(turn), r * np.sin(turn)], axis=2)
        k = 2
    Y = rng.normal(size=(X.shape[0], k))
    A = r[:, :, None] * rng.normal(size=(1, m, k))
    pb = Problem.make(X, Y, "relu", "mse")
    traj = Trajectory(pb, W, A, np.arange(T) * 50, None, f"{kind}.npz")
    return traj, screen_arrays(pb, W, A)


@pytest.mark.parametrize("kind, angle", [("1d_bias", True), ("3d", False), ("2d_bias", True), ("k2", True)])
def test_plots_any_d_and_k(tmp_path, kind, angle):
    pytest.importorskip("matplotlib")
    from relucert.tools.plots import plot_screen
    traj, sc = _synthetic(kind)
    rows = [_row(1, [0, 2], [2]), _row(2, [], [], "local_min", None)]
    rows[0].step_range, rows[1].step_range = (0, 4000), (12000, 19950)
    infos = {}
    for fmt in ("png", "pdf", "svg"):
        out = tmp_path / f"{kind}.{fmt}"
        info = plot_screen(traj, sc, rows, str(out))
        infos[fmt] = info
        data = out.read_bytes()
        assert info["format"] == fmt and info["file"] == str(out)
        magic = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}[fmt]
        assert data.startswith(magic)
        if fmt == "png":
            w, h, dpi = _png_info(out)
            assert (dpi is not None and dpi >= 299.5) or w >= 2000, (w, h, dpi)
            assert w >= 2000 and [w, h] == info["size_px"]
        if fmt == "svg":
            assert b"<svg" in data[:2000]
    info = infos["png"]
    panels = ["loss", "w_norm", "a_norm", "cos_final"] + (["angle"] if angle else [])
    assert info["panels"] == panels and info["n_panels"] == len(panels)
    assert info["legend_entries"] == 4 and info["legend_title"] == "neuron j"     # all 4 neurons, no grey
    assert info["loss_legend_entries"] == 2                                        # saddle, local_min
    assert len({tuple(map(str, v)) for v in info["neuron_styles"].values()}) == 4
    ns = info["neurons"]
    idx = [int(s) // 50 for s in ns["step"]]
    # vector output: |a_j| is the norm of the row
    assert np.allclose(np.array(ns["a_norm"]).T, np.linalg.norm(traj.A[idx], axis=2))
    assert np.allclose(np.array(ns["w_norm"]).T, np.linalg.norm(traj.W[idx], axis=2))
    cos = np.array(ns["cos_final"])
    assert np.allclose(cos[:, -1], 1.0) and np.nanmax(np.abs(cos)) <= 1.0
    if angle:
        ang = np.radians(np.array(ns["angle_deg"]))
        assert np.abs(np.diff(ang, axis=1)).max() < np.pi             # no wrap-around jump
        assert info["max_angle_jump_deg"] < 180
        assert (np.ptp(ang, axis=1) > 2 * np.pi).any()                 # the neurons did turn all the way round
        assert np.all(np.abs(ang[:, -1]) <= np.pi + 1e-9)
        assert ns["bias_column"] == {"1d_bias": 1, "2d_bias": 1, "k2": None}[kind]
    else:
        assert ns["angle_deg"] is None and info["max_angle_jump_deg"] is None
    json.dumps(info)                                                  # the data is plain JSON


def test_plot_legend_for_many_neurons(tmp_path):
    pytest.importorskip("matplotlib")
    from relucert.tools.plots import plot_screen
    traj, sc = _synthetic("1d_bias", m=25, T=120)
    info = plot_screen(traj, sc, [], str(tmp_path / "many.svg"))
    final = np.sqrt((traj.W[-1] ** 2).sum(1) + (traj.A[-1] ** 2).sum(1))
    assert info["neurons_shown"] == sorted(np.argsort(-final)[:20].tolist())
    assert info["legend_entries"] == 21 and "20 of 25 largest by final" in info["legend_title"]
    assert info["loss_legend_entries"] == 0
    info = plot_screen(traj, sc, [], str(tmp_path / "all.pdf"), top=0)
    assert info["legend_entries"] == 25 and info["legend_title"] == "neuron j"
    styles = [tuple(map(str, v)) for v in info["neuron_styles"].values()]
    assert len(set(styles)) == 25                                    # colours cycle with line styles past 10
    assert len({s[0] for s in styles[:10]}) == 10


def test_plot_angles_of_subsampled_random_walks_never_jump(tmp_path):
    # neurons wandering through the origin, more checkpoints than plotted samples
    pytest.importorskip("matplotlib")
    from relucert.tools.plots import MAX_GREY, MAX_POINTS, plot_screen
    rng = np.random.default_rng(0)
    T, m = 3 * MAX_POINTS + 17, 2 * MAX_GREY
    W = np.cumsum(rng.normal(size=(T, m, 2)) * 0.01, axis=0)
    A = np.cumsum(rng.normal(size=(T, m, 1)) * 0.01, axis=0)
    pb = Problem.make(rng.normal(size=(6, 2)), rng.normal(size=(6, 1)), "relu")
    traj = Trajectory(pb, W, A, np.arange(T), None, "walk.npz")
    info = plot_screen(traj, screen_arrays(pb, W, A), [], str(tmp_path / "walk.png"))
    ang = np.array(info["neurons"]["angle_deg"])
    assert ang.shape == (m, len(info["neurons"]["step"])) and ang.shape[1] <= MAX_POINTS + 1
    assert np.abs(np.diff(ang, axis=1)).max() <= 180 + 1e-9 and info["max_angle_jump_deg"] <= 180 + 1e-9
    assert info["neurons"]["step"][-1] == T - 1
    assert info["neurons_grey"] == m - 20 and info["neurons_grey_drawn"] == MAX_GREY
    assert info["legend_entries"] == 21


def test_plot_format_and_missing_matplotlib(tmp_path, monkeypatch):
    from relucert.tools import plots
    with pytest.raises(InputError, match="use .png, .pdf or .svg"):
        plots.plot_format("out.jpg")
    assert plots.plot_format("A.PDF") == "pdf"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InputError, match=r"plots need matplotlib, an optional extra: pip install"):
        plots.check_plot_path(str(tmp_path / "x.png"))


def test_screen_cli_bad_plot_extension_fails_fast(tmp_path):
    r = subprocess.run(CLI + ["screen", os.path.join(PAPER, "1d_input_with_bias_traj.npz"), "--plot",
                              str(tmp_path / "p.jpg")], capture_output=True, text=True)
    assert r.returncode == 2 and "use .png, .pdf or .svg" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# end to end on the paper's 1-D run
# ------------------------------------------------------------------------------------------------

def test_screen_cli_paper_1d_table_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "OUT.png"
    r = subprocess.run(CLI + ["screen", os.path.join(PAPER, "1d_input_with_bias_traj.npz"), "--plot", str(png)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    body = [ln for ln in lines if ln.strip()[:1].isdigit() and "-" in ln]
    assert [ln.split()[3] for ln in body] == ["saddle", "saddle", "local_min"], r.stdout
    # the complete lists below the table
    full = _full_lists(r.stdout)
    assert (1, "escape neurons") in full and (1, "grew after") in full
    seen = 0
    for ln in body:
        i = int(ln.split()[0])
        cells = LIST_CELL.findall(ln)
        for name, cell in zip(("escape neurons", "grew after"), cells):
            if "more" in cell:
                _check_list_cell(cell, full[(i, name)])
                seen += 1
            else:
                assert all(re.fullmatch(r"\d+", t.strip()) for t in cell.split(",")), cell
    assert seen >= 2
    drift = [ln for ln in lines if ln.startswith("balance")]
    assert len(drift) == 1 and "(meaningful for gradient descent only" in drift[0]
    w, h, dpi = _png_info(png)
    assert dpi is not None and dpi >= 299.5 and w >= 2000
