"""Benchmarks for batchembed; see BENCHMARKS.md."""
