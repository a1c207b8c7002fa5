"""Benchmarks for batchembed (issue 4); see BENCHMARKS.md."""
