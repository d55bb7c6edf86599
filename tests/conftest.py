"""Test-session setup.

Four host CPU devices, so the data-parallel code is exercised on every test machine,
and the CPU convolution kernels the commands use (`experiments.train` sets the same
flag), so runs in subprocesses and in this process compute alike. XLA reads its
flags when JAX starts its backend, hence here.
"""

import os

from winact_jax.backends import prefer_eigen_convolutions

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"]
).strip()
prefer_eigen_convolutions()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
