"""The project's benchmarks: `python benchmarks/run.py [--quick] [--suite NAME ...]`."""
