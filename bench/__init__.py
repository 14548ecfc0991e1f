"""Benchmarks (run through ``feedstream bench`` or ``python -m bench.<name>``); kept apart from tests."""
