"""The environment fingerprint stored with every run: host, processors, versions, commit."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["fingerprint"]

_PACKAGES = ("harness", "numpy", "scipy", "polars", "pydantic", "torch", "jax", "jaxlib", "optax")


@cache
def fingerprint() -> dict[str, Any]:
    """Columns of the runs table that describe where and with what a run ran (cached per process)."""
    return {
        "host": platform.node(),
        "cpu": f"{_cpu_model()} ({os.cpu_count()} logical cores)",
        "gpu": _gpu(),
        "versions": json.dumps({"python": platform.python_version(), **_versions()}, sort_keys=True),
        **_git(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    # Ask torch only when the run already imported it: the fingerprint must not import a framework.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        driver = getattr(torch.version, "cuda", None)
        return f"{', '.join(names)} (CUDA {driver})"
    return None


def _versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git() -> dict[str, Any]:
    """The commit of the harness source tree and whether it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
