"""Reading a Prometheus exposition in tests: every sample by name and labels, and sums by label."""

from __future__ import annotations

import collections

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def metrics(base_url: str, token: str | None = None) -> Samples:
    """GET /metrics from a server's HTTP port: every sample of the answer, by name and labels."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def by_labels(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The non-zero samples of `name`, summed by the values of `keys`."""
    out: collections.Counter[tuple[str, ...]] = collections.Counter()
    for (sample, labels), value in samples.items():
        if sample == name and value:
            found = dict(labels)
            out[tuple(found[k] for k in keys)] += value
    return dict(out)
