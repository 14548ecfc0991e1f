"""Readers: one small object per read view (timeline, posts, profiles, engagement, graph, freshness,
comments, notifications), each with a Redis and/or a Cassandra implementation behind one
``Protocol`` and its engine's circuit breaker inside; composites pick Redis first and fall back to
Cassandra (the "online store" pattern). :mod:`serving.readers.visibility` holds the visibility rules.
"""
