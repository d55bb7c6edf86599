"""Test-session setup.

Four host CPU devices, so the data-parallel code is exercised on every test machine
(the flag must be set before JAX starts its backend, hence here).
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"]
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
