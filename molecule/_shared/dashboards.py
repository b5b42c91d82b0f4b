"""Every query of the grafana role's dashboards, as Grafana sends it: shared by the unit test
(tests/unit/roles/test_grafana_role.py, on synthetic series) and the stack scenario (on a live
Prometheus)."""
import json
import re
from pathlib import Path

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
# Grafana's own variables at a 15s scrape interval ($__rate_interval is four scrapes).
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
# Queries that may return nothing on a healthy stack, and why. They must be empty on the unit
# test's series (else they no longer belong here).
MAY_BE_EMPTY = {
    "arq-overview: Redis memory B": "the maxmemory line; Redis' default has no maxmemory",
    "arq-redis: Memory B": "the maxmemory line; Redis' default has no maxmemory",
}
# And on a live stack with no errors (the unit test's series have some).
EMPTY_WITHOUT_ERRORS = {
    "arq-overview: Error rate (5xx share) A": "no 5xx answer yet: the 5xx rate is an empty vector, not 0",
}


def label_values(variable):
    """A query variable's label_values(metric{...}, label) as the PromQL of the series it reads."""
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    match = re.fullmatch(r"label_values\((\w+)(?:\{(.*)\})?,\s*(\w+)\)", query)
    assert match, f"variable {variable['name']}: only label_values(metric, label) is handled, not {query}"
    metric, selector, label = match.groups()
    return f'{metric}{{{selector + "," if selector else ""}{label}!=""}}'


def queries():
    """(name, query, the dashboard's variables) of every panel target and query variable."""
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        variables = dash.get("templating", {}).get("list", [])
        for panel in dash["panels"] + [p for row in dash["panels"] for p in row.get("panels", [])]:
            for target in panel.get("targets", []):
                yield f"{path.stem}: {panel['title']} {target['refId']}", target["expr"], variables
        for variable in variables:
            if variable["type"] == "query":
                yield f"{path.stem}: variable {variable['name']}", label_values(variable), variables


def as_grafana_sends(expr, variables):
    """expr with the dashboard's variables at "All" and Grafana's own at the scrape interval's values."""
    values = {v["name"]: v.get("allValue") or ".*" for v in variables} | GRAFANA_VARIABLES

    def value(match):
        name = next(group for group in match.groups() if group)
        assert name in values, f"${name} in {expr}: not a variable of the dashboard nor one of GRAFANA_VARIABLES"
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def sent():
    """{name: query as Grafana sends it} of every dashboard query."""
    return {name: as_grafana_sends(expr, variables) for name, expr, variables in queries()}
