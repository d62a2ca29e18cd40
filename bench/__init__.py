"""Benchmarks (`make bench`): each figure measured beside a reference in the same run."""
