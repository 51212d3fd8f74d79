"""The on-disk cache of reference optima (``harness.cache``, ``harness.reference.optimum(task=...)``).

A cache hit must return the very ``Reference`` a solve returns, to the bit, and a file that a
method's code could have written (a shifted minimizer, NaNs, a pickle, garbage) must never
change ``f*``: it is rejected, solved again and overwritten.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import harness.reference as reference
from harness.cache import cache_dir, load_arrays, save_arrays
from harness.reference import cache_key, optimum


def logistic(n: int = 300, d: int = 8, l2: float = 1e-3, seed: int = 0):
    """A small regularized logistic regression: ``fun, grad, hess, x0, data``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)

    def fun(w):
        return float(np.mean(np.logaddexp(0.0, -y * (X @ w))) + l2 * (w @ w))

    def grad(w):
        p = 1.0 / (1.0 + np.exp(y * (X @ w)))
        return X.T @ (-y * p) / n + 2.0 * l2 * w

    def hess(w):
        s = 1.0 / (1.0 + np.exp(-(X @ w)))
        return (X.T * (s * (1.0 - s))) @ X / n + 2.0 * l2 * np.eye(d)

    return fun, grad, hess, np.zeros(d), (X, y)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "reference"))
    return tmp_path / "reference"


@pytest.fixture
def solves(monkeypatch):
    """How many times the solver ran."""
    count = {"n": 0}
    solve = reference.minimize

    def counting(*args, **kwargs):
        count["n"] += 1
        return solve(*args, **kwargs)

    monkeypatch.setattr(reference, "minimize", counting)
    return count


def cached(fun, grad, hess, x0, data, **extra):
    return optimum(fun, grad, hess, x0, task="toy", params={"n": 300}, data=data, **extra)


def assert_same(a, b) -> None:
    assert a.f_star == b.f_star and a.f_star.hex() == b.f_star.hex()
    assert a.x_star.dtype == b.x_star.dtype and a.x_star.tobytes() == b.x_star.tobytes()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    for off in ("off", "", "0", "None"):
        monkeypatch.setenv("HARNESS_CACHE_DIR", off)
        assert cache_dir() is None
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "harness" / "reference"


def test_a_hit_is_the_solve_to_the_bit_and_solves_nothing(folder, solves) -> None:
    problem = logistic()
    uncached = optimum(*problem[:4])
    cold = cached(*problem)
    assert solves["n"] == 2 and len(list(folder.glob("toy-*.npz"))) == 1
    warm = cached(*problem)
    assert solves["n"] == 2  # read, not solved
    assert_same(cold, uncached)
    assert_same(warm, uncached)
    assert not warm.x_star.flags.writeable
    with pytest.raises(ValueError):
        warm.x_star.setflags(write=True)


