"""The local Prometheus's configuration: scrape every process of ``feedstream up``, load our rules.

Targets: the API (``/metrics`` on its port), itself, and every process that published a file_sd
target under ``<state_dir>/monitoring/targets/`` (each topology worker, and the trending job's
Flink reporter): :func:`topologies.metrics.publish_target`. A stopped process's target stays and
reads ``up == 0``, which is what the FeedstreamTargetDown alert is for.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from core.settings import Settings
from topologies.metrics import targets_dir

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yml"
RULES_TEST = HERE / "rules_test.yml"
DASHBOARD = HERE / "dashboard.json"
SCRAPE_INTERVAL = "5s"
METRIC_NAME = re.compile(r"\b(feedstream_[a-z0-9_]+|process_[a-z_]+|flink_[A-Za-z0-9_]+|up)\b")
FLINK_PREFIX = "flink_"  # the trending job's reporter (tests/integration/test_trending_metrics.py scrapes it)


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the Grafana dashboard's panels."""
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression of ours reads."""
    return set(METRIC_NAME.findall(expr))


def prometheus_yml(s: Settings) -> str:
    """``prometheus.yml`` for the local stack on ``s``."""
    conf = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL,
                   "external_labels": {"stack": "local"}},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{s.host}:{s.prometheus_port}"]}]},
            {"job_name": "api", "static_configs": [{"targets": [f"{s.host}:{s.api_port}"]}]},
            {"job_name": "processes",  # job and topology labels come from each target file
             "file_sd_configs": [{"files": [str(targets_dir(s.state_dir) / "*.json")],
                                  "refresh_interval": "5s"}]},
        ],
    }
    return yaml.safe_dump(conf, sort_keys=False)
