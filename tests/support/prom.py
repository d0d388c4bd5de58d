"""Reading numbers back from a Prometheus text exposition (``/metrics``), for assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric_sum"]


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` (``…_total``, ``…_count``: the sample's name,
    not the family's) that carry every label given with that value; 0 if there are none.

    A label given as ``""`` matches only a sample that has it, empty."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
