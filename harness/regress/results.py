"""asv's recorded results, read back: one commit against another, and each benchmark over commits.

asv stores one JSON file per (machine, commit, environment) under its ``results_dir`` and the
benchmarks' metadata (type, unit, pretty name, parameters) in ``benchmarks.json``; both are
read through asv's own loaders. A comparison follows ``asv compare``'s rules, with one factor
for times and one for metrics instead of asv's single ``--factor``:

- a benchmark whose ``version`` differs between the commits is *not comparable* (its
  declarations changed: it was re-baselined);
- a value that became a failure is *regressed*; a failure that became a value is *fixed*;
- otherwise *regressed* when ``after > before * factor`` and *improved* when
  ``after < before / factor`` (every benchmark is lower-is-better), except that two sampled
  timings whose samples do not differ by asv's own statistical test are *unchanged*;
- the factor is :data:`TIME_FACTOR` for a timing (asv type ``time``, or a tracked number in
  seconds) and :data:`METRIC_FACTOR` for everything else (results, memory).

Examples
--------
>>> changes = compare_commits("asv.conf.json", "HEAD~1", "HEAD")  # doctest: +SKIP
>>> [c.name for c in changes if c.state == "regressed"]  # doctest: +SKIP
["suite.logreg__gd.time_step('dataset=synthetic', 'torch')"]
"""

from __future__ import annotations

import ast
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "METRIC_FACTOR",
    "TIME_FACTOR",
    "Change",
    "Measurement",
    "classify",
    "compare_commits",
    "factor_for",
    "history",
    "load_config",
    "machines",
    "measurements",
    "pick_machine",
    "regressions",
    "resolve_commit",
]

#: Default factors beyond which a benchmark is a regression: results and memory, and times
#: (timings vary more between runs than deterministic results do).
METRIC_FACTOR = 1.10
TIME_FACTOR = 1.25

State = Literal["regressed", "improved", "unchanged", "not comparable", "fixed", "failed", "new", "gone", "skipped"]


@dataclass(frozen=True)
class Measurement:
    """One benchmark at one parameter combination on one commit.

    ``value`` is ``None`` for a failure and NaN for a combination asv skipped.
    """

    benchmark: str
    params: tuple[str, ...]
    value: float | None
    version: str | None
    unit: str
    kind: str
    pretty_name: str
    stats: Mapping[str, Any] | None = None
    samples: Sequence[float] | None = None
    param_names: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The parameters named (``variant=default, framework=torch``); empty when there are none."""
        names = self.param_names[:len(self.params)]
        return ", ".join(f"{n}={v}" if n else v for n, v in itertools.zip_longest(names, self.params))

    @property
    def name(self) -> str:
        """``benchmark(param1, param2)``, as ``asv compare`` prints it."""
        return f"{self.benchmark}({', '.join(self.params)})" if self.params else self.benchmark

    @property
    def failed(self) -> bool:
        return self.value is None

    @property
    def skipped(self) -> bool:
        return self.value is not None and math.isnan(self.value)


@dataclass(frozen=True)
class Change:
    """A benchmark's measurement on two commits and what changed."""

    name: str
    before: Measurement | None
    after: Measurement | None
    state: State
    ratio: float | None
    factor: float


def load_config(config: str | os.PathLike[str]) -> Any:
    """asv's configuration of ``config`` (``asv.conf.json``), its relative paths made absolute.

    asv reads the paths relative to the directory it runs in, which is the configuration's own
    when the harness calls it: they are resolved against that directory, wherever this runs.
    """
    from asv.config import Config

    conf = Config.load(str(config))
    base = Path(config).resolve().parent
    for key in ("repo", "results_dir", "html_dir", "benchmark_dir", "env_dir"):
        value = getattr(conf, key, None)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
            setattr(conf, key, str(base / value))
    return conf


def machines(results_dir: str | os.PathLike[str]) -> list[str]:
    """The machines that have results in ``results_dir``, sorted."""
    from asv.machine import iter_machine_files
    from asv.util import load_json

    return sorted({load_json(path)["machine"] for path in iter_machine_files(str(results_dir))})


def factor_for(measurement: Measurement, *, metric_factor: float = METRIC_FACTOR,
               time_factor: float = TIME_FACTOR) -> float:
    """The factor that applies to ``measurement``: times', or every other number's."""
    return time_factor if measurement.kind == "time" or measurement.unit == "seconds" else metric_factor


