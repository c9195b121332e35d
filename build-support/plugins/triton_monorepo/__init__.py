"""Pants plugin: a thin adapter that turns `triton_model` targets into runs of the tritonbuild engine."""
