"""Engagement topology: exact deduplicated counters, affinity, notifications, windowed counts."""
