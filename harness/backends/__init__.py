"""Framework backends: ``torch`` and ``jax``, imported only when a run needs them."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["backend_module", "make_backend", "peak_rss_bytes", "reset_peak_rss"]

_MODULES = {"torch": "harness.backends.torch", "jax": "harness.backends.jax"}


def make_backend(framework: str, *, device: str = "cpu", dtype: str = "float64", threads: int | None = None) -> Any:
    """Build the backend of ``framework`` (imports the framework on first use).

    Examples
    --------
    >>> make_backend("torch").name
    'torch'
    """
    return backend_module(framework).Backend(device=device, dtype=dtype, threads=threads)


def backend_module(framework: str) -> Any:
    """The module of ``framework``'s backend, imported (with the framework; nothing is computed).

    Raises
    ------
    ValueError
        For an unknown framework.
    """
    try:
        return importlib.import_module(_MODULES[framework])
    except KeyError:
        raise ValueError(f"unknown framework {framework!r}; known: {sorted(_MODULES)}") from None


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> None:
    """Reset the process's resident-set high-water mark (Linux: write 5 to clear_refs)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_rss_bytes() -> int | None:
    """The process's resident-set high-water mark since the last reset, in bytes."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None
