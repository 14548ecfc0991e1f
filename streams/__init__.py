"""Event backbone: topic catalog, Avro schemas and serde, producer, consumer with dead letters, admin.

Import from the modules (importing this package itself loads nothing heavy)::

    from core.events import new_event
    from core.ids import new_post_id
    from streams.producer import EventProducer

    with EventProducer() as producer:  # settings from core.settings.get_settings()
        post = new_event("u1", post_id=new_post_id(), author_id="u1", text="hello #kafka",
                         hashtags=["kafka"])
        report = producer.send("PostCreated", post)  # returns once Kafka confirmed it

- :mod:`streams.catalog`: ``Topic`` and the topic constants, ``topic_for(record)``.
- :mod:`streams.serde`: ``Serde.encode/decode`` (Confluent wire format, fastavro).
- :mod:`streams.consumer`: ``EventConsumer`` (commit after handler, dead letters).
- :mod:`streams.admin`: ``apply_topics``, ``register_all_schemas``, ``apply_all``.
- :mod:`streams.samples`: ``sample_event``, a valid value for any record (tests, benchmarks).
"""
