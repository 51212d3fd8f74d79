"""Declarations: the frozen pydantic models behind every YAML file.

Each catalog file is one of four kinds: a task, a method, a hardware profile or a suite.
The models hold data only: no YAML file carries logic, and every object is keyed by a
stable string id (used as asv parameter, Parquet value and leaderboard row key).

Examples
--------
>>> Metric(id="objective", unit="nats", lower_is_better=True).lower_is_better
True
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "CAPABILITIES",
    "INT64_MAX",
    "MAX_SECONDS",
    "Budget",
    "LocatedError",
    "Capability",
    "Evaluation",
    "Framework",
    "HardwareProfile",
    "Kind",
    "MethodImplementation",
    "MethodSpec",
    "Metric",
    "Parameter",
    "ProbeRef",
    "Scalar",
    "SPLITS",
    "STEPS_TO_TARGET",
    "ScalarType",
    "SearchSpace",
    "Spec",
    "SuiteEntry",
    "SuiteSpec",
    "Target",
    "TaskSpec",
    "Tuning",
    "SPEC_TYPES",
    "check_value",
    "is_split_metric",
    "split_metric",
    "type_of",
]

#: What the store's integer columns hold (Parquet int64): seeds, sizes and integer values.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: The longest time budget: a timer must fire (an infinite budget never kills a hung run).
MAX_SECONDS = 7 * 24 * 3600.0

ScalarType = Literal["bool", "int", "float", "str"]
_TYPE_NAMES = {"bool": "a boolean", "int": "an integer", "float": "a number", "str": "a string"}


class LocatedError(ValueError):
    """A validator's error about one key below the model it checks (``loc`` relative to it).

    pydantic places a model validator's error at the model itself; :mod:`harness.yamlio`
    appends ``loc``, so the message points at the key it is about.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def type_of(value: Any) -> str:
    """The :data:`ScalarType` name of a scalar (``bool`` is not an ``int`` here)."""
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def check_value(value: Any, kind: str, choices: tuple[Any, ...] | None = None) -> Any:
    """``value`` as a value of type ``kind`` (an int is a float's too), or ``ValueError``.

    No conversion between kinds but int to float: ``true`` is not 1, ``"off"`` is not
    false, ``"1"`` is not 1. Numbers are finite and integers fit in int64, as the store keeps
    them; with ``choices``, the value is one of them (of the same type: 1 is not ``true``).

    Examples
    --------
    >>> check_value(1, "float")
    1.0
    >>> check_value("fast", "float")
    Traceback (most recent call last):
    ValueError: expected a number, got 'fast'
    """
    if kind == "float" and type(value) is int:
        if abs(value) > 2**1023:
            raise ValueError(f"{value} is too large for a float")
        value = float(value)
    if type_of(value) != kind:
        raise ValueError(f"expected {_TYPE_NAMES.get(kind, kind)}, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    if kind == "int" and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} does not fit in int64 (at most {INT64_MAX})")
    if choices is not None and not any(type(c) is type(value) and c == value for c in choices):
        raise ValueError(f"{value!r} is not one of {list(choices)}")
    return value


def _scalar(value: Any) -> bool | int | float | str:
    if type(value) not in (bool, int, float, str):
        raise ValueError(f"expected a scalar (boolean, integer, number or string), got {type_of(value)}")
    return check_value(value, type_of(value))


#: A YAML scalar: bool, int (int64), finite float or str, never converted into another kind.
Scalar = Annotated[
    Union[bool, int, float, str],
    PlainValidator(_scalar),
    WithJsonSchema({"type": ["boolean", "integer", "number", "string"]}),
]
def _scalar_or_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_scalar(item) for item in value)
    return _scalar(value)


#: A constant optimizer argument: a scalar or a list of them (one error, not one per union member).
FixedValue = Annotated[
    Union[bool, int, float, str, tuple[Union[bool, int, float, str], ...]],
    PlainValidator(_scalar_or_tuple),
    WithJsonSchema({"anyOf": [{"type": ["boolean", "integer", "number", "string"]}, {"type": "array"}]}),
]
#: A count or size: a positive int64.
Count = Annotated[StrictInt, Field(ge=1, le=INT64_MAX)]
Seed = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
Text = StrictStr

