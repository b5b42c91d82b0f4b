"""Helpers shared by the prometheus scenario's tests: HTTP requests made inside the instance."""
import json
import time
from urllib.parse import quote

import pytest

AUTH = ("admin", "s3cret: 'admin' #1")


def groups(host):
    return host.ansible.get_variables()["group_names"]


def curl(host, url, *args):
    """HTTP status and body of a request made inside the instance (arguments are quoted)."""
    cmd = host.run("curl -sS -o /tmp/body -w %s" + " %s" * (len(args) + 1), "%{http_code}", *args, url)
    return cmd.stdout.strip(), host.file("/tmp/body").content_string if cmd.rc == 0 else cmd.stderr


class Prometheus:
    def __init__(self, host):
        self.host = host
        self.secure = "secure" in groups(host)
        self.base = "https://127.0.0.1:9090" if self.secure else "http://127.0.0.1:9090"
        self.auth = ["-k", "-u", ":".join(AUTH)] if self.secure else []

    def get(self, path, *args):
        return curl(self.host, self.base + path, *(self.auth + list(args)))

    def api(self, path):
        status, body = self.get(path)
        assert status == "200", body
        data = json.loads(body)
        assert data["status"] == "success", data
        return data["data"]

    def query(self, expr, at=None):
        path = "/api/v1/query?query=" + quote(expr) + ("&time=%s" % at if at is not None else "")
        return self.api(path)["result"]

    def scalar(self, expr, at=None):
        result = self.query(expr, at)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def metric(self, name):
        status, body = self.get("/metrics")
        assert status == "200"
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def wait(self, check, timeout=60):
        """Retry check() (assertions inside) until it passes or the timeout ends."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return check()
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)


@pytest.fixture
def prom(host):
    return Prometheus(host)
