# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Parse JSON files, naming the ones that are not JSON instead of failing on the first."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: json_documents
author: arq.monitoring developers (@arq-platform)
version_added: 0.2.0
short_description: Parse a set of JSON files and list the ones that are not JSON objects
description:
  - "Takes C({file name: text}) and returns the parsed objects in the same order, with C({}) in
    place of a file that is not a JSON object, and one message per such file, so a role can
    refuse them by name before anything changes on a host."
options:
  _input:
    description: "C({file name: text})."
    type: dict
    required: true
  name:
    description: Variable or setting named at the start of each message.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Refuse dashboards that are not JSON
  ansible.builtin.assert:
    that: parsed.errors | length == 0
    fail_msg: "{{ parsed.errors | join('; ') }}"
  vars:
    parsed: "{{ {'hosts.json': lookup('ansible.builtin.file', 'hosts.json')} | arq.monitoring.json_documents('grafana_dashboards_dir') }}"
"""

RETURN = r"""
_value:
  description: C(documents), the parsed objects in input order; C(errors), the messages.
  type: dict
"""


def json_documents(files, name=""):
    if not isinstance(files, Mapping):
        raise AnsibleFilterError("json_documents: the input must be a mapping of file names to texts")
    prefix = name + ": " if name else ""
    documents, errors = [], []
    for file_name, text in files.items():
        try:
            document = json.loads(str(text))
        except ValueError as err:
            errors.append(f"{prefix}{file_name} is not JSON ({err})")
            document = {}
        else:
            if not isinstance(document, dict):
                errors.append(f"{prefix}{file_name} is not a JSON object (a dashboard)")
                document = {}
        documents.append(document)
    return {"documents": documents, "errors": errors}


class FilterModule:
    def filters(self):
        return {"json_documents": json_documents}
