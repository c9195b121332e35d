"""What the Pants plugin and the engine must agree on, defined once.

The plugin runs inside Pants (CPython 3.9) and the engine in the project's resolve (CPython 3.11):
this package imports nothing but the standard library, so both, and the benchmarks, can use it.
The plugin passes these values to the engine on its command line; the engine never derives them
again.
"""
