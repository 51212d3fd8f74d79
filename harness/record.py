"""The run record: one owner for a run's statuses, its row and its trace points.

Everything that reads or writes a run's result derives from this module: the run loop fills
a :class:`RunRecord`, executors build the record of a run that left none of its own
(:meth:`RunRecord.for_run` with a status and an error), the store derives its columns from
:data:`RUN_COLUMNS` and :data:`TRACE_COLUMNS`, and the scorer its defaults from
:func:`column_kind`.

A row in memory is *wide*: the fixed columns of :data:`RUN_COLUMNS`, one ``calls_<kind>``
count per oracle call kind and one value per declared metric (the task's ids). The store
keeps the variable part in fixed nested columns (see :mod:`harness.store`), so every file
has the same schema; its readers give the wide row back.

Statuses
--------
``reached_target``, ``completed``
    Finished: the method's result is scored.
``diverged``, ``error``, ``timeout``, ``oom``
    Failed: infinite time to target in the scores, and infinite suboptimality except for a
    ``timeout``, which keeps the value it reached (as a ``completed`` run). ``error``, ``timeout``
    and ``oom`` (:data:`NO_RESULT`) ended without a result of the method's: a bench that
    leaves one exits 1 and ``harness bench --retry-failed`` runs them again; ``diverged`` is
    a result.
``skipped``
    Not run (its hardware is not on this host): counted apart, no sample.

Examples
--------
>>> Status("oom").group
'failed'
>>> Status.OOM in NO_RESULT, Status.DIVERGED in NO_RESULT
(True, False)
>>> column_kind("timed_s"), column_kind("calls_grad"), column_kind("suboptimality")
('float', 'int', 'float')
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "CALLS_PREFIX",
    "FAILED",
    "FINISHED",
    "NOT_RUN",
    "NO_RESULT",
    "RUN_COLUMNS",
    "RUN_COLUMN_DOCS",
    "TRACE_COLUMNS",
    "ColumnKind",
    "RunRecord",
    "Status",
    "column_kind",
]

#: The type of a column, in words every Parquet library maps the same way.
ColumnKind = Literal["str", "int", "float", "bool"]

#: Prefix of the per-kind oracle call counts, in rows and trace points (``calls_grad``).
CALLS_PREFIX = "calls_"


class Status(enum.StrEnum):
    """How a run ended. Stored as its value (a plain string column)."""

    REACHED_TARGET = "reached_target"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    SKIPPED = "skipped"

    @property
    def group(self) -> Literal["finished", "failed", "not_run"]:
        """``finished`` (scored as measured), ``failed`` (scored as infinite) or ``not_run`` (no sample)."""
        if self in FINISHED:
            return "finished"
        return "failed" if self in FAILED else "not_run"


#: The method's result is scored as measured.
FINISHED: tuple[Status, ...] = (Status.REACHED_TARGET, Status.COMPLETED)
#: Scored as infinite time to target (and suboptimality, but a timeout keeps the value it reached).
FAILED: tuple[Status, ...] = (Status.DIVERGED, Status.ERROR, Status.TIMEOUT, Status.OOM)
#: Never ran: counted apart, no sample.
NOT_RUN: tuple[Status, ...] = (Status.SKIPPED,)
#: Failed without a result of the method's: a bench exits 1, ``--retry-failed`` runs them again.
NO_RESULT: tuple[Status, ...] = (Status.ERROR, Status.TIMEOUT, Status.OOM)


def _column(kind: ColumnKind, doc: str, default: Any = None) -> Any:
    return dataclasses.field(default=default, metadata={"kind": kind, "doc": doc})


@dataclasses.dataclass(kw_only=True)
class RunRecord:
    """One run's row, typed. The fields are the store's fixed columns, in order.

    ``calls`` (oracle calls by kind) and ``values`` (the final value of each declared metric)
    are the variable part; :meth:`row` spreads them into ``calls_<kind>`` and metric columns.
    """

    # -- identity (the run's declarations: see harness.plan.RunSpec) ------------------------------
    run_id: str = _column("str", "content hash of the run's declarations, code and seed")
    attempt: int = _column("int", "0, then 1, 2, ... each time the run is run again (the newest is read)", 0)
    suite: str = _column("str", "the suite that planned the run")
    task: str = _column("str", "task id")
    task_family: str | None = _column("str", "the task's family")
    task_params: str = _column("str", "the task variant's parameters (JSON object)")
    method: str = _column("str", "method id")
    method_family: str | None = _column("str", "the method's family")
    hyperparameters: str = _column("str", "the method's hyperparameters (JSON object)")
    framework: str = _column("str", "torch | jax")
    hardware: str = _column("str", "hardware profile id")
    seed: int = _column("int", "run seed")
    # -- outcome ---------------------------------------------------------------------------------
    status: str = _column("str", " | ".join(Status))
    error: str | None = _column("str", "why it failed (a traceback's tail), or why it stopped")
    steps: int = _column("int", "steps taken", 0)
    oracle_calls: int = _column("int", "oracle calls, all kinds", 0)
    # -- time (see harness.run) ------------------------------------------------------------------
    setup_s: float = _column("float", "problem construction and reference, off the clock", 0.0)
    compile_s: float = _column("float", "compilation and warm-up against the decoy oracle, before the clock", 0.0)
    offline_s: float | None = _column("float", "the method's declared offline phase (null: none), reported apart")
    init_s: float = _column("float", "method.init: on the clock, a part of timed_s", 0.0)
    output_s: float = _column("float", "the method's output hook: on the clock, a part of timed_s", 0.0)
    timed_s: float = _column("float", "the method's clock: init, every step, output; device synchronized", 0.0)
    eval_s: float = _column("float", "evaluation and probes, off the clock", 0.0)
    wall_s: float = _column("float", "the run's wall time, as its executor saw it", 0.0)
    clock_compiles: int = _column("int", "compilations inside the timed region (> 0 flags the run)", 0)
    clock_compile_s: float = _column("float", "their seconds (counted in timed_s)", 0.0)
    program: str | None = _column("str", "jit (compiled whole, ahead of time) | eager")
    program_fallback: str | None = _column("str", "why a method declared pure ran eagerly")
    left_behind: str | None = _column("str", "threads or processes the run left running (its worker was replaced)")
    peak_memory_bytes: int | None = _column("int", "the run's own peak memory: above its process's baseline (host RSS "
                                            "high-water mark, or the device allocator's)")
    baseline_memory_bytes: int | None = _column("int", "what the run's process (or device) held when it started: "
                                                "imports, a warm worker's earlier runs")
    # -- target ----------------------------------------------------------------------------------
    target_metric: str | None = _column("str", "the task's target metric")
    target_value: float | None = _column("float", "the value it must reach")
    time_to_target_s: float | None = _column("float", "the clock when the target was first reached")
    steps_to_target: int | None = _column("int", "the step at which it was first reached")
    metrics: str = _column("str", "the task's declared metrics: JSON {metric id: {unit, lower_is_better}}", "{}")
    # -- environment (harness.environment.fingerprint) -------------------------------------------
    host: str | None = _column("str", "host name")
    cpu: str | None = _column("str", "processor model and logical cores")
    gpu: str | None = _column("str", "visible GPUs, CUDA version and driver")
    versions: str | None = _column("str", "JSON {python, numpy, torch, jax, ...}")
    harness_version: str | None = _column("str", "the harness's own version: stored, not part of the run id")
    git_commit: str | None = _column("str", "the harness checkout's commit")
    git_dirty: bool | None = _column("bool", "whether that checkout had changes")
    started_at: str | None = _column("str", "ISO 8601, UTC")
    finished_at: str | None = _column("str", "ISO 8601, UTC")
    # -- variable part ---------------------------------------------------------------------------
    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    values: dict[str, float | None] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_run(cls, run: Any, catalog: Any, **fields: Any) -> RunRecord:
        """The record of ``run`` (a :class:`~harness.plan.RunSpec`): identity and declarations filled in.

        Every metric the task declares is present in ``values`` (null until measured), so a
        run that left nothing (killed, never started) has the row of any other run of its task.
        """
        import json

        task = catalog.tasks[run.task].spec
        method = catalog.methods[run.method].spec
        record = cls(
            run_id=run.run_id, suite=run.suite, task=run.task, task_family=task.family,
            task_params=_dumps(run.task_params), method=run.method, method_family=method.family,
            hyperparameters=_dumps(run.hyperparameters), framework=run.framework, hardware=run.hardware,
            seed=run.seed, target_metric=task.target.metric if task.target else None,
            target_value=task.target.value if task.target else None,
            metrics=json.dumps({m.id: {"unit": m.unit, "lower_is_better": m.lower_is_better} for m in task.metrics},
                               sort_keys=True),
            values=dict.fromkeys(m.id for m in task.metrics),
        )
        return dataclasses.replace(record, **fields)

    def row(self) -> dict[str, Any]:
        """The wide row: fixed columns, then ``calls_<kind>``, then the metric values.

        Examples
        --------
        >>> r = RunRecord(run_id="r", suite="s", task="t", task_params="{}", method="m",
        ...               hyperparameters="{}", framework="torch", hardware="cpu", seed=0,
        ...               status="completed", calls={"grad": 3}, values={"objective": 0.5})
        >>> {k: r.row()[k] for k in ("status", "calls_grad", "objective")}
        {'status': 'completed', 'calls_grad': 3, 'objective': 0.5}
        """
        fixed = {name: getattr(self, name) for name in RUN_COLUMNS}
        fixed["status"] = str(Status(fixed["status"]))  # raises for a status outside the vocabulary
        return {**fixed, **{CALLS_PREFIX + kind: int(n) for kind, n in self.calls.items()}, **self.values}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """The record of a wide row (as :meth:`row` or the store's readers give it).

        Columns beyond the fixed ones are calls (``calls_<kind>``) or metric values: the ids
        the row's ``metrics`` declarations name.
        """
        import json

        declared = json.loads(row.get("metrics") or "{}")
        fixed = {name: row[name] for name in RUN_COLUMNS if name in row}
        calls = {k[len(CALLS_PREFIX):]: int(v) for k, v in row.items()
                 if k.startswith(CALLS_PREFIX) and k not in RUN_COLUMNS and v is not None}
        values = {m: (None if row.get(m) is None else float(row[m])) for m in declared}
        return cls(**fixed, calls=calls, values=values)


#: The fixed columns of a run's row: ``{name: kind}``, in order (``calls`` and ``values`` are spread).
RUN_COLUMNS: dict[str, ColumnKind] = {
    f.name: f.metadata["kind"] for f in dataclasses.fields(RunRecord) if "kind" in f.metadata
}
#: What each fixed column holds, for the schema's documentation (``harness schema``).
RUN_COLUMN_DOCS: dict[str, str] = {
    f.name: f.metadata["doc"] for f in dataclasses.fields(RunRecord) if "doc" in f.metadata
}

#: The fixed fields of a trace point; ``calls_<kind>`` counts, metric values and probe
#: values (``<probe>/<name>``, floats) follow.
TRACE_COLUMNS: dict[str, ColumnKind] = {
    "run_id": "str",
    "step": "int",  # 0 is the initial point
    "time_s": "float",  # the method's clock so far (init, steps and output calls)
    "oracle_calls": "int",  # all kinds so far
}


def column_kind(name: str) -> ColumnKind:
    """The kind of a row's column: fixed, ``calls_<kind>`` (int), or a metric value (float)."""
    if name in RUN_COLUMNS:
        return RUN_COLUMNS[name]
    return "int" if name.startswith(CALLS_PREFIX) else "float"


def _dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): the parameter columns' form."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
