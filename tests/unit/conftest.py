"""Make the collection importable as ansible_collections.arq.monitoring from a checkout.

The repository carries the link .collections/ansible_collections/arq/monitoring -> the
repository itself, so the plugins import under their collection path in a fresh clone.
"""
import os
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def _tool(name):
    """The real promtool/amtool of the release mirror (`make unit` exports their paths)."""
    for candidate in (os.environ.get(name.upper()), str(Path.home() / ".cache/arq-monitoring/bin" / name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} not found: set {name.upper()} or run `make unit` (CI always has it)")


@pytest.fixture(scope="session")
def promtool():
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool():
    return _tool("amtool")