Id = Annotated[
    StrictStr,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        min_length=1,
        max_length=64,
        description="Stable lower-case id: letters, digits, '-', '_' and '.'.",
    ),
]
Framework = Literal["torch", "jax"]
Kind = Literal["task", "method", "hardware", "suite"]

#: What an oracle can give; a task lists what it provides, a method what it requires. A name is
#: here only when both backends' oracles implement it (a method of that name on
#: :class:`harness.oracle.CountingOracle`; ``tests/test_oracle_contract.py`` keeps it so).
Capability = Literal[
    "value",
    "grad",
    "value_and_grad",
    "hvp",
    "hessian",
    "stochastic_grad",
    "jvp_logits",
    "per_example_grads",
    "gauss_newton",
    "fisher",
    "task_grads",
    "player_grads",
    "matvec",
    "matrix",
    "bilevel_grads",
    "sample",
    "node_grads",
    "graph",
    "clients",
]
CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]

#: Harness-computed metric: objective minus the task's reference optimum.
SUBOPTIMALITY = "suboptimality"


class Spec(BaseModel):
    """Base of every declaration: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Metric(Spec):
    """A measured quantity; its unit and direction are part of its declaration."""

    id: Id
    unit: Text = Field(min_length=1, description="Unit shown beside values, e.g. 'nats', 'fraction'.")
    lower_is_better: StrictBool
    description: Text = ""


class Parameter(Spec):
    """A task parameter with its default and, optionally, its type and the values it accepts.

    Its type is ``type``, or else the type of ``default``: every value given for it (a suite's
    grid, ``--set``) has that type (an integer is also a float).
    """

    default: Scalar
    type: ScalarType | None = Field(default=None, description="The values' type; default: the default's type.")
    choices: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    description: Text = ""

    @property
    def kind(self) -> str:
        """The type every value of this parameter has."""
        return self.type or type_of(self.default)

    def check(self, value: Any) -> Scalar:
        """``value`` as a value of this parameter (see :func:`check_value`), or ``ValueError``."""
        return check_value(value, self.kind, self.choices)

    @model_validator(mode="after")
    def _default_is_a_value(self) -> Parameter:
        for i, choice in enumerate(self.choices or ()):
            try:
                check_value(choice, self.kind)
            except ValueError as exc:
                raise LocatedError(("choices", i), str(exc)) from None
        try:
            self.check(self.default)
        except ValueError as exc:
            if self.choices is not None and type_of(self.default) == self.kind:
                raise LocatedError(("default",), f"default {self.default!r} is not one of choices {list(self.choices)}") from None
            raise LocatedError(("default",), str(exc)) from None
        return self


class Budget(Spec):
    """When a run stops: the first limit reached ends it."""

    steps: Count = Field(description="Maximum number of method steps.")
    oracle_calls: Count | None = Field(
        default=None, description="Maximum total oracle calls (all kinds added)."
    )
    seconds: FiniteFloat = Field(
        default=300.0, gt=0, le=MAX_SECONDS, description="Wall-clock limit of the whole run, setup included."
    )


class Target(Spec):
    """A run reaches its target when `metric` first passes `value` (in its better direction)."""

    metric: Id
    value: FiniteFloat


class Evaluation(Spec):
    """Evaluation cadence: the clock pauses while metrics and probes are computed."""

    every: Count = Field(default=1, description="Evaluate every this many steps.")
    divergence_patience: Count = Field(
        default=5,
        description="A run is diverged once its objective is above the initial one at this many consecutive "
        "evaluation points after the first (oscillating or diverging).",
    )


class ProbeRef(Spec):
    """A probe to run at evaluation points (untimed), with its options."""

    id: Id
    options: dict[str, Scalar] = Field(default_factory=dict)


class TaskSpec(Spec):
    """A task: an objective with data, budget, target and metrics.

    ``implementations`` maps a framework to a ``module:attr`` entry point of the problem class;
    a module path ending in ``.py`` is resolved relative to the YAML file.
    """

    id: Id
    name: Text = Field(min_length=1)
    family: Id
    paper: Text = Field(min_length=1, description="The source this task is drawn from.")
    description: Text = ""
    notes: Text = ""
    parameters: dict[Id, Parameter] = Field(default_factory=dict)
    implementations: dict[Framework, Text] = Field(min_length=1)
    provides: tuple[Capability, ...] = Field(min_length=1)
    metrics: tuple[Metric, ...] = Field(min_length=1)
    target: Target | None = None
    budget: Budget
    evaluation: Evaluation = Evaluation()
    probes: tuple[ProbeRef, ...] = Field(default=(), description="Probes measured at every evaluation point.")
    dtype: Literal["float64", "float32"] = "float64"

    @field_validator("implementations")
    @classmethod
    def _entry_points(cls, value: dict[str, str]) -> dict[str, str]:
        for framework, entry in value.items():
            _check_entry_point(entry, loc=(framework,))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        from harness.record import CALLS_PREFIX, RUN_COLUMNS, TRACE_COLUMNS  # the store's own columns

        ids = [m.id for m in self.metrics]
        for i, metric_id in enumerate(ids):
            if metric_id in ids[:i]:
                raise LocatedError(("metrics", i, "id"), f"metric {metric_id!r} is declared twice")
            # A metric is a column of the run's row and its trace: it must not overwrite a fixed one.
            if metric_id in RUN_COLUMNS or metric_id in TRACE_COLUMNS or metric_id.startswith(CALLS_PREFIX):
                raise LocatedError(("metrics", i, "id"), f"metric {metric_id!r} is a column the store already "
                                   "records for every run; choose another id")
        if "objective" not in ids:
            raise LocatedError(("metrics",), "every task declares an 'objective' metric")
        if self.target is not None and self.target.metric not in ids:
            raise LocatedError(("target", "metric"), f"target metric {self.target.metric!r} is not among metrics {ids}")
        return self

    def metric(self, metric_id: str) -> Metric:
        """Return the declared metric ``metric_id``."""
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    def resolve_parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Scalar]:
        """Defaults updated by ``overrides``, each of its parameter's type (an int becomes a float's).

        Raises
        ------
        ValueError
            For an unknown name, a value of another type, or one outside the choices.
        """
        values = {name: p.check(p.default) for name, p in self.parameters.items()}
        for name, value in (overrides or {}).items():
            if name not in self.parameters:
                raise ValueError(f"task {self.id!r} has no parameter {name!r} (has {sorted(self.parameters)})")
            try:
                values[name] = self.parameters[name].check(value)
            except ValueError as exc:
                raise ValueError(f"task {self.id!r} parameter {name!r}: {exc}") from None
        return values


class MethodImplementation(Spec):
    """How one framework realizes a method: a library optimizer, or a module of ours.

    ``optimizer`` names a ``torch.optim`` class or an ``optax`` transformation; ``args`` maps
    each of its keyword arguments to one of the method's hyperparameters, or to a list of them
    for a tuple argument (``betas: [b1, b2]``); ``fixed`` gives constant keyword arguments. ``entry`` is a ``module:attr`` factory called with all
    hyperparameters as keyword arguments.
    """

    optimizer: Text | None = Field(default=None, pattern=r"^(torch\.optim|optax)\.[A-Za-z_][A-Za-z0-9_]*$")
    args: dict[Text, Text | tuple[Text, ...]] = Field(default_factory=dict)
    fixed: dict[Text, FixedValue] = Field(default_factory=dict)
    entry: Text | None = None
    jit: StrictBool = Field(
        default=False,
        description="jax only: the entry's init, step and output are pure jax functions, so the backend "
        "compiles each whole, ahead of time (library optax optimizers always are).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> MethodImplementation:
        if (self.optimizer is None) == (self.entry is None):
            raise ValueError("give exactly one of 'optimizer' (a library optimizer) or 'entry' (module:attr)")
        if self.entry is not None:
            if self.args or self.fixed:
                raise LocatedError(("args" if self.args else "fixed",), "'args' and 'fixed' apply to 'optimizer' only; an entry gets every hyperparameter")
            _check_entry_point(self.entry, loc=("entry",))
        return self


class SearchSpace(Spec):
    """Where a tuning protocol may draw one hyperparameter from.

    ``log_uniform`` and ``uniform`` draw a number in ``[low, high]`` (log-uniform: ``low > 0``),
    ``int`` an integer in ``[low, high]``, ``choice`` one of ``values``; ``fixed`` keeps the
    hyperparameter at ``value`` (its declared default when absent).

    Examples
    --------
    >>> SearchSpace(kind="log_uniform", low=1e-3, high=10.0).kind
    'log_uniform'
    """

    kind: Literal["log_uniform", "uniform", "int", "choice", "fixed"]
    low: Annotated[Union[StrictInt, FiniteFloat], Field(union_mode="left_to_right")] | None = None
    high: Annotated[Union[StrictInt, FiniteFloat], Field(union_mode="left_to_right")] | None = None
    values: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    value: Scalar | None = None

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> SearchSpace:
        ranged = self.kind in ("log_uniform", "uniform", "int")
        for name, wanted in (("low", ranged), ("high", ranged), ("values", self.kind == "choice"),
                             ("value", False)):
            given = getattr(self, name) is not None
            if wanted and not given:
                raise LocatedError((name,), f"a {self.kind} space needs {name}")
            if given and not wanted and not (name == "value" and self.kind == "fixed"):
                raise LocatedError((name,), f"not a field of a {self.kind} space")
        if ranged:
            if self.kind == "int" and (type(self.low) is not int or type(self.high) is not int):
                raise LocatedError(("low",), "an int space has integer bounds")
            if not self.low < self.high:
                raise LocatedError(("high",), f"must exceed low ({self.low})")
            if self.kind == "log_uniform" and not self.low > 0:
                raise LocatedError(("low",), "a log_uniform space needs low > 0")
        return self

    @property
    def tuned(self) -> bool:
        """Whether a protocol draws this hyperparameter (every kind but ``fixed``)."""
        return self.kind != "fixed"


class MethodSpec(Spec):
    """A method: an update rule with hyperparameters, in one or more frameworks."""

    id: Id
    name: Text = Field(min_length=1)
    family: Id
    paper: Text = Field(min_length=1, description="The source, or 'baseline' with the library named.")
    description: Text = ""
    notes: Text = ""
    requires: tuple[Capability, ...] = Field(min_length=1)
    requires_when: dict[Text, dict[Text, tuple[Capability, ...]]] = Field(
        default_factory=dict,
        description="Hyperparameter -> value -> capabilities that value adds to 'requires'.",
    )
    hyperparameters: dict[Text, Scalar] = Field(
        default_factory=dict, description="Hyperparameter -> its default; every value given for it has the default's type."
    )
    # Both only restrict what a run may be given; the resolved values are in the run id, so
    # they are left out of model_dump (and thus of run ids).
    types: dict[Text, ScalarType] = Field(
        default_factory=dict, exclude=True, description="Hyperparameter -> its type, when not its default's (e.g. float for 1)."
    )
    choices: dict[Text, tuple[Scalar, ...]] = Field(
        default_factory=dict, exclude=True, description="Hyperparameter -> the only values it accepts."
    )
    search: dict[Text, SearchSpace] = Field(
        default_factory=dict, exclude=True,
        description="Hyperparameter -> where a suite's tuning protocol draws it from (the others stay fixed).",
    )
    implementations: dict[Framework, MethodImplementation] = Field(min_length=1)

    def check_hyperparameter(self, name: str, value: Any) -> Scalar:
        """``value`` as a value of hyperparameter ``name``: its type and choices, else ``ValueError``."""
        kind = self.types.get(name) or type_of(self.hyperparameters[name])
        return check_value(value, kind, self.choices.get(name))

    def requirements(self, hyperparameters: dict[str, Any]) -> frozenset[str]:
        """What the oracle must provide for these hyperparameters: ``requires`` plus ``requires_when``'s."""
        needed = set(self.requires)
        for name, by_value in self.requires_when.items():
            needed.update(by_value.get(str(hyperparameters.get(name)), ()))
        return frozenset(needed)

    @model_validator(mode="after")
    def _args_name_hyperparameters(self) -> MethodSpec:
        declared = sorted(self.hyperparameters)
        for field in ("requires_when", "types", "choices", "search"):
            for name in getattr(self, field):
                if name not in self.hyperparameters:
                    raise LocatedError((field, name), f"not a hyperparameter (declared: {declared})")
        for name, choices in self.choices.items():
            for i, choice in enumerate(choices):
                try:
                    self.check_hyperparameter(name, choice)  # its type; a choice is one of choices
                except ValueError as exc:
                    raise LocatedError(("choices", name, i), str(exc)) from None
        for name, value in self.hyperparameters.items():
            try:
                self.check_hyperparameter(name, value)
            except ValueError as exc:
                raise LocatedError(("hyperparameters", name), str(exc)) from None
        for name, space in self.search.items():
            self._check_space(name, space)
        for name, by_value in self.requires_when.items():
            for value in by_value:
                allowed = self.choices.get(name)
                if allowed is not None and value not in map(str, allowed):
                    raise LocatedError(("requires_when", name, value), f"not one of choices {list(allowed)}")
        for framework, impl in self.implementations.items():
            at = ("implementations", framework)
            for kwarg, names in impl.args.items():
                for hp in (names,) if isinstance(names, str) else names:
                    if hp not in self.hyperparameters:
                        raise LocatedError((*at, "args", kwarg), f"{hp!r} is not a hyperparameter (declared: {declared})")
            if impl.jit and (framework != "jax" or impl.entry is None):
                raise LocatedError((*at, "jit"), "applies to a jax entry (optax optimizers are compiled anyway)")
            if impl.optimizer is not None and not impl.optimizer.startswith(
                "torch.optim." if framework == "torch" else "optax."
            ):
                raise LocatedError((*at, "optimizer"), f"{impl.optimizer!r} is not a {framework} optimizer")
        return self

    def _check_space(self, name: str, space: SearchSpace) -> None:
        """A search space draws values of its hyperparameter's type (and choices)."""
        kind = self.types.get(name) or type_of(self.hyperparameters[name])
        numeric = {"log_uniform": "float", "uniform": "float", "int": "int"}.get(space.kind)
        if numeric is not None and numeric != kind:
            raise LocatedError(("search", name, "kind"), f"{'an' if space.kind == 'int' else 'a'} {space.kind} space draws {numeric}s; {name!r} is {kind}")
        at = {"low": space.low, "high": space.high, "value": space.value}
        points = [(("values", i), v) for i, v in enumerate(space.values or ())]
        points += [((field,), v) for field, v in at.items() if v is not None]
        for where, value in points:
            try:
                self.check_hyperparameter(name, value)
            except ValueError as exc:
                raise LocatedError(("search", name, *where), str(exc)) from None

    @property
    def tuned_space(self) -> dict[str, SearchSpace]:
        """The hyperparameters a tuning protocol draws, and their spaces (``fixed`` ones left out)."""
        return {name: space for name, space in sorted(self.search.items()) if space.tuned}

    def is_pure(self, framework: str) -> bool:
        """Whether the backend may compile this implementation's functions whole (see ``jit``)."""
        impl = self.implementations[framework]
        return framework == "jax" and (impl.optimizer is not None or impl.jit)

    def optimizer_kwargs(self, framework: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the library optimizer of ``framework`` for these hyperparameters."""
        impl = self.implementations[framework]
        kwargs: dict[str, Any] = {
            kwarg: hyperparameters[names] if isinstance(names, str) else tuple(hyperparameters[n] for n in names)
            for kwarg, names in impl.args.items()
        }
        return kwargs | dict(impl.fixed)

    def resolve_hyperparameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Scalar]:
        """Declared hyperparameters updated by ``overrides``, each of its declared type.

        Raises
        ------
        ValueError
            For an unknown name, a value of another type, or one outside its choices.
        """
        values = {name: self.check_hyperparameter(name, v) for name, v in self.hyperparameters.items()}
        for name, value in (overrides or {}).items():
            if name not in values:
                raise ValueError(f"method {self.id!r} has no hyperparameter {name!r} (has {sorted(values)})")
            try:
                values[name] = self.check_hyperparameter(name, value)
            except ValueError as exc:
                raise ValueError(f"method {self.id!r} hyperparameter {name!r}: {exc}") from None
        return values


class HardwareProfile(Spec):
    """Where a run executes: device kind, device count, ranks and threads."""

    id: Id
    name: Text = Field(min_length=1)
    description: Text = ""
    device: Literal["cpu", "cuda"]
    devices: Count = 1
    ranks: Count = Field(default=1, description="torch.distributed ranks of one run.")
    dist_backend: Literal["gloo", "nccl"] | None = None
    threads: Count | None = Field(default=1, description="Intra-op threads per rank; null leaves the default.")
    memory_limit_mb: Count | None = None

    @model_validator(mode="after")
    def _ranks_need_a_backend(self) -> HardwareProfile:
        if self.ranks > 1 and self.dist_backend is None:
            raise LocatedError(("ranks",), "a profile with ranks > 1 names its dist_backend (gloo or nccl)")
        if self.dist_backend == "nccl" and self.device != "cuda":
            raise LocatedError(("dist_backend",), "nccl needs device: cuda")
        return self


class SuiteEntry(Spec):
    """One block of a suite: every task x every method, over a grid of task parameters."""

    tasks: tuple[Id, ...] = Field(min_length=1)
    methods: tuple[Id, ...] = Field(min_length=1)
    grid: dict[Id, tuple[Scalar, ...]] = Field(
        default_factory=dict, description="Task parameter -> values; the product is taken."
    )
    hyperparameters: dict[Id, dict[Text, FixedValue]] = Field(
        default_factory=dict,
        description="Method id -> hyperparameter overrides for this entry; a list is a grid (the product is taken).",
    )
    frameworks: tuple[Framework, ...] | None = Field(default=None, description="Overrides the suite's frameworks.")
    budget: Budget | None = Field(default=None, description="Overrides the tasks' budgets.")
    probes: tuple[ProbeRef, ...] = Field(default=(), description="Probes added to the tasks' own.")

    @model_validator(mode="after")
    def _overrides_name_listed_methods(self) -> SuiteEntry:
        for method_id in self.hyperparameters:
            if method_id not in self.methods:
                raise LocatedError(("hyperparameters", method_id), "method is not listed in this entry's methods")
        for name, values in self.grid.items():
            if not values:
                raise LocatedError(("grid", name), "give at least one value")
        for method_id, overrides in self.hyperparameters.items():
            for name, value in overrides.items():
                if value == ():
                    raise LocatedError(("hyperparameters", method_id, name), "give at least one value")
        return self

    def hyperparameter_grid(self, method_id: str) -> list[dict[str, Scalar]]:
        """The method's overrides, one dict per point of the product of its listed values.

        Examples
        --------
        >>> entry = SuiteEntry(tasks=("t",), methods=("gd",), hyperparameters={"gd": {"lr": [1, 2], "b": 0.9}})
        >>> entry.hyperparameter_grid("gd")
        [{'lr': 1, 'b': 0.9}, {'lr': 2, 'b': 0.9}]
        """
        overrides = self.hyperparameters.get(method_id, {})
        axes = [value if isinstance(value, tuple) else (value,) for value in overrides.values()]
        return [dict(zip(overrides, point)) for point in itertools.product(*axes)]


#: What a tuning protocol may select on besides a task metric: deterministic, so a study repeats.
STEPS_TO_TARGET = "steps_to_target"
#: The held-out splits a task with data may measure a metric on: ``validation_<metric>``, ``test_<metric>``.
SPLITS = ("validation", "test")


def split_metric(split: str, metric: str) -> str:
    """The id of ``metric`` measured on a held-out ``split`` (``train``: the metric itself).

    Examples
    --------
    >>> split_metric("validation", "loss"), split_metric("train", "objective")
    ('validation_loss', 'objective')
    """
    return metric if split == "train" else f"{split}_{metric}"


def is_split_metric(metric_id: str) -> bool:
    """Whether ``metric_id`` is measured on a held-out split (absent where a variant holds nothing out)."""
    return metric_id.startswith(tuple(f"{split}_" for split in SPLITS))


class Tuning(Spec):
    """A suite's tuning protocol: a study per (task variant, tunable method, framework, hardware).

    Each study draws ``trials`` settings of the method's search space with Optuna's sampler
    (``qmc``: scrambled Sobol, AlgoPerf's quasirandom search; ``tpe``; ``grid``), runs each
    once on seed ``trial_seed``, selects the best on ``metric`` (a task metric, read on
    ``split``: ``validation`` reads the task's ``validation_<metric>``; or ``steps_to_target``,
    fewest first), and reruns the selected setting on the fresh seeds ``0..rerun_seeds-1``.

    Examples
    --------
    >>> Tuning(trials=16, metric="steps_to_target", split="train").sampler
    'qmc'
    """

    trials: Count
    sampler: Literal["qmc", "tpe", "grid"] = "qmc"
    metric: Id
    split: Literal["train", "validation"] = "validation"
    select: Literal["best"] = "best"
    rerun_seeds: Count = 5
    seed: Seed = Field(default=0, description="The sampler's seed.")
    trial_seed: Seed = Field(default=1000, description="The run seed of every trial (fresh: not a rerun seed).")
    batch: Count = Field(default=4, description="Trials a tpe study asks per round, whatever the worker count.")

    @model_validator(mode="after")
    def _fresh_rerun_seeds(self) -> Tuning:
        if self.trial_seed < self.rerun_seeds:
            raise LocatedError(("trial_seed",), f"must not be a rerun seed (0..{self.rerun_seeds - 1})")
        if self.metric == STEPS_TO_TARGET and self.split != "train":
            raise LocatedError(("split",), "steps_to_target is counted on the task's target metric: split train")
        return self

    def column(self) -> str:
        """The row column a study selects on."""
        return self.metric if self.metric == STEPS_TO_TARGET else split_metric(self.split, self.metric)


class SuiteSpec(Spec):
    """A named matrix: entries x frameworks x hardware profiles x seeds, and an optional tuning protocol."""

    id: Id
    description: Text = ""
    seeds: tuple[Seed, ...] = Field(default=(0,), min_length=1)
    frameworks: tuple[Framework, ...] = Field(default=("torch",), min_length=1)
    hardware: tuple[Id, ...] = Field(default=("cpu",), min_length=1)
    entries: tuple[SuiteEntry, ...] = Field(min_length=1)
    tuning: Tuning | None = Field(default=None, description="Tune every method with a search space (see Tuning).")


SPEC_TYPES: dict[str, type[Spec]] = {
    "task": TaskSpec,
    "method": MethodSpec,
    "hardware": HardwareProfile,
    "suite": SuiteSpec,
}


def _check_entry_point(entry: str, *, loc: tuple[str, ...]) -> None:
    module, sep, attr = entry.partition(":")
    if not sep or not module or not attr.isidentifier():
        raise LocatedError(loc, f"{entry!r} is not 'module:attr' (a module path or a file.py beside the YAML)")
