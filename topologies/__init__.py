"""Topologies: Faust workers (graph, fan-out, engagement) and PyFlink jobs (trending).

Each lives in its own package with pure per-event logic in ``logic.py`` and thin runtime glue.
"""
