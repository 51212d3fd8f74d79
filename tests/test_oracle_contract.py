"""The Oracle contract, written once: the schema's capabilities, the protocol, the sealed oracle,
and what methods and probes use of it cannot drift apart.

- every name of ``spec.CAPABILITIES`` is a call of :class:`harness.oracle.CountingOracle` (and of
  the decoy), answered by both backends' oracles on a catalog task that provides it;
- the :class:`harness.api.Oracle` protocol lists exactly what the sealed oracle exposes, and its
  calls are the capabilities (plus ``sample_indices`` on finite sums);
- every method module (``methods/*/*.py``) and probe (``harness/probes/*.py``) reads only
  protocol members of its oracle, and never ``oracle.problem``.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _capabilities import CALLS, counted, leaves, rows, shapes

from harness.api import Oracle
from harness.backends import make_backend
from harness.catalog import Catalog
from harness.oracle import CountingOracle
from harness.sealed import EXTRA_CALLS, DecoyOracle, OracleFacts, facts_of, seal
from harness.spec import CAPABILITIES

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "jax")

@functools.cache
def catalog() -> Catalog:
    return Catalog.load()


@functools.cache
def backend(framework: str) -> Any:
    return make_backend(framework, dtype="float64")


@functools.cache
def problem(task_id: str, framework: str) -> Any:
    entry = catalog().tasks[task_id]
    cls = entry.resolve(entry.spec.implementations[framework])
    return cls(backend=backend(framework), **entry.spec.resolve_parameters({}))


def provider(capability: str) -> str:
    """The first catalog task (logreg first) that provides ``capability`` in both frameworks."""
    tasks = sorted(catalog().tasks.values(), key=lambda e: (e.spec.id != "logreg", e.spec.id))
    for entry in tasks:
        if capability in entry.spec.provides and set(FRAMEWORKS) <= set(entry.spec.implementations):
            return entry.spec.id
    raise AssertionError(f"no catalog task provides {capability!r} in {FRAMEWORKS}")


def protocol_members() -> tuple[set[str], set[str]]:
    """The facts (annotated attributes) and the calls (methods) of :class:`harness.api.Oracle`."""
    facts = set(Oracle.__annotations__)
    calls = {name for name, value in vars(Oracle).items() if not name.startswith("_") and inspect.isfunction(value)}
    return facts, calls


def test_every_capability_has_a_call_here_and_in_the_oracles() -> None:
    assert set(CALLS) == set(CAPABILITIES)
    for name in CAPABILITIES:
        assert callable(getattr(CountingOracle, name, None)), f"CountingOracle has no {name!r}"
        assert callable(getattr(DecoyOracle, name, None)), f"DecoyOracle has no {name!r} (the warm-up step)"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_each_capability_is_answered_by_both_backends(capability: str, framework: str) -> None:
    task_id = provider(capability)
    spec = catalog().tasks[task_id].spec
    prob = problem(task_id, framework)
    b = backend(framework)
    b.seed(0)
    oracle = b.make_oracle(prob, capabilities=frozenset(spec.provides))
    x = prob.init_params(0)
    v = b.asarray(np.random.default_rng(1).standard_normal(int(x.shape[0])))
    logits_shape = tuple(b.to_numpy(prob.logits(x)).shape) if callable(getattr(prob, "logits", None)) else ()
    call, expected = CALLS[capability]
    answer = call(oracle, x, v)
    assert shapes(answer) == expected(int(x.shape[0]), logits_shape, rows(prob, capability))
    for leaf in leaves(answer):
        if capability in ("sample", "graph", "clients") and isinstance(leaf, np.ndarray):  # indices, nodes, sizes
            assert leaf.dtype == np.int64 and not leaf.flags.writeable
            continue
        assert type(leaf) is type(x) and np.all(np.isfinite(b.to_numpy(leaf)))
    assert dict(oracle.counts) == counted(prob, capability)
    # Not provided: the call refuses, uncounted.
    bare = b.make_oracle(prob, capabilities=frozenset(spec.provides) - {capability})
    with pytest.raises(NotImplementedError, match=capability):
        call(bare, x, v)
    assert bare.total_calls == 0


def test_the_protocol_calls_are_the_capabilities() -> None:
    _, calls = protocol_members()
    assert calls == set(CAPABILITIES) | set(EXTRA_CALLS) | {"sample_indices"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_sealed_oracle_exposes_the_protocol_and_nothing_else(framework: str) -> None:
    facts, calls = protocol_members()
    prob = problem("logreg", framework)  # a finite sum: sample_indices is offered too
    spec = catalog().tasks["logreg"].spec
    inner = backend(framework).make_oracle(prob, capabilities=frozenset(spec.provides))
    run_facts = facts_of(prob, inner, prob.init_params(0), seed=0, to_numpy=backend(framework).to_numpy)
    for oracle in (seal(inner, run_facts), seal(DecoyOracle(backend(framework), inner.capabilities, run_facts),
                                                run_facts, warmup=True)):
        public = {name for name in dir(oracle) if not name.startswith("_")}
        assert public == facts | calls
        assert oracle.layout == (("w", (prob.dim,)),) and oracle.dimension == prob.dim
    # Without a finite sum there is no sampler to draw from.
    plain = seal(inner, OracleFacts(dimension=prob.dim, seed=0))
    assert {name for name in dir(plain) if not name.startswith("_")} == facts | calls - {"sample_indices"}


def _oracle_reads(path: Path) -> set[str]:
    """Attributes read of an oracle in ``path``: ``oracle.x``, ``context.oracle.x``, ``getattr(oracle, "x", ...)``."""

    def is_oracle(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "oracle") or (
            isinstance(node, ast.Attribute) and node.attr == "oracle")

    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and is_oracle(node.value):
            names.add(node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) >= 2 and is_oracle(node.args[0]) and isinstance(node.args[1], ast.Constant)):
            names.add(node.args[1].value)
    return names


MODULES = sorted([*REPO.glob("methods/*/*.py"), *REPO.glob("harness/probes/*.py")])


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(REPO)) for p in MODULES])
def test_methods_and_probes_read_only_the_protocol(path: Path) -> None:
    facts, calls = protocol_members()
    reads = _oracle_reads(path)
    assert "problem" not in reads
    assert reads <= facts | calls, f"{path.name} reads {sorted(reads - facts - calls)} of its oracle, outside the protocol"


def test_ghost_step_reads_the_minibatch_facts_it_needs() -> None:
    """ghost-step measures its radius on the last minibatch: ``stochastic`` and ``last_indices`` are protocol facts."""
    facts, _ = protocol_members()
    reads = _oracle_reads(REPO / "methods" / "softmax_geometry" / "ghost_step.py")
    assert {"stochastic", "last_indices"} <= reads and {"stochastic", "last_indices"} <= facts


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_values_is_value_per_row_and_counts_each_row_against_the_budget(framework: str) -> None:
    from harness.oracle import OracleBudgetExceeded

    prob = problem("logreg", framework)
    spec = catalog().tasks["logreg"].spec
    points = np.random.default_rng(0).standard_normal((5, int(prob.init_params(0).shape[0])))
    oracle = backend(framework).make_oracle(prob, capabilities=frozenset(spec.provides), max_calls=7)
    got = backend(framework).to_numpy(oracle.values(backend(framework).asarray(points)))
    one = [float(backend(framework).to_numpy(oracle.uncounted().value(backend(framework).asarray(p)))) for p in points]
    np.testing.assert_allclose(got, one, rtol=1e-13)
    assert dict(oracle.counts) == {"value": 5}
    with pytest.raises(OracleBudgetExceeded):
        oracle.values(backend(framework).asarray(points[:3]))  # 5 + 3 > 7: refused whole, before any answer
    assert dict(oracle.counts) == {"value": 5}
