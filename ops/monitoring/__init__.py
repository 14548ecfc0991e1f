"""Monitoring: the local Prometheus's configuration, alert rules and the Grafana dashboard.

Files beside this module: ``rules.yml`` (alert rules; compose mounts it, k8s ships the same groups
as a PrometheusRule), ``rules_test.yml`` (``promtool test rules``), ``dashboard.json`` (Grafana).
"""

from ops.monitoring.config import (
    DASHBOARD,
    FLINK_PREFIX,
    RULES,
    RULES_TEST,
    dashboard_queries,
    metric_names,
    prometheus_yml,
)

__all__ = ["DASHBOARD", "FLINK_PREFIX", "RULES", "RULES_TEST", "dashboard_queries", "metric_names",
           "prometheus_yml"]
