"""Data sets shared by the task modules, as cached read-only numpy arrays.

:func:`sklearn_dataset` reads one of scikit-learn's bundled data sets (no download) and
standardizes its features; :func:`binary_classification` is the recipe of the ``logreg`` task
(synthetic logistic data, or a bundled set with labels in {-1, +1}) that other tasks reuse.
scikit-learn is imported only when a bundled set is first read, so a task on synthetic data
never pays for it.

Examples
--------
>>> X, target = sklearn_dataset("digits")  # doctest: +SKIP
>>> X.shape, target.shape  # doctest: +SKIP
((1797, 64), (1797,))
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from harness.arrays import immutable

__all__ = [
    "BINARY_DATASETS",
    "SKLEARN_DATASETS",
    "binary_classification",
    "binary_key",
    "holdout_parts",
    "holdout_split",
    "sklearn_dataset",
    "sklearn_raw",
    "standardize",
]

#: The bundled scikit-learn data sets :func:`sklearn_dataset` reads.
SKLEARN_DATASETS = ("breast_cancer", "digits")

#: The data sets of :func:`binary_classification`.
BINARY_DATASETS = ("synthetic", "breast_cancer", "digits")


def standardize(X: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column; a constant column becomes zeros (not NaN).

    Digits has always-blank border pixels: their standard deviation is taken as 1.
    """
    std = X.std(axis=0)
    std[std == 0.0] = 1.0
    return (X - X.mean(axis=0)) / std


@functools.cache
def sklearn_raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The unstandardized float64 features and int64 targets of a bundled set (read-only, cached).

    Digits' features are then the pixel intensities 0..16 (mtl-digits' centroid targets read them).
    """
    if name not in SKLEARN_DATASETS:
        raise ValueError(f"unknown scikit-learn data set {name!r}; choose one of {list(SKLEARN_DATASETS)}")
    data, target = _read_bundled(name)
    return immutable(np.asarray(data, dtype=np.float64)), immutable(np.asarray(target, dtype=np.int64))


@functools.cache
def sklearn_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Standardized float64 features and int64 targets of a bundled scikit-learn data set.

    Parameters
    ----------
    name
        ``breast_cancer`` (569 x 30, target 1 = benign) or ``digits`` (1797 x 64, 8x8 images,
        target the digit 0..9).

    Returns
    -------
    tuple of numpy.ndarray
        ``X`` (n, d), C-contiguous, each column standardized by :func:`standardize`; the
        targets (n,). Both read-only and cached: every caller shares them.
    """
    data, target = sklearn_raw(name)
    return immutable(np.asarray(standardize(data), dtype=np.float64)), target


def binary_key(dataset: str, n: int, d: int, data_seed: int) -> tuple[str, int, int, int]:
    """The validated cache key of :func:`binary_classification`.

    ``n``, ``d`` and ``data_seed`` matter for synthetic data only: real data get zeros there.
    """
    if dataset not in BINARY_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(BINARY_DATASETS)}")
    if dataset == "synthetic":
        if int(n) < 1 or int(d) < 1:
            raise ValueError(f"synthetic data need n >= 1 and d >= 1 (got n={n}, d={d})")
        return dataset, int(n), int(d), int(data_seed)
    return dataset, 0, 0, 0


