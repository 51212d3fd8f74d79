"""The on-disk cache of reference optima: its folder, and atomic, pickle-free array files.

``HARNESS_CACHE_DIR`` names the folder ("", ``0``, ``off`` or ``none`` disables the cache);
unset, it is ``$XDG_CACHE_HOME/harness/reference`` (``~/.cache/harness/reference``), as
``HARNESS_JAX_CACHE_DIR`` is for jax's compilation cache (:mod:`harness.backends.jax`).

What is cached is never trusted: a file holds arrays only (``.npz`` read and written with
``allow_pickle=False``, so loading one runs no code), and its reader checks what it reads
(:func:`harness.reference.optimum` accepts a cached minimizer only when the objective's
gradient there is within the solver's tolerance). A method's code runs as the same user and
may write to the folder; a file it forged is rejected and overwritten, never believed.

Examples
--------
>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = pathlib.Path(folder) / "x.npz"
...     save_arrays(path, x_star=np.arange(3.0)), load_arrays(path)["x_star"].tolist()
(True, [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "load_arrays", "save_arrays"]

_OFF = ("", "0", "off", "none")

#: A larger file is not read (a reference minimizer is kilobytes).
MAX_BYTES = 64 * 2**20


def cache_dir(variable: str = "HARNESS_CACHE_DIR", name: str = "reference") -> Path | None:
    """A harness cache's folder (not created here), or ``None`` when ``variable`` turns it off.

    ``variable`` unset: ``$XDG_CACHE_HOME/harness/<name>``. The reference cache is the default;
    jax's compilation cache is ``cache_dir("HARNESS_JAX_CACHE_DIR", "jax")``.
    """
    value = os.environ.get(variable)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "harness" / name


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of the ``.npz`` file ``path`` (each a fresh copy), or ``None`` when it is missing or unreadable.

    ``allow_pickle=False``: an object array (a pickle) is refused, not unpickled; a file over
    :data:`MAX_BYTES` is not read.
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        with np.load(path, allow_pickle=False) as data:
            return {name: np.array(data[name]) for name in data.files}
    except Exception:  # noqa: BLE001 - a missing, truncated or forged file is a miss, whatever it raises
        return None


def save_arrays(path: Path, **arrays: np.ndarray) -> bool:
    """Write ``arrays`` to ``path`` as ``.npz``, atomically (a temporary file beside it, then ``os.replace``).

    Readers see the old file or the new one, never a part. Returns whether it was written:
    a read-only or full disk only costs the next process a recomputation.
    """
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects: the cache stores numbers only")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **{name: np.asarray(array) for name, array in arrays.items()})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        return False