def classify(before: Measurement | None, after: Measurement | None, *, factor: float) -> tuple[State, float | None]:
    """What changed from ``before`` to ``after`` (either may be missing), and the ratio after / before.

    Examples
    --------
    >>> m = lambda v, version="1": Measurement("b", (), v, version, "seconds", "track", "b")
    >>> classify(m(1.0), m(1.3), factor=1.25)
    ('regressed', 1.3)
    >>> classify(m(1.0), m(1.2), factor=1.25)
    ('unchanged', 1.2)
    >>> classify(m(1.0), m(None), factor=1.25)
    ('failed', None)
    >>> classify(m(1.0), m(5.0, version="2"), factor=1.25)
    ('not comparable', 5.0)
    """
    if before is None or after is None:
        return ("new" if before is None else "gone"), None
    ratio = None
    if not (before.failed or after.failed or before.skipped or after.skipped):
        ratio = after.value / before.value if before.value else (math.inf if after.value else 1.0)
    if before.version is not None and after.version is not None and before.version != after.version:
        return "not comparable", ratio
    if before.failed or after.failed:
        if before.failed and after.failed:
            return "unchanged", None
        return ("fixed" if before.failed else "failed"), None
    if before.skipped or after.skipped:
        return "skipped", None
    worse, better = after.value > before.value * factor, after.value < before.value / factor
    if (worse or better) and not _differ_statistically(before, after):
        return "unchanged", ratio
    return ("regressed" if worse else "improved" if better else "unchanged"), ratio


#: The states that make ``harness regress compare`` exit non-zero.
REGRESSIONS: frozenset[str] = frozenset({"regressed", "failed"})


def _differ_statistically(a: Measurement, b: Measurement) -> bool:
    # asv's own test (what `asv compare` applies): only for sampled timings with more than one repeat.
    if not (a.stats and b.stats and a.stats.get("repeat", 0) != 1 and b.stats.get("repeat", 0) != 1):
        return True
    from asv import _stats

    return bool(_stats.is_different(a.samples, b.samples, a.stats, b.stats))


def measurements(config: Any, *, machine: str, commit: str) -> dict[str, Measurement]:
    """Every recorded measurement of ``commit`` on ``machine``: ``{name: measurement}``.

    ``config`` is asv's loaded configuration (:func:`load_config`).
    """
    from asv.results import iter_results_for_machine_and_hash

    return {m.name: m for result in iter_results_for_machine_and_hash(config.results_dir, machine, commit)
            for m in _unroll(result, _benchmarks(config.results_dir))}


def _benchmarks(results_dir: str | os.PathLike[str]) -> Mapping[str, Mapping[str, Any]]:
    """The benchmarks' metadata asv wrote beside the results (``benchmarks.json``); empty before any run."""
    from asv.benchmarks import Benchmarks
    from asv.util import load_json

    path = Benchmarks.get_benchmark_file_path(str(results_dir))
    if not os.path.isfile(path):
        return {}
    return {k: v for k, v in load_json(path, api_version=Benchmarks.api_version).items() if isinstance(v, dict)}


def _unroll(result: Any, benchmarks: Mapping[str, Mapping[str, Any]]) -> Iterator[Measurement]:
    for key in result.get_all_result_keys():
        meta = benchmarks.get(key, {})
        params = result.get_result_params(key)
        columns = [result.get_result_value(key, params), result.get_result_stats(key, params),
                   result.get_result_samples(key, params)]
        count = math.prod(len(p) for p in params)
        columns = [c if c is not None else [None] * count for c in columns]
        for combo, value, stats, samples in zip(itertools.product(*params), *columns):
            yield Measurement(
                benchmark=key, params=tuple(_param_text(p) for p in combo), value=value,
                version=result.benchmark_version.get(key), unit=meta.get("unit", ""),
                kind=meta.get("type", key.rsplit(".", 1)[-1].split("_", 1)[0]),
                pretty_name=meta.get("pretty_name") or key, stats=stats, samples=samples,
                param_names=tuple(meta.get("param_names") or ()),
            )


def _param_text(value: str) -> str:
    # asv stores a parameter as its repr ("'torch'"): the id itself reads better.
    try:
        literal = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
    return literal if isinstance(literal, str) else value


