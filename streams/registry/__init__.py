"""A small schema registry speaking the Confluent Schema Registry REST API (AVRO only).

State lives in a compacted Kafka topic; see :mod:`streams.registry.kafka_storage`.
"""

from streams.registry.app import create_app
from streams.registry.compat import Level
from streams.registry.errors import RegistryServiceError
from streams.registry.kafka_storage import KafkaStorage
from streams.registry.storage import MemoryLog, MemoryStorage, Storage

__all__ = [
    "KafkaStorage", "Level", "MemoryLog", "MemoryStorage", "RegistryServiceError", "Storage",
    "create_app",
]
