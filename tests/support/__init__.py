"""Helpers shared by the test suites (importable as ``support``: ``tests/conftest.py`` puts ``tests/`` on sys.path).

- :mod:`support.serde`: ``mock_serde`` (in-process registry), ``as_millis`` for comparisons;
- :mod:`support.events`: graph and post events (``edge``, ``post_edited``, ``post_deleted``);
- :mod:`support.wait`: ``wait_until``;
- :mod:`support.api`: the API in-process on a test stack, tokens, and ``TopicTail``.

Helpers benchmarks use too live in the packages: ``core.events.post_created``,
``core.settings.isolated``, ``streams.samples.sample_event`` and :mod:`ops.workers` (topology
workers as subprocesses, with their own consumer group and offset reset).
"""
