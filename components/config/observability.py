"""Monitoring: kube-prometheus-stack."""

from __future__ import annotations

from dataclasses import dataclass

from components.config.reader import (
    DURATION,
    Reader,
    parse_semver,
)


@dataclass(frozen=True)
class ObservabilityConfig:
    chart_version: str
    retention: str
    storage_gib: int
    opencost_version: str

    @classmethod
    def from_reader(cls, r: Reader) -> ObservabilityConfig:
        retention = r.matching("prometheusRetention", DURATION, "a duration like 15d")
        parse_semver("kubePrometheusStackVersion", r.str("kubePrometheusStackVersion"))
        opencost = r.str("opencostVersion").lstrip("v")
        parse_semver("opencostVersion", opencost)
        return cls(
            r.str("kubePrometheusStackVersion").lstrip("v"),
            retention,
            r.int("prometheusStorageGiB", lo=1, hi=16384),  # an EBS gp3 volume holds at most 16 TiB
            opencost,
        )
