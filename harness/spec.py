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

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

__all__ = [
    "CAPABILITIES",
    "Budget",
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
    "Spec",
    "SuiteEntry",
    "SuiteSpec",
    "Target",
    "TaskSpec",
    "SPEC_TYPES",
]

Id = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        min_length=1,
        max_length=64,
        description="Stable lower-case id: letters, digits, '-', '_' and '.'.",
    ),
]
Scalar = Union[bool, int, float, str]
Framework = Literal["torch", "jax"]
Kind = Literal["task", "method", "hardware", "suite"]

#: What an oracle can give; a task lists what it provides, a method what it requires.
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
    "node_grads",
    "graph",
    "clients",
    "sample",
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
    unit: str = Field(min_length=1, description="Unit shown beside values, e.g. 'nats', 'fraction'.")
    lower_is_better: bool
    description: str = ""


class Parameter(Spec):
    """A task parameter with its default and, optionally, the values it accepts."""

    default: Scalar
    choices: tuple[Scalar, ...] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _default_is_a_choice(self) -> Parameter:
        if self.choices is not None and self.default not in self.choices:
            raise ValueError(f"default {self.default!r} is not one of choices {list(self.choices)}")
        return self


class Budget(Spec):
    """When a run stops: the first limit reached ends it."""

    steps: PositiveInt = Field(description="Maximum number of method steps.")
    oracle_calls: PositiveInt | None = Field(
        default=None, description="Maximum total oracle calls (all kinds added)."
    )
    seconds: PositiveFloat = Field(
        default=300.0, description="Wall-clock limit of the whole run, setup included."
    )


class Target(Spec):
    """A run reaches its target when `metric` first passes `value` (in its better direction)."""

    metric: Id
    value: float


class Evaluation(Spec):
    """Evaluation cadence: the clock pauses while metrics and probes are computed."""

    every: PositiveInt = Field(default=1, description="Evaluate every this many steps.")


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
    name: str = Field(min_length=1)
    family: Id
    paper: str = Field(min_length=1, description="The source this task is drawn from.")
    description: str = ""
    notes: str = ""
    parameters: dict[Id, Parameter] = Field(default_factory=dict)
    implementations: dict[Framework, str] = Field(min_length=1)
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
            _check_entry_point(entry, where=framework)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        ids = [m.id for m in self.metrics]
        if len(set(ids)) != len(ids):
            raise ValueError(f"metric ids repeat: {ids}")
        if "objective" not in ids:
            raise ValueError("every task declares an 'objective' metric")
        if self.target is not None and self.target.metric not in ids:
            raise ValueError(f"target metric {self.target.metric!r} is not among metrics {ids}")
        return self

    def metric(self, metric_id: str) -> Metric:
        """Return the declared metric ``metric_id``."""
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    def resolve_parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Scalar]:
        """Defaults updated by ``overrides``; unknown names and values outside choices raise."""
        values = {name: p.default for name, p in self.parameters.items()}
        for name, value in (overrides or {}).items():
            if name not in self.parameters:
                raise ValueError(f"task {self.id!r} has no parameter {name!r} (has {sorted(self.parameters)})")
            choices = self.parameters[name].choices
            if choices is not None and value not in choices:
                raise ValueError(f"task {self.id!r} parameter {name!r}: {value!r} is not one of {list(choices)}")
            values[name] = value
        return values


