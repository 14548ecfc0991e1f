"""feedstream: the CLI, settings and local engine stack of the feedstream platform."""

__all__ = ["__version__"]
__version__ = "0.1.0"
