"""Every entry of ansible-test's ignore files says why it is there."""
import re
from pathlib import Path

import pytest
from ansible import release as ansible_release

IGNORES = sorted((Path(__file__).resolve().parents[1] / "sanity").glob("ignore-*.txt"))


@pytest.mark.parametrize("path", IGNORES, ids=lambda p: p.name)
def test_every_entry_carries_a_reason(path):
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        entry, _hash, reason = line.partition(" # ")
        assert re.fullmatch(r"\S+ [\w.:!-]+", entry), f"{path.name}:{number}: not 'path test # reason': {line!r}"
        assert len(reason.split()) >= 5, f"{path.name}:{number}: no reason given: {line!r}"


def test_there_is_an_ignore_file_for_the_tested_ansible_core():
    """ansible-test reads the file of its own version only (requirements.txt pins ansible-core)."""
    version = ".".join(ansible_release.__version__.split(".")[:2])
    assert f"ignore-{version}.txt" in [p.name for p in IGNORES]
