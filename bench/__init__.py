"""Benchmarks of Shouwang (not tests: they measure, they never fail on a figure). See docs/benchmarks.md."""
