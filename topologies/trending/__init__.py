"""Trending windows over hashtags and posts (PyFlink): see ``logic`` (pure) and ``job`` (glue)."""
