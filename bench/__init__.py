"""Benchmarks. Run them with ``make bench`` (or ``python -m bench agents --agents 1000``)."""
