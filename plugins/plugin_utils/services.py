# Copyright: arq.monitoring contributors
# MIT License (see LICENSE)
"""The stack's services, in one place (private to the collection's plugins).

SERVICES maps each service's name to plain facts about it:

- ``job``: its scrape job in arq.monitoring.scrape_configs (the ``job`` label);
- ``group``: the inventory group of the hosts that run it;
- ``role``: the collection's role that installs it; None for ``backend``, the application;
- ``port``: the port it listens on unless the host sets ``listen_var``;
- ``listen_var``: the host variable holding its listen address (``host:port``, ``:port``);
  without its ``_web_listen_address`` suffix, the prefix of the job's host variables;
- ``metrics_path``: where its metrics are.

Alertmanager also has ``cluster_port`` and ``cluster_listen_var`` (its gossip listener);
Prometheus the paths site.yml hands to its scrape jobs: ``config_dir``, ``file_sd_dir``
(the prometheus role's file_sd target files) and ``ca_file`` (the CA it verifies with).

Readers: the scrape_configs filter, and, through the arq.monitoring.services lookup,
playbooks/site.yml, playbooks/check.yml and playbooks/templates/firewall_rules.yml.j2.
The roles' own defaults (roles/<role>/defaults/main.yml) must agree:
tests/unit/plugins/plugin_utils/test_services.py checks they do. Treat it as read-only.
"""

from __future__ import annotations

_PROMETHEUS_DIR = "/etc/prometheus"

SERVICES = {
    "node_exporter": {
        "job": "node", "group": "node_exporter", "role": "node_exporter", "port": 9100,
        "listen_var": "node_exporter_web_listen_address", "metrics_path": "/metrics",
    },
    "postgres_exporter": {
        "job": "postgres", "group": "postgres_exporter", "role": "postgres_exporter", "port": 9187,
        "listen_var": "postgres_exporter_web_listen_address", "metrics_path": "/metrics",
    },
    "redis_exporter": {
        "job": "redis", "group": "redis_exporter", "role": "redis_exporter", "port": 9121,
        "listen_var": "redis_exporter_web_listen_address", "metrics_path": "/metrics",
    },
    "victoriametrics": {
        "job": "victoriametrics", "group": "victoriametrics", "role": "victoriametrics", "port": 8428,
        "listen_var": "victoriametrics_web_listen_address", "metrics_path": "/metrics",
    },
    "alertmanager": {
        "job": "alertmanager", "group": "alertmanager", "role": "alertmanager", "port": 9093,
        "listen_var": "alertmanager_web_listen_address", "metrics_path": "/metrics",
        "cluster_port": 9094, "cluster_listen_var": "alertmanager_cluster_listen_address",
    },
    "prometheus": {
        "job": "prometheus", "group": "prometheus", "role": "prometheus", "port": 9090,
        "listen_var": "prometheus_web_listen_address", "metrics_path": "/metrics",
        "config_dir": _PROMETHEUS_DIR, "file_sd_dir": _PROMETHEUS_DIR + "/file_sd",
        "ca_file": _PROMETHEUS_DIR + "/ca.crt",
    },
    "grafana": {
        "job": "grafana", "group": "grafana", "role": "grafana", "port": 3000,
        "listen_var": "grafana_web_listen_address", "metrics_path": "/metrics",
    },
    "backend": {
        "job": "backend", "group": "backend", "role": None, "port": 3001,
        "listen_var": "backend_web_listen_address", "metrics_path": "/api/v1/metrics",
    },
}
