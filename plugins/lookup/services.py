# Copyright: arq.monitoring contributors
# MIT License (see LICENSE)
"""The catalog of the stack's services, for plays and templates."""

from __future__ import annotations

DOCUMENTATION = r"""
name: services
short_description: The stack's services - job, inventory group, port, listen variable, metrics path
description:
  - The one catalog of the services the collection deploys and scrapes, which the
    P(arq.monitoring.scrape_configs#filter) filter, the collection's playbooks and their firewall
    rules read, so that a port, group or listen variable is written in one place only.
  - Without a term, the whole catalog, a dict of service name to its entry. With terms, the
    entry of each service named (one term, used with C(lookup), gives the entry itself).
  - Services C(node_exporter), C(postgres_exporter), C(redis_exporter), C(alertmanager),
    C(prometheus), C(grafana), and C(backend), the application the stack monitors.
version_added: 0.1.0
author: arq.monitoring developers (@arq-platform)
options:
  _terms:
    description: Names of services; none for the whole catalog.
    type: list
    elements: str
    required: false
"""

EXAMPLES = r"""
- name: The port Prometheus listens on unless the host sets its own listen address
  ansible.builtin.debug:
    msg: "{{ lookup('arq.monitoring.services', 'prometheus').port }}"

- name: A host's Alertmanager gossip address
  ansible.builtin.debug:
    msg: >-
      {{ lookup('ansible.builtin.vars', am.cluster_listen_var, default=':' ~ am.cluster_port) }}
  vars:
    am: "{{ lookup('arq.monitoring.services', 'alertmanager') }}"

- name: The inventory groups of the services the collection's roles install
  ansible.builtin.debug:
    msg: "{{ lookup('arq.monitoring.services').values() | selectattr('role') | map(attribute='group') }}"
"""

RETURN = r"""
_raw:
  description:
    - Without terms, one dict of service name to entry; with terms, one entry per term.
    - "An entry: C(job) (the scrape job's name and C(job) label), C(group) (the inventory group),
      C(role) (the collection's role installing it, C(null) for C(backend)), C(port) (the
      default port), C(listen_var) (the host variable holding its listen address) and
      C(metrics_path)."
    - C(alertmanager) also has C(cluster_port) and C(cluster_listen_var); C(prometheus) has
      C(config_dir), C(file_sd_dir) and C(ca_file), the prometheus role's paths on its host.
  type: list
  elements: dict
"""

import copy

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if not terms:
            return [copy.deepcopy(SERVICES)]
        unknown = [term for term in terms if term not in SERVICES]
        if unknown:
            raise AnsibleError("arq.monitoring.services: unknown service %s (known: %s)"
                               % (", ".join(repr(term) for term in unknown), ", ".join(SERVICES)))
        return [copy.deepcopy(SERVICES[term]) for term in terms]
