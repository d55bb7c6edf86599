"""Command lines: training, sweeps, reports and benchmarks (`python -m experiments.<name>`).

Installed with the package (`pip install winact-jax`), so they run from any
directory, also as the console scripts `winact-train`, `winact-sweep`,
`winact-report` and `winact-benchmark`.
"""