class MethodImplementation(Spec):
    """How one framework realizes a method: a library optimizer, or a module of ours.

    ``optimizer`` names a ``torch.optim`` class or an ``optax`` transformation; ``args`` maps
    each of its keyword arguments to one of the method's hyperparameters, or to a list of them
    for a tuple argument (``betas: [b1, b2]``); ``fixed`` gives constant keyword arguments. ``entry`` is a ``module:attr`` factory called with all
    hyperparameters as keyword arguments.
    """

    optimizer: str | None = Field(default=None, pattern=r"^(torch\.optim|optax)\.[A-Za-z_][A-Za-z0-9_]*$")
    args: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)
    fixed: dict[str, Scalar | tuple[Scalar, ...]] = Field(default_factory=dict)
    entry: str | None = None
    jit: bool = Field(
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
                raise ValueError("'args' and 'fixed' apply to 'optimizer' only; an entry gets every hyperparameter")
            _check_entry_point(self.entry, where="entry")
        return self


class MethodSpec(Spec):
    """A method: an update rule with hyperparameters, in one or more frameworks."""

    id: Id
    name: str = Field(min_length=1)
    family: Id
    paper: str = Field(min_length=1, description="The source, or 'baseline' with the library named.")
    description: str = ""
    notes: str = ""
    requires: tuple[Capability, ...] = Field(min_length=1)
    requires_when: dict[str, dict[str, tuple[Capability, ...]]] = Field(
        default_factory=dict,
        description="Hyperparameter -> value -> capabilities that value adds to 'requires'.",
    )
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    implementations: dict[Framework, MethodImplementation] = Field(min_length=1)

    def requirements(self, hyperparameters: dict[str, Any]) -> frozenset[str]:
        """What the oracle must provide for these hyperparameters: ``requires`` plus ``requires_when``'s."""
        needed = set(self.requires)
        for name, by_value in self.requires_when.items():
            needed.update(by_value.get(str(hyperparameters.get(name)), ()))
        return frozenset(needed)

    @model_validator(mode="after")
    def _args_name_hyperparameters(self) -> MethodSpec:
        for name in self.requires_when:
            if name not in self.hyperparameters:
                raise ValueError(f"requires_when.{name}: not a hyperparameter (declared: {sorted(self.hyperparameters)})")
        for framework, impl in self.implementations.items():
            for kwarg, names in impl.args.items():
                for hp in (names,) if isinstance(names, str) else names:
                    if hp not in self.hyperparameters:
                        raise ValueError(
                            f"implementations.{framework}.args.{kwarg}: {hp!r} is not a hyperparameter "
                            f"(declared: {sorted(self.hyperparameters)})"
                        )
            if impl.jit and (framework != "jax" or impl.entry is None):
                raise ValueError(f"implementations.{framework}.jit: applies to a jax entry (optax optimizers are compiled anyway)")
            if impl.optimizer is not None and not impl.optimizer.startswith(
                "torch.optim." if framework == "torch" else "optax."
            ):
                raise ValueError(f"implementations.{framework}.optimizer: {impl.optimizer!r} is not a {framework} optimizer")
        return self

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
        """Declared hyperparameters updated by ``overrides``; unknown names raise."""
        values = dict(self.hyperparameters)
        for name, value in (overrides or {}).items():
            if name not in values:
                raise ValueError(f"method {self.id!r} has no hyperparameter {name!r} (has {sorted(values)})")
            values[name] = value
        return values


class HardwareProfile(Spec):
    """Where a run executes: device kind, device count, ranks and threads."""

    id: Id
    name: str = Field(min_length=1)
    description: str = ""
    device: Literal["cpu", "cuda"]
    devices: PositiveInt = 1
    ranks: PositiveInt = Field(default=1, description="torch.distributed ranks of one run.")
    dist_backend: Literal["gloo", "nccl"] | None = None
    threads: PositiveInt | None = Field(default=1, description="Intra-op threads per rank; null leaves the default.")
    memory_limit_mb: PositiveInt | None = None

    @model_validator(mode="after")
    def _ranks_need_a_backend(self) -> HardwareProfile:
        if self.ranks > 1 and self.dist_backend is None:
            raise ValueError("a profile with ranks > 1 names its dist_backend (gloo or nccl)")
        if self.dist_backend == "nccl" and self.device != "cuda":
            raise ValueError("nccl needs device: cuda")
        return self


class SuiteEntry(Spec):
    """One block of a suite: every task x every method, over a grid of task parameters."""

    tasks: tuple[Id, ...] = Field(min_length=1)
    methods: tuple[Id, ...] = Field(min_length=1)
    grid: dict[Id, tuple[Scalar, ...]] = Field(
        default_factory=dict, description="Task parameter -> values; the product is taken."
    )
    hyperparameters: dict[Id, dict[str, Scalar]] = Field(
        default_factory=dict, description="Method id -> hyperparameter overrides for this entry."
    )
    frameworks: tuple[Framework, ...] | None = Field(default=None, description="Overrides the suite's frameworks.")
    budget: Budget | None = Field(default=None, description="Overrides the tasks' budgets.")
    probes: tuple[ProbeRef, ...] = Field(default=(), description="Probes added to the tasks' own.")

    @model_validator(mode="after")
    def _overrides_name_listed_methods(self) -> SuiteEntry:
        for method_id in self.hyperparameters:
            if method_id not in self.methods:
                raise ValueError(f"hyperparameters.{method_id}: method is not listed in this entry's methods")
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{name}: give at least one value")
        return self


class SuiteSpec(Spec):
    """A named matrix: entries x frameworks x hardware profiles x seeds."""

    id: Id
    description: str = ""
    seeds: tuple[NonNegativeInt, ...] = Field(default=(0,), min_length=1)
    frameworks: tuple[Framework, ...] = Field(default=("torch",), min_length=1)
    hardware: tuple[Id, ...] = Field(default=("cpu",), min_length=1)
    entries: tuple[SuiteEntry, ...] = Field(min_length=1)


SPEC_TYPES: dict[str, type[Spec]] = {
    "task": TaskSpec,
    "method": MethodSpec,
    "hardware": HardwareProfile,
    "suite": SuiteSpec,
}


def _check_entry_point(entry: str, *, where: str) -> None:
    module, sep, attr = entry.partition(":")
    if not sep or not module or not attr.isidentifier():
        raise ValueError(f"{where}: {entry!r} is not 'module:attr' (a module path or a file.py beside the YAML)")
