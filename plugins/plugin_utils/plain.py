# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Data as services read it (private to the collection's plugins)."""

from __future__ import annotations

from collections.abc import Mapping


def plain(data):
    """The data with every string as a plain str: a vaulted value (or one templated from it)
    becomes its decrypted text, which the YAML dumper would otherwise write as ciphertext."""
    if isinstance(data, Mapping):
        return {plain(key): plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [plain(item) for item in data]
    if isinstance(data, (bool, int, float)) or data is None:
        return data
    return str(data)
