"""The Grafana stand-in (tests/grafana_standin/grafana) refuses what Grafana refuses, run in-process.

Molecule only ever feeds the stand-in good provisioning, so its refusals (bad YAML, duplicate
data source uids, dashboards without a uid or a title) are proven here, on its own code paths:
the start (exit 1), the provisioning functions, and the reload API answering 500.
"""
import base64
import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
from ansible.plugins.filter.core import to_nice_yaml

ROOT = Path(__file__).resolve().parents[3]
STANDIN = ROOT / "tests" / "grafana_standin"
DASHBOARDS = sorted((ROOT / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))


def _load():
    loader = SourceFileLoader("grafana_standin", str(STANDIN / "grafana"))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


standin = _load()


@pytest.fixture
def grafana(tmp_path):
    """A Grafana home laid out like the release tree, with the role's provisioning directories."""
    home = tmp_path / "home"
    shutil.copytree(STANDIN / "conf", home / "conf")
    prov = tmp_path / "provisioning"
    for sub in ("datasources", "dashboards", "dashboards.d/arq", "dashboards.d/custom"):
        (prov / sub).mkdir(parents=True)
    (tmp_path / "datasource_password").write_text("s3cret\n")
    config = tmp_path / "grafana.ini"
    config.write_text(f"[paths]\ndata = {tmp_path / 'data'}\nprovisioning = {prov}\n\n"
                      "[security]\nadmin_password = \"\"\"pa#ss;word\"\"\"\n\n"
                      "[server]\nhttp_addr = 127.0.0.1\nhttp_port = 0\n")

    class Grafana:
        provisioning = prov
        arq = prov / "dashboards.d" / "arq"
        custom = prov / "dashboards.d" / "custom"
        secret = tmp_path / "datasource_password"
        args = ["--homepath", str(home), "--config", str(config)]

        def cfg(self):
            return standin.load_config(str(home), str(config))

        def write(self, relative, text):
            (prov / relative).write_text(text)

        def provision(self):
            cfg = self.cfg()
            db = standin.db_connect(cfg)
            standin.provision_datasources(db, cfg)
            standin.provision_dashboards(db, cfg)
            return db

    return Grafana()


def datasources_yaml(datasources, deletes=()):
    """What the role's datasources.yaml.j2 writes (to_nice_yaml, indent 2)."""
    return to_nice_yaml({"apiVersion": 1, "deleteDatasources": [{"name": n, "orgId": 1} for n in deletes],
                         "datasources": datasources}, indent=2, width=1000)


PROMETHEUS = {"name": "Prometheus", "type": "prometheus", "uid": "arq-prometheus", "url": "http://prom:9090",
              "access": "proxy", "isDefault": True, "editable": False, "orgId": 1,
              "basicAuth": True, "basicAuthUser": "grafana",
              "jsonData": {"httpMethod": "POST", "timeInterval": "15s"}}
ALERTMANAGER = {"name": "Alertmanager", "type": "alertmanager", "uid": "arq-alertmanager", "url": "http://am:9093",
                "access": "proxy", "editable": False, "orgId": 1, "jsonData": {"implementation": "prometheus"}}


def providers_yaml(grafana):
    return to_nice_yaml({"apiVersion": 1, "providers": [
        {"name": "arq", "folder": "arQ", "type": "file", "disableDeletion": False, "options": {"path": str(grafana.arq)}},
        {"name": "custom", "folder": "Custom", "type": "file", "disableDeletion": False,
         "options": {"path": str(grafana.custom)}}]}, indent=2, width=1000)


def good_provisioning(grafana):
    prometheus = {**PROMETHEUS, "secureJsonData": {"basicAuthPassword": f"$__file{{{grafana.secret}}}"}}
    grafana.write("datasources/arq.yaml", datasources_yaml([prometheus, ALERTMANAGER], deletes=["Old"]))
    grafana.write("dashboards/arq.yaml", providers_yaml(grafana))
    for path in DASHBOARDS:
        shutil.copy(path, grafana.arq / path.name)


# ----------------------------------------------------------------------------- acceptance
def test_the_roles_provisioning_is_accepted(grafana):
    good_provisioning(grafana)
    db = grafana.provision()
    rows = {r["uid"]: r for r in db.execute("SELECT * FROM data_source")}
    assert sorted(rows) == ["arq-alertmanager", "arq-prometheus"]
    assert rows["arq-prometheus"]["is_default"] == 1 and rows["arq-prometheus"]["url"] == "http://prom:9090"
    # $__file{} expanded, as Grafana does for provisioned values.
    assert json.loads(rows["arq-prometheus"]["data"])["secureJsonData"]["basicAuthPassword"] == "s3cret"
    dashboards = {r["uid"]: (r["title"], r["folder"]) for r in db.execute("SELECT * FROM dashboard")}
    assert sorted(dashboards) == [p.stem for p in DASHBOARDS]
    assert dashboards["arq-overview"] == ("arQ Platform Overview", "arQ")

    # A changed data source is updated in place; a dashboard whose file is gone is deleted.
    grafana.write("datasources/arq.yaml", datasources_yaml([{**PROMETHEUS, "url": "http://prom2:9090"}],
                                                           deletes=["Alertmanager"]))
    (grafana.arq / "arq-redis.json").unlink()
    db = grafana.provision()
    assert [(r["uid"], r["url"]) for r in db.execute("SELECT uid, url FROM data_source")] == [
        ("arq-prometheus", "http://prom2:9090")]
    assert "arq-redis" not in {r["uid"] for r in db.execute("SELECT uid FROM dashboard")}


