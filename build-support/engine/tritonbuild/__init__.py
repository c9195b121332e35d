"""The engine behind package-triton: validate a model folder, build its python execution
environment, and write the deterministic archive that Triton (and SageMaker MME) loads.

Plain typed Python with a CLI (`python -m tritonbuild`); the Pants plugin only calls it.
"""
