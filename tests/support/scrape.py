"""Read a Prometheus text exposition into samples tests can query."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(sample name, frozenset of labels) -> value`` of every sample in ``text``."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= ls)


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def names(text: str) -> set[str]:
    """Every series name ``text`` declares (``foo_total``, ``foo_bucket``, ...), with samples yet or not.

    A labelled metric with no child yet has its HELP and TYPE lines but no sample line.
    """
    out: set[str] = set()
    for fam in text_string_to_metric_families(text):
        out.add(fam.name)
        out.update(fam.name + suffix for suffix in SUFFIXES.get(fam.type, ()))
        out.update(s.name for s in fam.samples)
    return out
