"""The benchmark: the Patients API against plain PostgreSQL doing the same work (`python -m bench.run`)."""

from pathlib import Path

from patients.repository import Queries

HERE = Path(__file__).resolve().parent

# The benchmark's own named queries (its data set, its cluster); the product's stay in queries/.
bench_queries = Queries(HERE / "queries")
