# Copyright: arq.monitoring developers
# MIT License (see galaxy.yml)
"""Digest of everything a role is asked for on a host: the other half of arq.monitoring.converged."""

from __future__ import annotations

DOCUMENTATION = r"""
name: inputs_digest
short_description: SHA-256 of what a role is asked for on a host
description:
  - Hashes, in a canonical form, the resolved values of every variable whose name starts with one
    of the given prefixes, the host facts the roles use (architecture, package manager, OS family,
    addresses), the inventory name and C(ansible_host), any extra values given, and the content
    of this collection's roles and plugins (so an upgraded collection never matches an old run).
  - The roles compare it with the digest M(arq.monitoring.converged) recorded on the host at the
    end of the last complete run; equal digests mean the settings did not change since.
  - Runs on the controller only; nothing secret is returned, only the hash.
version_added: 0.1.0
author: arq.monitoring developers
options:
  _terms:
    description: Variable name prefixes, such as C(node_exporter_).
    type: list
    elements: str
    required: true
  ignore:
    description: Variables left out although they match a prefix (switches that do not shape the host).
    type: list
    elements: str
    default: []
  extra:
    description: Values that are not variables of the role but shape what it writes (for example
      the content of files it reads on the controller).
    type: raw
    default: null
"""

EXAMPLES = r"""
- name: Digest of the node_exporter role's settings on this host
  ansible.builtin.debug:
    msg: "{{ lookup('arq.monitoring.inputs_digest', 'node_exporter_', 'arq_monitoring_') }}"
"""

RETURN = r"""
_raw:
  description: One hexadecimal SHA-256 digest.
  type: list
  elements: str
"""

import hashlib
import json
import os

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

# Facts the roles read; the rest (time, memory, uptime) changes between runs.
FACTS = ("architecture", "os_family", "pkg_mgr", "distribution", "distribution_major_version",
         "all_ipv4_addresses", "all_ipv6_addresses")
COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_code_digest = None


def code_digest():
    """SHA-256 over the paths and contents of the collection's roles and plugins (once per process)."""
    global _code_digest
    if _code_digest is None:
        digest = hashlib.sha256()
        for top in ("roles", "plugins"):
            for root, dirs, files in os.walk(os.path.join(COLLECTION, top)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                # Documentation does not shape what a role does.
                for name in sorted(f for f in files if not f.endswith(".md")):
                    path = os.path.join(root, name)
                    digest.update(os.path.relpath(path, COLLECTION).encode() + b"\0")
                    with open(path, "rb") as handle:
                        digest.update(hashlib.sha256(handle.read()).digest())
        _code_digest = digest.hexdigest()
    return _code_digest


class LookupModule(LookupBase):
    def resolve(self, value):
        """The variable's value; one that cannot be resolved (a role may never use it) counts as its text."""
        try:
            return self._templar.template(value)
        except Exception as error:
            return ["unresolved", str(value), type(error).__name__]

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        prefixes = tuple(terms)
        if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
            raise AnsibleError("inputs_digest: give one or more variable name prefixes")
        ignore = set(self.get_option("ignore"))
        names = sorted(name for name in variables if name.startswith(prefixes) and name not in ignore)
        facts = self._templar.template(variables.get("ansible_facts", {}))
        inputs = {
            "code": code_digest(),
            "vars": {name: self.resolve(variables[name]) for name in names},
            "facts": {name: facts.get(name) for name in FACTS},
            "host": [variables.get("inventory_hostname"), self._templar.template(variables.get("ansible_host"))],
            "extra": self.get_option("extra"),
        }
        canonical = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
        return [hashlib.sha256(canonical.encode()).hexdigest()]