def test_the_yaml_reader_reads_what_to_nice_yaml_writes(grafana):
    data = {"apiVersion": 1, "datasources": [{**PROMETHEUS, "secureJsonData": {"tlsCACert": "a #; b"}},
                                             {**ALERTMANAGER, "jsonData": {}, "tags": ["x", "y: z"]}]}
    assert standin.load_yaml(to_nice_yaml(data, indent=2, width=1000)) == data


# ----------------------------------------------------------------------------- refusals
BAD_YAML = {
    "tab indentation": "apiVersion: 1\ndatasources:\n\t- name: x\n",
    "missing colon": "apiVersion: 1\ndatasources\n",
    "unterminated quote": "apiVersion: 1\ndatasources:\n  - name: 'Prometheus\n    type: prometheus\n",
    "duplicate key": "apiVersion: 1\napiVersion: 2\n",
    "bad indentation": "apiVersion: 1\ndatasources:\n  - name: x\n      type: y\n",
    "not a mapping": "- name: x\n",
}


@pytest.mark.parametrize("text", BAD_YAML.values(), ids=BAD_YAML.keys())
def test_bad_provisioning_yaml_is_refused(grafana, text):
    grafana.write("datasources/broken.yaml", text)
    with pytest.raises(standin.ProvisioningError, match=r"broken\.yaml"):
        standin.provision_datasources(standin.db_connect(grafana.cfg()), grafana.cfg())


def test_duplicate_datasource_uids_are_refused_across_files(grafana):
    grafana.write("datasources/arq.yaml", datasources_yaml([PROMETHEUS]))
    grafana.write("datasources/other.yaml", datasources_yaml([{**ALERTMANAGER, "uid": "arq-prometheus"}]))
    with pytest.raises(standin.ProvisioningError, match="the same uid is used more than once"):
        grafana.provision()


@pytest.mark.parametrize("datasources, message", [
    ([PROMETHEUS, {**ALERTMANAGER, "isDefault": True}], "Only one datasource per organization can be marked as default"),
    ([PROMETHEUS, {**ALERTMANAGER, "name": "Prometheus"}], "the same name is used more than once"),
    ([{"name": "Loki", "url": "http://loki:3100"}], r"datasources\[0\] needs a name and a type"),
], ids=["two defaults", "same name", "no type"])
def test_other_invalid_datasources_are_refused(grafana, datasources, message):
    grafana.write("datasources/arq.yaml", datasources_yaml(datasources))
    with pytest.raises(standin.ProvisioningError, match=message):
        grafana.provision()


@pytest.mark.parametrize("dashboard, message", [
    ({"title": "No uid", "panels": []}, "dashboard has no uid"),
    ({"uid": "no-title", "panels": []}, "Dashboard title cannot be empty"),
    ({"uid": "arq-node", "title": "Same uid as a shipped one"}, "the same UID is used more than once: arq-node"),
], ids=["no uid", "no title", "duplicate uid"])
def test_invalid_dashboards_are_refused(grafana, dashboard, message):
    good_provisioning(grafana)
    (grafana.custom / "mine.json").write_text(json.dumps(dashboard))
    with pytest.raises(standin.ProvisioningError, match=message):
        grafana.provision()


def test_a_dashboard_that_is_not_json_is_refused(grafana):
    good_provisioning(grafana)
    (grafana.custom / "mine.json").write_text('{"uid": "x", "title": "y",')
    with pytest.raises(standin.ProvisioningError, match=r"failed to load dashboard .*mine\.json"):
        grafana.provision()


def test_bad_provisioning_stops_the_start(grafana):
    grafana.write("datasources/arq.yaml", datasources_yaml([PROMETHEUS, {**ALERTMANAGER, "uid": "arq-prometheus"}]))
    # The real command line, bounded: a stand-in that started anyway would be killed after 30 s.
    result = subprocess.run([sys.executable, str(STANDIN / "grafana"), "server", *grafana.args],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "Failed to start grafana" in result.stdout and "the same uid is used more than once" in result.stdout


def test_the_reload_api_answers_500_and_keeps_what_it_had(grafana):
    good_provisioning(grafana)
    cfg = grafana.cfg()
    db = grafana.provision()
    httpd = standin.ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(db, cfg))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def post(path, password="pa#ss;word"):
        auth = base64.b64encode(f"admin:{password}".encode()).decode()
        request = urllib.request.Request(base + path, method="POST", headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    try:
        standin.ensure_admin(db, cfg)
        assert post("/api/admin/provisioning/dashboards/reload", password="admin")[0] == 401
        assert post("/api/admin/provisioning/dashboards/reload") == (200, {"message": "Dashboards config reloaded"})
        (grafana.custom / "mine.json").write_text(json.dumps({"title": "No uid"}))
        status, body = post("/api/admin/provisioning/dashboards/reload")
        assert status == 500 and "dashboard has no uid" in body["error"]
        grafana.write("datasources/arq.yaml", "apiVersion: 1\ndatasources\n")
        status, body = post("/api/admin/provisioning/datasources/reload")
        assert status == 500 and "could not parse" in body["error"]
        # Nothing provisioned before was dropped by the refused reloads.
        assert len(db.execute("SELECT uid FROM dashboard").fetchall()) == len(DASHBOARDS)
        assert len(db.execute("SELECT uid FROM data_source").fetchall()) == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
