"""The local single-node stack of real engines: Kafka (KRaft), Cassandra, Redis, Apicurio
Registry (schema registry, KafkaSQL storage), and the jars PyFlink's embedded MiniCluster needs. Run as plain local processes."""

from ops.local.errors import LocalStackError
from ops.local.stack import ENGINE_NAMES, down, status, up

__all__ = ["ENGINE_NAMES", "LocalStackError", "down", "status", "up"]
