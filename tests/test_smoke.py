"""``harness validate --smoke``: one step of every method, in each framework it declares, on a real task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

METHOD = """id: {id}
name: {id}
family: smoke
paper: "none: a method for tests/test_smoke.py"
requires: [grad]
hyperparameters: {{lr: 0.1}}
implementations:
  torch: {{entry: "broken.py:{cls}"}}
"""

MODULE = '''
class Shrinks:
    def __init__(self, *, lr):
        self.lr = lr
    def init(self, params, oracle):
        return None
    def step(self, params, state, oracle):
        return (params - self.lr * oracle.grad(params))[:-1], state


class Raises(Shrinks):
    def step(self, params, state, oracle):
        raise ZeroDivisionError("the step divides by zero")


class Fine(Shrinks):
    def step(self, params, state, oracle):
        return params - self.lr * oracle.grad(params), state
'''


def validate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "validate", *args], capture_output=True, text=True,
                          timeout=600)


def test_smoke_steps_every_method_and_names_the_broken_ones_at_their_line(tmp_path: Path) -> None:
    methods = tmp_path / "mine" / "methods" / "smoke"
    methods.mkdir(parents=True)
    (methods / "broken.py").write_text(MODULE)
    for method_id, cls in (("shrinks", "Shrinks"), ("raises", "Raises"), ("fine", "Fine")):
        (methods / f"{method_id}.yaml").write_text(METHOD.format(id=method_id, cls=cls))
    assert validate("--catalog", str(tmp_path / "mine")).returncode == 0  # the imports and signatures are right
    smoked = validate("--smoke", "--catalog", str(tmp_path / "mine"))
    lines = smoked.stderr.strip().splitlines()
    assert smoked.returncode == 2 and "Traceback" not in smoked.stderr
    assert lines[-1] == "2 error(s) in the implementations"
    raises, shrinks = sorted(lines[:-1])
    assert raises.startswith(str(methods / "raises.yaml") + ":8:") and "implementations.torch.entry: smoke step on task " \
        "'logreg' (torch) raised ZeroDivisionError: the step divides by zero" in raises
    assert shrinks.startswith(str(methods / "shrinks.yaml") + ":8:") and "not a parameter vector like its input" in shrinks
