"""Run one task x method pair, as the engine tests need it."""

from __future__ import annotations


def single_run(catalog, task, method, framework, *, params=None, hyperparameters=None, budget=None, seed=0,
               hardware="cpu"):
    """The one planned run of ``task`` x ``method`` in ``framework`` on ``hardware`` (a RunSpec with its identity)."""
    from harness.plan import make_plan
    from harness.spec import SuiteEntry, SuiteSpec

    entry = SuiteEntry(tasks=(task,), methods=(method,), grid={k: (v,) for k, v in (params or {}).items()},
                       hyperparameters={method: hyperparameters} if hyperparameters else {}, budget=budget)
    suite = SuiteSpec(id="single", seeds=(seed,), frameworks=(framework,), hardware=(hardware,), entries=(entry,))
    (run,) = make_plan(catalog, suite=suite).runs
    return run


def run_single(catalog, task, method, framework, *, params=None, hyperparameters=None, budget=None, seed=0):
    """Execute the one run of ``task`` x ``method`` in ``framework`` on the cpu profile; return its result."""
    from harness.run import execute_run

    run = single_run(catalog, task, method, framework, params=params, hyperparameters=hyperparameters,
                     budget=budget, seed=seed)
    return execute_run(run, catalog)


#: Smaller values of hyperparameters whose defaults make the registry-wide checks slow (an offline
#: phase's training): the contract and smoke tests exercise the method's structure, not its training.
QUICK_HYPERPARAMETERS = {"dcdm": {"train_steps": 5, "lanczos_vectors": 20}}


def quick_hyperparameters(spec):
    """``spec``'s declared hyperparameters with :data:`QUICK_HYPERPARAMETERS`' values for it."""
    return spec.resolve_hyperparameters(QUICK_HYPERPARAMETERS.get(spec.id))
