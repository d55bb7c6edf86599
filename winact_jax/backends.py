"""Backend choices: how XLA runs this project's programs, decided before JAX starts.

One home for every choice of kernels or XLA flags per backend, apart from where
arrays live (`winact_jax.sharding`): such a choice is not about training, and the
training, sweep and benchmark commands and the test session all make it the same
way. Today there is one.

CPU convolutions on XLA's Eigen kernels, not YNNPACK. jaxlib 0.10's XLA:CPU hands
convolutions to YNNPACK. For the weight gradients of 3x3 convolutions (which XLA
computes as convolutions over the batch) YNNPACK is far slower than XLA's own Eigen
convolutions, and one thread idles while the other finishes them: SeedBackbone's
training step is 1.65x to 1.9x faster with Eigen (measured, re-measurable, in
docs/benchmarks.md, "Why the convolution library decides it"). The training, sweep
and benchmark commands therefore start with YNNPACK's convolutions switched off.

The switch is an XLA flag, read once, when JAX first uses a device: call
`prefer_eigen_convolutions` before that. It changes only the CPU backend, so it
is harmless on a GPU machine. It is set only for the jaxlib versions it was
measured on (XLA aborts on a flag it does not know), and never over a choice the
user made in `XLA_FLAGS`.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import MutableMapping

YNN_FUSION_TYPE_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
EIGEN_CONVOLUTIONS_FLAG = f"{YNN_FUSION_TYPE_FLAG}=-individual_convolution"
# (major, minor) of the jaxlib releases whose XLA knows the flag and was measured.
MEASURED_JAXLIB = ((0, 10),)


def jaxlib_release() -> tuple[int, int] | None:
    """(major, minor) of the installed jaxlib, or None if it cannot be read."""
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def prefer_eigen_convolutions(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Adds the flag that gives CPU convolutions to Eigen to `XLA_FLAGS`.

    Does nothing when `XLA_FLAGS` already sets YNNPACK fusion types, or when the
    installed jaxlib is not one the flag was measured on. Returns whether the flag
    was added. Only takes effect if JAX has not used a device yet in this process.

    Example:
      >>> env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
      >>> prefer_eigen_convolutions(env) == (jaxlib_release() in MEASURED_JAXLIB)
      True
    """
    flags = environ.get("XLA_FLAGS", "")
    if YNN_FUSION_TYPE_FLAG in flags or jaxlib_release() not in MEASURED_JAXLIB:
        return False
    environ["XLA_FLAGS"] = f"{flags} {EIGEN_CONVOLUTIONS_FLAG}".strip()
    return True
