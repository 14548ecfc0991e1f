"""Routers per resource: ``writes_*`` produce events, read routers serve views; ``system`` is ops."""
