"""Prometheus and Grafana (kube-prometheus-stack) with the platform's dashboards and rules."""
