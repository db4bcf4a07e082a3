"""Synthetic district and traffic for the demo, the tests and the benchmarks."""
