"""Where `test-triton` runs the Triton server."""

from enum import Enum


class Launcher(Enum):
    LOCAL = "local"
    DOCKER = "docker"
