"""Event backbone: topic catalog, Avro schemas and serde, producer, consumer with dead letters, admin.

Import from the modules: :mod:`streams.catalog`, :mod:`streams.serde`, :mod:`streams.producer`,
:mod:`streams.consumer`, :mod:`streams.admin`, :mod:`streams.ids`, :mod:`streams.events`,
:mod:`streams.errors`. Importing this package itself loads nothing heavy.
"""
