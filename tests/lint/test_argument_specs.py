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
        if "default" not in spec and isinstance(defaults[name], str) and "{{" in defaults[name]:
            # A default computed from other variables: documentation tools cannot evaluate a template
            # as the option's type (a dict), so the description says what it is instead.
            description = spec["description"] if isinstance(spec["description"], list) else [spec["description"]]
            assert any(line.startswith("Default: ") for line in description), f"{name}: computed default not described"
        else:
            assert str(spec.get("default")).split() == str(defaults[name]).split(), f"{name}: default differs"


def test_every_role_has_specs():
    roles = {p.name for p in Path(__file__).resolve().parents[2].glob("roles/[!_]*") if p.is_dir()}
    assert roles == {r.name for r in ROLES}


SERVICE_SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "roles/_service/meta/argument_specs.yml").read_text())
SERVICE_OPTIONS = SERVICE_SPEC["argument_specs"]["preflight"]["options"]["_service"]["options"]
TYPES = {"str": str, "bool": bool, "int": int, "list": list, "dict": dict}
SERVICE_ROLES = [r for r in ROLES if (r / "vars/main.yml").is_file()
                 and f"__{r.name}_service" in yaml.safe_load((r / "vars/main.yml").read_text())]


@pytest.mark.parametrize("role", SERVICE_ROLES, ids=lambda p: p.name)
def test_service_spec_matches_the_core(role):
    """The spec a role hands the core has only documented keys, the required ones, and literal
    values of the documented type (the core does not validate it at run time: it is ours)."""
    spec = yaml.safe_load((role / "vars/main.yml").read_text())[f"__{role.name}_service"]
    assert set(spec) <= set(SERVICE_OPTIONS), set(spec) - set(SERVICE_OPTIONS)
    assert {k for k, v in SERVICE_OPTIONS.items() if v.get("required")} <= set(spec)
    for key, value in spec.items():
        templated = isinstance(value, str) and "{{" in value
        if not templated:
            assert isinstance(value, TYPES[SERVICE_OPTIONS[key]["type"]]), f"{key}: {value!r}"
        for sub, subspec in SERVICE_OPTIONS[key].get("options", {}).items():
            if isinstance(value, dict) and sub in value and not (isinstance(value[sub], str) and "{{" in value[sub]):
                assert isinstance(value[sub], TYPES[subspec["type"]]), f"{key}.{sub}: {value[sub]!r}"
        if isinstance(value, dict) and SERVICE_OPTIONS[key].get("options"):
            assert set(value) <= set(SERVICE_OPTIONS[key]["options"]), f"{key}: {set(value) - set(SERVICE_OPTIONS[key]['options'])}"


def test_every_service_role_has_a_spec():
    assert {r.name for r in SERVICE_ROLES} == {
        "alertmanager", "grafana", "node_exporter", "postgres_exporter", "prometheus", "redis_exporter",
        "victoriametrics"}
