"""``harness regress record``: one ``asv run`` of the current checkout, recorded as a commit.

asv runs in the existing environment (``--python=same``: the harness and frameworks installed
now, no virtualenv built per commit) and records its results under the commit it is told
(``--set-commit-hash``, ``HEAD`` by default). The machine is named after the hardware profile
the benchmarks run on and this host's fingerprint (:func:`machine_name`), so results of two
hosts, or of the cpu and gpu profiles, never mix. asv's forkserver imports the benchmark module
(and the frameworks) once and forks one process per benchmark from it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.regress.suite import CATALOG_ENV, HARDWARE_ENV, SUITE, SUITE_ENV

__all__ = ["RecordError", "asv_command", "machine_name", "record", "suite_hardware"]


class RecordError(RuntimeError):
    """The record cannot start (no configuration, an unknown suite, an ambiguous hardware profile)."""


def machine_name(hardware: str) -> str:
    """``<hardware profile>-<host>-<8 hex digits of the host's fingerprint>``: asv's machine name.

    The digest covers the host name, the processor model and count: another machine (or the same
    name on other hardware) is another asv machine, whose results are compared only with its own.

    Examples
    --------
    >>> machine_name("cpu").startswith("cpu-")
    True
    """
    from harness.environment import fingerprint

    facts = fingerprint()
    digest = hashlib.sha256(f"{facts['host']}|{facts['cpu']}|{facts['gpu']}".encode()).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9_.]+", "_", str(facts["host"]))[:40] or "host"
    return f"{hardware}-{host}-{digest}"


def suite_hardware(config: Path, *, suite: str, catalog: Sequence[Path] = ()) -> str:
    """The one hardware profile of ``suite`` in the catalog the benchmark module loads.

    Raises
    ------
    RecordError
        When the suite is unknown or lists several profiles (then name one).
    """
    from harness.catalog import Catalog

    loaded = Catalog.load([config.parent, *catalog])
    try:
        spec = loaded.get("suite", suite).spec
    except KeyError as exc:
        raise RecordError(str(exc).strip("'\"")) from None
    if len(spec.hardware) != 1:
        raise RecordError(f"suite {suite!r} lists hardware profiles {list(spec.hardware)}: name one with --hardware")
    return spec.hardware[0]


def asv_command(*args: str) -> list[str]:
    """``python -m asv ARGS`` with this interpreter (asv of the environment the harness runs in)."""
    return [sys.executable, "-m", "asv", *args]


def record(config: Path, *, suite: str = SUITE, hardware: str | None = None, catalog: Sequence[Path] = (),
           commit: str = "HEAD", quick: bool = False, bench: str | None = None,
           show_stderr: bool = False) -> int:
    """Run asv's benchmarks of ``config`` once and record them as ``commit``; asv's exit status.

    ``suite``, ``hardware`` and ``catalog`` say what the generated benchmarks are (passed to
    the benchmark module through the environment, see :mod:`harness.regress.suite`); ``quick``
    is asv's one-sample run; ``bench`` a regular expression selecting benchmarks. asv exits 2
    when a benchmark failed: a failure is recorded, as a value is.

    Raises
    ------
    RecordError
        When ``config`` is missing or the suite cannot be resolved.
    """
    config = Path(config).resolve()
    if not config.is_file():
        raise RecordError(f"{config}: no asv configuration (asv.conf.json) there")
    hardware = hardware or suite_hardware(config, suite=suite, catalog=catalog)
    machine = machine_name(hardware)
    env = {**os.environ, SUITE_ENV: suite, HARDWARE_ENV: hardware,
           CATALOG_ENV: os.pathsep.join(str(Path(c).resolve()) for c in catalog)}
    registered = subprocess.run(asv_command("machine", "--yes", "--machine", machine, "--config", str(config)),
                                cwd=config.parent, env=env, capture_output=True, text=True)
    if registered.returncode != 0:
        raise RecordError(f"asv machine failed: {(registered.stderr or registered.stdout).strip()}")
    args = ["run", "--python=same", "--set-commit-hash", commit, "--machine", machine, "--launch-method", "forkserver",
            "--record-samples", "--config", str(config)]
    if quick:
        args.append("--quick")
    if bench:
        args += ["--bench", bench]
    if show_stderr:
        args.append("--show-stderr")
    return subprocess.run(asv_command(*args), cwd=config.parent, env=env).returncode
