"""The environment fingerprint stored with every run: host, processors, versions, commit.

The harness's own version and commit are stored, never hashed into run ids: a run is the
same experiment under another harness commit (asv compares commits).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["fingerprint"]

_PACKAGES = ("harness", "numpy", "scipy", "polars", "pydantic", "torch", "jax", "jaxlib", "optax")


def fingerprint() -> dict[str, Any]:
    """Columns of the runs table that describe where and with what a run ran.

    Everything but the GPU is cached per process; the GPU is asked of the frameworks the
    process has imported by now (a warm worker may import torch after its first run).
    """
    imported = tuple(name for name in ("torch", "jax") if name in sys.modules)
    return {**_static(), "gpu": _gpu(imported)}


@cache
def _static() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpu": f"{_cpu_model()} ({os.cpu_count()} logical cores)",
        "versions": json.dumps({"python": platform.python_version(), **_versions()}, sort_keys=True),
        "harness_version": _version("harness"),
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


@cache
def _gpu(imported: tuple[str, ...]) -> str | None:
    """The visible GPUs, CUDA version and driver, from a framework ``imported`` already.

    The fingerprint must not import a framework (seconds, and a CUDA context) for a CPU run.
    """
    names: list[str] = []
    cuda = None
    if "torch" in imported:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            cuda = getattr(torch.version, "cuda", None)
    if not names and "jax" in imported:
        try:
            names = [d.device_kind for d in sys.modules["jax"].devices("gpu")]
        except Exception:  # noqa: BLE001 - no GPU backend: jax raises RuntimeError
            names = []
    if not names:
        return None
    details = [f"CUDA {cuda}"] if cuda else []
    driver = _driver()
    if driver:
        details.append(f"driver {driver}")
    return ", ".join(names) + (f" ({', '.join(details)})" if details else "")


@cache
def _driver() -> str | None:
    """The NVIDIA kernel driver's version: from /proc, else nvidia-smi."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        match = re.search(r"Kernel Module(?: for [\w-]+)?\s+([0-9][0-9.]+)", text)
        if match:
            return match.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str]:
    return {name: version for name in _PACKAGES if (version := _version(name)) is not None}


def _git() -> dict[str, Any]:
    """The commit of the harness source tree and whether it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if commit.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
