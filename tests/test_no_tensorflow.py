"""`import winact_jax` never imports TensorFlow (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import json, sys
    import winact_jax
    loaded = sorted(m for m in sys.modules if m == "winact_jax" or m.startswith("winact_jax."))
    tf = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print(json.dumps({"file": winact_jax.__file__, "loaded": loaded, "tensorflow": tf}))
    """
)


def test_import_winact_jax_does_not_import_tensorflow():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # the package under test, with everything its __init__ imports, was loaded ...
    assert pathlib.Path(report["file"]).resolve().is_relative_to(ROOT / "winact_jax"), report
    for module in (
        "winact_jax.windows",
        "winact_jax.window_activations",
        "winact_jax.elementwise",
        "winact_jax.registry",
    ):
        assert module in report["loaded"], report
    # ... and TensorFlow was not.
    assert report["tensorflow"] == [], report