def compare_commits(config: str | os.PathLike[str], base: str, head: str = "HEAD", *, machine: str | None = None,
                    metric_factor: float = METRIC_FACTOR, time_factor: float = TIME_FACTOR) -> list[Change]:
    """Every benchmark recorded for ``base`` or ``head`` (git names or hashes), compared.

    Raises
    ------
    LookupError
        When a name is not a commit of the repository, ``machine`` has no results (or several
        machines have and none is named), or a commit has no results on the machine.
    """
    conf = load_config(config)
    machine = pick_machine(conf.results_dir, machine)
    found = []
    for name in (base, head):
        commit = resolve_commit(conf, name)
        recorded = measurements(conf, machine=machine, commit=commit)
        if not recorded:
            raise LookupError(f"no results of commit {name} ({commit[:8]}) on machine {machine!r} in "
                              f"{conf.results_dir}: record it with `harness regress record`")
        found.append(recorded)
    before, after = found
    changes = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        factor = factor_for(b or a, metric_factor=metric_factor, time_factor=time_factor)
        state, ratio = classify(a, b, factor=factor)
        changes.append(Change(name=name, before=a, after=b, state=state, ratio=ratio, factor=factor))
    return changes


def pick_machine(results_dir: str | os.PathLike[str], machine: str | None) -> str:
    """``machine`` when it has results, else the one machine that has; ``LookupError`` otherwise."""
    known = machines(results_dir)
    if machine is not None:
        if machine not in known:
            raise LookupError(f"no results of machine {machine!r} in {results_dir} (machines: {', '.join(known) or 'none'})")
        return machine
    if len(known) != 1:
        raise LookupError(f"{'no results' if not known else 'results of several machines'} in {results_dir}"
                          + (f" ({', '.join(known)}): name one with --machine" if known else ""))
    return known[0]


def resolve_commit(conf: Any, name: str) -> str:
    """The full hash of git name ``name`` in the configuration's repository (a hash asv recorded also works)."""
    from asv.repo import NoSuchNameError, get_repo
    from asv.results import get_result_hash_from_prefix

    try:
        return get_repo(conf).get_hash_from_name(name)
    except NoSuchNameError:
        for machine in machines(conf.results_dir):
            found = get_result_hash_from_prefix(conf.results_dir, machine, name)
            if found:
                return found
        raise LookupError(f"{name!r} is not a commit of {conf.repo} and no recorded hash starts with it") from None


def history(results_dir: str | os.PathLike[str], *, machine: str | None = None,
            metric_factor: float = METRIC_FACTOR, time_factor: float = TIME_FACTOR) -> list[dict[str, Any]]:
    """Every measurement of ``results_dir`` in commit order, each flagged against the commit before it.

    One dict per (machine, benchmark, parameters, commit): ``machine``, ``commit``, ``date`` (the
    commit's, milliseconds since the epoch as asv stores it), ``benchmark``, ``params`` (the ids),
    ``label`` (the parameters named, :attr:`Measurement.label`), ``name``,
    ``pretty_name``, ``unit``, ``kind``, ``value``, ``version``, and ``state``/``ratio`` against the
    previous commit of the same series (``new`` for the first).
    """
    from asv.results import iter_results_for_machine

    meta = _benchmarks(results_dir)
    rows: list[dict[str, Any]] = []
    for name in ([machine] if machine else machines(results_dir)):
        results = sorted(iter_results_for_machine(str(results_dir), name), key=lambda r: (r.date or 0, r.commit_hash))
        previous: dict[str, Measurement] = {}
        for result in results:
            for m in _unroll(result, meta):
                factor = factor_for(m, metric_factor=metric_factor, time_factor=time_factor)
                state, ratio = classify(previous.get(m.name), m, factor=factor)
                rows.append({"machine": name, "commit": result.commit_hash, "date": result.date,
                             "benchmark": m.benchmark, "params": ", ".join(m.params), "label": m.label,
                             "name": m.name,
                             "pretty_name": m.pretty_name, "unit": m.unit, "kind": m.kind, "value": m.value,
                             "version": m.version, "state": state, "ratio": ratio})
                previous[m.name] = m
    return rows


def regressions(changes: Iterable[Change]) -> list[Change]:
    """The changes that are regressions (worse by more than their factor, or newly failing)."""
    return [c for c in changes if c.state in REGRESSIONS]
