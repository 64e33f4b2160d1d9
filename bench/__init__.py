"""Benchmarks of persistd against pgbench on the same PostgreSQL (python -m bench)."""
