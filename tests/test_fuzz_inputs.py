"""Fuzzing the loaders and the checker with malformed input (hypothesis): whatever the bytes, the
result is a definite outcome or a one-line InputError / a rejection -- never another exception.

Runs in-process (the loaders and the checker are what the CLI calls), so hundreds of inputs take
seconds; the CLI's own one-line handling is covered by tests/test_hostile.py."""
from __future__ import annotations

import copy
import io as _io
import json
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import relucert
from relucert.check import check_certificate
from relucert.errors import InputError
from relucert.io import load

BASE = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0]], "A": [[1]]}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.one_of(
    st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=12),
    st.sampled_from(["1e999999999", "-1e-999999999", "1/0", "3/7", "0x10", "1_000", "1e", ".", "--1", "nan",
                     "inf", "1" * 5000, "1/" + "7" * 4400, "1e10001", " 2 ", "١٢"]),
)
values = st.recursive(numbers, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                            max_size=3), max_leaves=12)


def _outcome(path: str) -> str:
    """Load and certify exactly as given; anything but InputError is a bug."""
    try:
        pb, pt = load(path)
    except InputError as e:
        msg = str(e)
        assert "\n" not in msg and len(msg) <= 800, msg[:300]
        return "refused"
    res = relucert.certify(pb, pt)
    assert check_certificate(res.certificate).ok
    return res.verdict


@SETTINGS
@given(key=st.sampled_from(["X", "Y", "W", "A", "activation", "loss"]), value=values)
def test_malformed_fields_of_a_problem_file(tmp_path, key, value):
    obj = dict(BASE, **{key: value})
    p = tmp_path / "p.json"
    try:
        p.write_text(json.dumps(obj))
    except ValueError:                      # the value itself cannot be written as JSON (e.g. NaN is fine; huge ints)
        return
    _outcome(str(p))


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_as_json_and_npz(tmp_path, data):
    for name in ("p.json", "p.npz"):
        p = tmp_path / name
        p.write_bytes(data)
        assert _outcome(str(p)) == "refused" or data        # empty files are refused


@SETTINGS
@given(cut=st.integers(0, 2000), flip=st.integers(0, 2000))
def test_damaged_npz_archives(tmp_path, cut, flip):
    buf = _io.BytesIO()
    np.savez(buf, X=np.eye(2), Y=np.array([[1.0], [-1.0]]), W=np.array([[1.0, 0.0]]), A=np.array([[1.0]]))
    raw = bytearray(buf.getvalue())
    raw = raw[: max(1, len(raw) - cut)]
    if raw:
        raw[flip % len(raw)] ^= 0xFF
    p = tmp_path / "d.npz"
    p.write_bytes(bytes(raw))
    _outcome(str(p))


def test_npz_with_pickled_arrays_is_refused(tmp_path):
    p = tmp_path / "pickle.npz"
    with zipfile.ZipFile(p, "w") as z:
        for key in ("X", "Y", "W", "A"):
            b = _io.BytesIO()
            np.save(b, np.array([[1, 0]], dtype=object), allow_pickle=True)
            z.writestr(f"{key}.npy", b.getvalue())
    assert _outcome(str(p)) == "refused"


CERT = None


def _certificate():
    global CERT
    if CERT is None:
        pb, pt = relucert.io.problem_point_from_dict(BASE)
        CERT = relucert.certify(pb, pt).certificate
    return copy.deepcopy(CERT)


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))
    yield prefix


@SETTINGS
@given(data=st.data(), value=values)
def test_mutated_certificates_are_rejected_cleanly(data, value):
    cert = _certificate()
    paths = [p for p in _paths(cert) if p]
    path = data.draw(st.sampled_from(paths))
    node = cert
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    res = check_certificate(cert)            # never raises
    assert res.ok or (res.reasons and all("\n" not in r for r in res.reasons))
