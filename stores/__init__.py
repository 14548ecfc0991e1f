"""Store access shared by topologies and serving: Cassandra (durable views) and Redis (hot views).

Each view module (e.g. ``stores.posts``) declares its CQL tables in a module-level ``DDL``
list and its Redis key layout as functions; :func:`stores.cassandra.migrate` applies every
module's ``DDL`` idempotently.
"""
