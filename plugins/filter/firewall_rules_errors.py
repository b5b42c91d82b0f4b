# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Find the mistakes in the firewall role's allow-list before it reaches a host."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

DOCUMENTATION = r"""
name: firewall_rules_errors
author: arq.monitoring developers (@arq-platform)
version_added: 0.1.0
short_description: List what is wrong in a firewall allow-list
description:
  - Checks the firewall role's C(firewall_rules) and returns one message per mistake, naming
    the entry (its index and name) and the field.
  - Each entry needs a C(name) (letters, digits, C(_ . -), at most 64 characters; it names the
    counter in nftables), a TCP C(port) (an integer from 1 to 65535) and C(sources), a list of IPv4 or
    IPv6 addresses or networks in CIDR notation (C(10.0.0.5), C(10.0.0.0/24),
    C(2001:db8::/64)). Names and ports must be unique.
  - The firewall role runs it in its preflight, so bad input fails before any host changes;
    C(nft -c) still checks the rendered ruleset on the host.
options:
  _input:
    description: 'The rules, C([{name, port, sources}]).'
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse a bad allow-list
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ [{'name': 'node_exporter', 'port': 9100, 'sources': ['10.0.0.300']}] | arq.monitoring.firewall_rules_errors }}"
"""

RETURN = r"""
_value:
  description: >-
    Messages such as C(firewall_rules[0] (node_exporter): sources: '10.0.0.300' is not an IP address
    or a network in CIDR notation); empty when all is well.
  type: list
  elements: str
"""

FIELDS = ("name", "port", "sources")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Address or address/prefix length: nft takes neither netmasks (/255.255.255.0) nor zone ids (%eth0).
SOURCE = re.compile(r"^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$")


def _port(value):
    """The port, or None. argument_specs lets "9100" through, but the role sorts by port: integers only."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535 else None


def _is_source(value):
    if not isinstance(value, str) or not SOURCE.match(value):
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _rule_errors(rule, where):
    if not isinstance(rule, Mapping):
        return [f"{where} must be a mapping with {', '.join(FIELDS)}"]
    errors = [f"{where}: unknown field {key!r} (fields: {', '.join(FIELDS)}; the protocol is always tcp)"
              for key in sorted(set(rule) - set(FIELDS), key=str)]
    errors += [f"{where}: {key} is required" for key in FIELDS if key not in rule]
    if "name" in rule and not (isinstance(rule["name"], str) and NAME.match(rule["name"])):
        errors.append(f"{where}: name {rule['name']!r} must be letters, digits, '_', '.' or '-' (at most 64)")
    if "port" in rule and _port(rule["port"]) is None:
        errors.append(f"{where}: port {rule['port']!r} must be an integer from 1 to 65535")
    sources = rule.get("sources", [])
    if not isinstance(sources, list):
        errors.append(f"{where}: sources must be a list of addresses or networks, not {type(sources).__name__}")
    else:
        errors += [f"{where}: sources: {source!r} is not an IP address or a network in CIDR notation"
                   " (such as 10.0.0.5, 10.0.0.0/24 or 2001:db8::/64)"
                   for source in sources if not _is_source(source)]
    return errors


def firewall_rules_errors(rules):
    if not isinstance(rules, list):
        return ["firewall_rules must be a list of {name, port, sources}"]
    errors = []
    names, ports = {}, {}
    for index, rule in enumerate(rules):
        where = f"firewall_rules[{index}]"
        if isinstance(rule, Mapping) and isinstance(rule.get("name"), str):
            where += f" ({rule['name']})"
        errors += _rule_errors(rule, where)
        if not isinstance(rule, Mapping):
            continue
        name, port = rule.get("name"), _port(rule.get("port"))
        if isinstance(name, str):
            if name in names:
                errors.append(f"{where}: name {name!r} is already used by {names[name]}")
            names.setdefault(name, where)
        if port is not None:
            if port in ports:
                errors.append(f"{where}: port {port} is already used by {ports[port]}")
            ports.setdefault(port, where)
    return errors


class FilterModule:
    def filters(self):
        return {"firewall_rules_errors": firewall_rules_errors}