def binary_classification(
    dataset: str = "synthetic", n: int = 1000, d: int = 20, data_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (n, d) and labels ``y`` in {-1, +1}, as read-only float64 arrays (cached).

    Parameters
    ----------
    dataset
        ``synthetic``: ``rng = default_rng(data_seed)``; ``X = rng.standard_normal((n, d))``;
        ``w0 = rng.standard_normal(d) * 3 / sqrt(d)``; ``y = +1 if rng.random(n) < sigmoid(X w0)
        else -1`` (in this order). ``breast_cancer``: scikit-learn's 569 x 30, +1 = benign.
        ``digits``: scikit-learn's 1797 x 64, +1 = even digit. Real features are standardized.
    n, d, data_seed
        Size and seed of the synthetic data; ignored for the real data sets.
    """
    return _binary(*binary_key(dataset, n, d, data_seed))


@functools.cache
def _binary(dataset: str, n: int, d: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "synthetic":
        import scipy.special

        rng = np.random.default_rng(data_seed)
        X = rng.standard_normal((n, d))
        w0 = rng.standard_normal(d) * 3.0 / np.sqrt(d)
        y = np.where(rng.random(n) < scipy.special.expit(X @ w0), 1.0, -1.0)
    else:
        X, target = sklearn_dataset(dataset)
        positive = target == 1 if dataset == "breast_cancer" else target % 2 == 0  # benign; even digit
        y = np.where(positive, 1.0, -1.0)
    return immutable(np.asarray(X, dtype=np.float64)), immutable(np.asarray(y, dtype=np.float64))


def _read_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The raw features and targets of a bundled set, read from scikit-learn's own data files.

    ``import sklearn.datasets`` costs 1.2 s of CPU (scipy.sparse and the rest of scikit-learn)
    in every worker that runs such a task, while the data are two small CSV files: they are
    parsed here as ``load_breast_cancer`` and ``load_digits`` parse them (every number read as
    a float64 by the same correctly rounded conversion: ``tests/test_datasets.py`` checks the
    arrays equal scikit-learn's to the bit). The package is found without importing it.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is not installed: its bundled data sets are read from it")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if name == "breast_cancer":  # a header "n_samples,n_features,names...", then features and the target
        with open(folder / "breast_cancer.csv", encoding="utf-8") as file:
            n_samples, n_features = (int(v) for v in file.readline().split(",")[:2])
            table = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2)
        if table.shape != (n_samples, n_features + 1):
            raise ValueError(f"{folder / 'breast_cancer.csv'}: {table.shape}, not ({n_samples}, {n_features + 1})")
        return table[:, :-1], table[:, -1].astype(np.int64)
    with gzip.open(folder / "digits.csv.gz", "rt", encoding="utf-8") as file:  # 64 pixels, then the digit
        table = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2)
    return table[:, :-1], table[:, -1].astype(np.int64)



#: Second word of the held-out split's seed sequence ``[data_seed, HOLDOUT_STREAM]``: apart from the data's.
HOLDOUT_STREAM = 3


def holdout_split(n: int, holdout: float, data_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(train, validation, test)`` of ``n`` examples: ``holdout`` of them held out, half each.

    A permutation by ``default_rng([data_seed, HOLDOUT_STREAM])``; each part keeps the data's order.
    ``holdout = 0`` trains on everything (the other two parts are empty).

    Examples
    --------
    >>> train, validation, test = holdout_split(10, 0.4, 0)
    >>> len(train), len(validation), len(test), sorted([*train, *validation, *test]) == list(range(10))
    (6, 2, 2, True)
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1) (got {holdout})")
    held = int(round(holdout * n))
    if held and (held < 2 or n - held < 1):
        raise ValueError(f"holdout {holdout} of {n} examples leaves no validation, test or training example")
    order = np.random.default_rng([data_seed, HOLDOUT_STREAM]).permutation(n)
    validation, test = np.sort(order[: held // 2]), np.sort(order[held // 2: held])
    return immutable(np.sort(order[held:])), immutable(validation), immutable(test)


def holdout_parts(X: np.ndarray, y: np.ndarray, holdout: float, data_seed: int) -> tuple[
        tuple[np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``((X, y) to train on, {"validation": (X, y), "test": (X, y)})`` by :func:`holdout_split`.

    ``holdout = 0`` trains on ``(X, y)`` themselves (the cached arrays, unchanged) and holds nothing out.
    """
    train, validation, test = holdout_split(len(y), holdout, data_seed)
    if not holdout:
        return (X, y), {}
    held = {name: (immutable(X[part]), immutable(y[part])) for name, part in (("validation", validation), ("test", test))}
    return (immutable(X[train]), immutable(y[train])), held
