"""``harness.datasets``: scikit-learn's bundled sets, standardized and cached, and the logreg recipe."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.datasets import BINARY_DATASETS, binary_classification, binary_key, sklearn_dataset, standardize

SHAPES = {"breast_cancer": (569, 30, 2), "digits": (1797, 64, 10)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_dtypes_and_standardization(name: str) -> None:
    X, target = sklearn_dataset(name)
    n, d, classes = SHAPES[name]
    assert X.shape == (n, d) and target.shape == (n,)
    assert X.dtype == np.float64 and target.dtype == np.int64 and X.flags.c_contiguous
    assert set(np.unique(target)) == set(range(classes))
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    std = X.std(axis=0)
    constant = std < 1e-12
    np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-12)
    assert np.all(X[:, constant] == 0.0)
    # digits has always-blank border pixels; breast_cancer has none
    assert constant.any() == (name == "digits")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_cached_read_only_and_equal_to_scikit_learn(name: str) -> None:
    import sklearn.datasets

    X, target = sklearn_dataset(name)
    assert sklearn_dataset(name)[0] is X
    assert not X.flags.writeable and not target.flags.writeable
    data, raw_target = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    np.testing.assert_array_equal(target, raw_target)
    scale = np.where(data.std(axis=0) > 0, data.std(axis=0), 1.0)
    np.testing.assert_allclose(X, (data - data.mean(axis=0)) / scale, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_bundled_files_read_without_scikit_learn_give_its_arrays_to_the_bit(name: str) -> None:
    import sklearn.datasets

    from harness.datasets import _read_bundled

    data, target = _read_bundled(name)
    want, want_target = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    assert data.dtype == want.dtype == np.float64 and data.shape == want.shape
    assert np.array_equal(data.view(np.uint64), want.view(np.uint64)) and np.array_equal(target, want_target)
    assert np.array_equal(sklearn_dataset(name)[0], standardize(want))


def test_reading_a_bundled_set_imports_no_scikit_learn() -> None:
    code = ("import sys\nfrom harness.datasets import sklearn_dataset\nsklearn_dataset('breast_cancer')\n"
            "sklearn_dataset('digits')\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_standardize_zero_variance_columns_become_zeros() -> None:
    X = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 0.0], [5.0, 5.0, 0.0]])
    Z = standardize(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_array_equal(Z[:, 1:], 0.0)
    np.testing.assert_allclose(Z[:, 0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert X[0, 0] == 1.0  # the input is left alone


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="unknown scikit-learn data set"):
        sklearn_dataset("mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        binary_classification("mnist")
    with pytest.raises(ValueError, match="n >= 1"):
        binary_classification("synthetic", n=0)


def test_binary_classification_labels_and_keys() -> None:
    X, y = binary_classification("digits", n=5, d=5, data_seed=7)  # n, d, seed: synthetic only
    assert X is sklearn_dataset("digits")[0] and X.shape == (1797, 64)
    np.testing.assert_array_equal(y, np.where(sklearn_dataset("digits")[1] % 2 == 0, 1.0, -1.0))
    _, y = binary_classification("breast_cancer")
    np.testing.assert_array_equal(y, np.where(sklearn_dataset("breast_cancer")[1] == 1, 1.0, -1.0))
    assert binary_key("breast_cancer", 5, 5, 7) == ("breast_cancer", 0, 0, 0)
    assert binary_key("synthetic", 50.0, 3, 2) == ("synthetic", 50, 3, 2)
    assert set(BINARY_DATASETS) == {"synthetic", "breast_cancer", "digits"}


def test_synthetic_recipe() -> None:
    import scipy.special

    X, y = binary_classification("synthetic", n=300, d=7, data_seed=3)
    rng = np.random.default_rng(3)
    X_ref = rng.standard_normal((300, 7))
    w0 = rng.standard_normal(7) * 3.0 / np.sqrt(7)
    y_ref = np.where(rng.random(300) < scipy.special.expit(X_ref @ w0), 1.0, -1.0)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert not X.flags.writeable and not y.flags.writeable
    assert binary_classification("synthetic", n=300, d=7, data_seed=3)[0] is X


def test_scikit_learn_is_imported_lazily() -> None:
    code = (
        "import sys, harness.datasets as d; d.binary_classification('synthetic', n=10, d=2);"
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
