"""A worker's preload: the framework, and what its first run would otherwise import, before any run."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_torch_preload_imports_dynamo_which_torch_optim_would_import_in_a_run() -> None:
    # torch.optim's first optimizer imports torch._dynamo (seconds): a worker pays it before its first run.
    out = _child("""
        import sys
        from harness.execute.worker import preload
        assert "torch._dynamo" not in sys.modules
        preload("torch", threads=1)
        print("torch._dynamo" in sys.modules, "jax" in sys.modules)
    """)
    assert out == "True False"  # and a torch worker does not import jax


def test_preload_starts_a_framework_once_per_process() -> None:
    out = _child("""
        import jax
        from harness.execute.worker import preload
        compiled = []
        real_jit = jax.jit
        jax.jit = lambda *a, **k: compiled.append(1) or real_jit(*a, **k)
        for _ in range(3):
            preload("jax", threads=1)
        print(len(compiled))
    """)
    assert out == "1"