def test_off_writes_nothing(folder, solves, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", "off")
    problem = logistic()
    cached(*problem)
    cached(*problem)
    assert solves["n"] == 2 and not folder.exists()


def _only_file(folder):
    (path,) = folder.glob("toy-*.npz")
    return path


def _cached_once(folder):
    """The logistic toy solved uncached, then once through the cache: (problem, uncached, its file, cached x*)."""
    problem = logistic()
    uncached = optimum(*problem[:4])
    cached(*problem)
    path = _only_file(folder)
    return problem, uncached, path, load_arrays(path)["x_star"]


@pytest.mark.parametrize("shift", [1e-9, 1e-6, 1e-2])
def test_a_shifted_minimizer_is_rejected_and_overwritten(folder, solves, shift) -> None:
    problem, uncached, path, x = _cached_once(folder)
    forged = x + shift * np.sign(np.arange(x.size) % 2 - 0.5)  # what a method could write there
    assert save_arrays(path, x_star=forged)
    before = solves["n"]
    again = cached(*problem)
    assert solves["n"] == before + 1  # solved again
    assert_same(again, uncached)
    assert load_arrays(path)["x_star"].tobytes() == uncached.x_star.tobytes()  # and overwritten
    assert_same(cached(*problem), uncached)
    assert solves["n"] == before + 1


def _forgeries(x: np.ndarray):
    yield "nan", {"x_star": np.full_like(x, np.nan)}
    yield "shape", {"x_star": np.concatenate([x, [0.0]])}
    yield "float32", {"x_star": x.astype(np.float32)}
    yield "extra array", {"x_star": x, "f_star": np.array(-1.0)}
    yield "other name", {"w": x}
    yield "zeros", {"x_star": np.zeros_like(x)}


@pytest.mark.parametrize("kind", [name for name, _ in _forgeries(np.zeros(1))] + ["garbage", "pickle", "empty"])
def test_a_forged_or_damaged_file_never_changes_f_star(folder, solves, kind) -> None:
    problem, uncached, path, x = _cached_once(folder)
    if kind == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip file" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":
        with path.open("wb") as file:  # an object array is stored as a pickle: refused, never run
            np.savez(file, x_star=np.array([x, "payload"], dtype=object))
    else:
        path.unlink()
        with path.open("wb") as file:
            np.savez(file, **dict(_forgeries(x))[kind])
    before = solves["n"]
    assert_same(cached(*problem), uncached)
    assert solves["n"] == before + 1
    assert load_arrays(path)["x_star"].tobytes() == uncached.x_star.tobytes()


def test_a_pickle_is_never_loaded(tmp_path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, x_star=np.array([{"a": 1}], dtype=object))
    assert load_arrays(path) is None
    with pytest.raises(TypeError):
        save_arrays(path, x_star=np.array([{"a": 1}], dtype=object))


def test_a_solve_that_misses_the_tolerance_is_not_cached(folder, solves) -> None:
    problem = logistic()
    cached(*problem, maxiter=1, polish_steps=0)
    assert not list(folder.glob("toy-*.npz"))


def test_the_key_names_everything_that_determines_the_minimizer(tmp_path) -> None:
    source = tmp_path / "task.py"
    source.write_text("a = 1\n")
    X = np.arange(6.0).reshape(3, 2)
    base = cache_key("t", {"l2": 1e-3}, [source], [X], x0=np.zeros(2), options={})
    assert base == cache_key("t", {"l2": 1e-3}, [source], [X.copy()], x0=np.zeros(2), options={})
    others = [
        cache_key("u", {"l2": 1e-3}, [source], [X], x0=np.zeros(2), options={}),
        cache_key("t", {"l2": 2e-3}, [source], [X], x0=np.zeros(2), options={}),
        cache_key("t", {"l2": 1e-3}, [source], [X + np.eye(3, 2) * 1e-12], x0=np.zeros(2), options={}),
        cache_key("t", {"l2": 1e-3}, [source], [X], x0=np.ones(2), options={}),
        cache_key("t", {"l2": 1e-3}, [source], [X], x0=np.zeros(2), options={"gtol": 1e-6}),
        cache_key("t", {"l2": 1e-3}, [tmp_path / "missing.py"], [X], x0=np.zeros(2), options={}),
    ]
    source.write_text("a = 2\n")  # the task's source changed
    others.append(cache_key("t", {"l2": 1e-3}, [source], [X], x0=np.zeros(2), options={}))
    assert base not in others and len(set(others)) == len(others)


def _logreg_module():
    from harness.catalog import Catalog

    entry = Catalog.load().tasks["logreg"]
    return sys.modules[entry.resolve(entry.spec.implementations["torch"]).__module__]


def test_the_logreg_task_reads_its_cache_and_rejects_a_forged_one(folder, solves, monkeypatch) -> None:
    logreg = _logreg_module()
    params = {"dataset": "synthetic", "n": 200, "d": 5, "l2": 5e-4, "data_seed": 3}
    monkeypatch.setenv("HARNESS_CACHE_DIR", "off")
    uncached = logreg._reference.__wrapped__(*logreg.binary_key("synthetic", 200, 5, 3), 5e-4)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(folder))
    cold = logreg._reference.__wrapped__(*logreg.binary_key("synthetic", 200, 5, 3), 5e-4)
    (path,) = folder.glob("logreg-*.npz")
    before = solves["n"]
    warm = logreg._reference.__wrapped__(*logreg.binary_key("synthetic", 200, 5, 3), 5e-4)
    assert solves["n"] == before
    assert_same(cold, uncached)
    assert_same(warm, uncached)
    assert logreg.reference(**params).f_star == uncached.f_star
    # A method's module writes a shifted x* where the task will look for it.
    save_arrays(path, x_star=load_arrays(path)["x_star"] * (1 + 1e-7))
    forged = logreg._reference.__wrapped__(*logreg.binary_key("synthetic", 200, 5, 3), 5e-4)
    assert solves["n"] == before + 1
    assert_same(forged, uncached)
