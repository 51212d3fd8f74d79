"""What this host can run, and how its failures read: checks shared by the run loop and the executors.

Examples
--------
>>> is_out_of_memory(MemoryError()), is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
(True, True)
>>> is_out_of_memory(ValueError("negative dimensions are not allowed"))
False
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.spec import HardwareProfile

__all__ = ["RANK_STARTUP_S", "hardware_unavailable", "is_out_of_memory"]

#: Seconds the rank processes of a multi-rank run may take to start and join their process
#: group: fresh interpreters import their framework and (NCCL) set up a CUDA context each,
#: tens of seconds on a busy host. The ranks' launcher gives up on ranks that have not joined
#: after this long (:mod:`harness.execute.ranks`), and every executor that runs a multi-rank
#: run adds the same allowance to the run's limits, so the launcher, which starts after the
#: executor's clock, reports ranks that never joined before the executor kills the run.
RANK_STARTUP_S = 120.0


def hardware_unavailable(profile: HardwareProfile) -> str | None:
    """Why ``profile`` cannot run on this host, or ``None`` when it can."""
    if profile.device == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        needed = max(profile.devices, profile.ranks)  # one device per rank: NCCL refuses to share one
        if count < needed:
            return f"profile {profile.id!r} needs {needed} CUDA device(s); this host has {count}"
    if profile.ranks > 1:
        import torch.distributed as dist

        if not dist.is_available():
            return f"profile {profile.id!r} runs torch.distributed ranks; this torch build has no torch.distributed"
        available = dist.is_nccl_available() if profile.dist_backend == "nccl" else dist.is_gloo_available()
        if not available:
            return f"profile {profile.id!r} needs the {profile.dist_backend} backend, missing from this torch build"
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reports an exhausted memory (host or device), whatever raised it."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    # torch's CPU allocator raises a plain RuntimeError; XLA reports RESOURCE_EXHAUSTED.
    return "can't allocate memory" in text or "CUDA out of memory" in text or "RESOURCE_EXHAUSTED" in text
