"""Every role's defaults and meta/argument_specs.yml list the same variables, with the same defaults."""
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p.parent.parent for p in Path(__file__).resolve().parents[2].glob("roles/[!_]*/meta/argument_specs.yml"))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_specs_mirror_defaults(role):
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    options = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        assert name.startswith(role.name + "_"), name
        assert spec.get("description"), f"{name} has no description"
        assert "type" in spec, f"{name} has no type"
        assert str(spec.get("default")).split() == str(defaults[name]).split(), f"{name}: default differs"


def test_every_role_has_specs():
    roles = {p.name for p in Path(__file__).resolve().parents[2].glob("roles/[!_]*") if p.is_dir()}
    assert roles == {r.name for r in ROLES}
