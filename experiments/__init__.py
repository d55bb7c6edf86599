"""Command lines: training, sweeps, reports and benchmarks (`python -m experiments.<name>`)."""
