"""``feedstream down``: stop everything ``feedstream up`` started."""

from __future__ import annotations

from rich.console import Console

from core.settings import get_settings
from ops import platform

NAME = "down"
console = Console(highlight=False)


def command() -> None:
    """Stop the API, the topologies and the engines that `feedstream up` started (by pid file)."""
    platform.down(get_settings(), echo=console.print)
