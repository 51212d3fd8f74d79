"""Framework backends: ``torch`` and ``jax``, imported only when a run needs them."""

from __future__ import annotations

import importlib
from pathlib import Path
from collections.abc import Callable
from typing import Any

__all__ = ["MemoryPeak", "backend_module", "make_backend", "peak_rss_bytes", "reset_peak_rss", "rss_bytes", "status_bytes"]

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


_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the process's resident-set high-water mark to its resident set (Linux: write 5 to clear_refs).

    Returns whether it was reset: elsewhere the mark stays the process's lifetime peak.
    """
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def status_bytes(field: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, ``VmSize``) in bytes; ``None`` without it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def rss_bytes() -> int | None:
    """The process's resident set now, in bytes (Linux; ``None`` elsewhere)."""
    return status_bytes("VmRSS")


def peak_rss_bytes() -> int | None:
    """The process's resident-set high-water mark since the last reset, in bytes."""
    high = status_bytes("VmHWM")
    if high is not None:
        return high
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None


class MemoryPeak:
    """A run's own memory peak: the high-water mark above what was in use at :meth:`reset`.

    The process's baseline (the imported frameworks, what earlier runs of a warm worker left) is
    :attr:`baseline`, reported apart; it is not the run's. On the host the mark is the resident
    set's (``VmHWM``, reset through ``/proc/self/clear_refs``); where it cannot be reset, the run's
    own peak is unknown (``None``) rather than the process's lifetime peak. A device passes its
    allocator's ``current`` and ``high`` readers and its ``reset`` (``None`` for an allocator whose
    peak cannot be reset: then the run's peak is known only when it passed the earlier one).

    Examples
    --------
    >>> peak = MemoryPeak()
    >>> peak.reset()
    >>> import mmap
    >>> block = mmap.mmap(-1, 64 * 2**20)  # fresh pages: freed memory a malloc could reuse is already resident
    >>> block.write(b"\\1" * (64 * 2**20))  # every page written, so resident
    67108864
    >>> peak.peak() >= 64 * 2**20 if peak.baseline is not None else True
    True
    """

    def __init__(self, *, current: Callable[[], int] | None = None, high: Callable[[], int] | None = None,
                 reset: Callable[[], None] | None = None) -> None:
        self._current, self._high, self._reset = current, high, reset
        self.baseline: int | None = None
        self._high_before: int | None = None  # a device peak that cannot be reset: its value at reset()

    def reset(self) -> None:
        """Start measuring: reset the mark and note the baseline."""
        if self._current is None:
            self.baseline = rss_bytes() if reset_peak_rss() else None
            return
        if self._reset is not None:
            self._reset()
        else:
            self._high_before = int(self._high())
        self.baseline = int(self._current())

    def peak(self) -> int | None:
        """Bytes above the baseline at the highest point since :meth:`reset`; ``None`` when unknown."""
        high = peak_rss_bytes() if self._high is None else int(self._high())
        if self.baseline is None or high is None or (self._high_before is not None and high <= self._high_before):
            return None
        return max(0, high - self.baseline)
