"""Run a Faust topology with its own consumer group and offset reset (tests, benchmarks).

``python -m topologies.users.testing NAME APP_ID [earliest|latest]`` builds
``topologies.NAME.app.create_app(settings, app_id=APP_ID, consumer_auto_offset_reset=...)`` on the
environment's settings and runs it until terminated, so a test's workers never join (or steal
partitions from) the group of a worker already running on a shared stack.
"""

from __future__ import annotations

import importlib
import sys

from core.settings import get_settings
from topologies.faust_runtime import run_worker


def main(argv: list[str]) -> None:
    """Parse ``NAME APP_ID [RESET]`` and run the worker."""
    name, app_id = argv[0], argv[1]
    reset = argv[2] if len(argv) > 2 else "latest"
    module = importlib.import_module(f"topologies.{name}.app")
    run_worker(module.create_app(get_settings(), app_id=app_id, consumer_auto_offset_reset=reset))


if __name__ == "__main__":
    main(sys.argv[1:])
