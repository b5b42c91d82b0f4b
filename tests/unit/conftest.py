"""Make the collection importable as ansible_collections.arq.monitoring from a checkout.

The repository carries the link .collections/ansible_collections/arq/monitoring -> the
repository itself, so the plugins import under their collection path in a fresh clone.
"""
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
