"""Bad settings, one per case, are refused with --check and for real before anything changes on
the host, naming the variable; a valid run afterwards changes nothing."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import refusal_test  # noqa: E402

HOST = "redis-exporter-d13-secure"
PATHS = ["/etc/redis_exporter", "/etc/systemd/system/redis_exporter.service", "/usr/local/bin/redis_exporter"]
CASES = {
    "Redis port above 65535": ({"redis_exporter_redis_addr": "redis://localhost:70000"}, "redis_exporter_redis_addr"),
    "credentials in the Redis address": ({"redis_exporter_redis_addr": "redis://ops:pw@localhost:6379"}, "redis_exporter_redis_addr"),
    "Redis address without a scheme": ({"redis_exporter_redis_addr": "localhost:6379"}, "redis_exporter_redis_addr"),
    "version with trailing text": ({"redis_exporter_version": "1.69.0garbage"}, "redis_exporter_version"),
    "port above 65535": ({"redis_exporter_web_listen_address": ":65536"}, "redis_exporter_web_listen_address"),
}


test_bad_settings_are_refused_before_any_change = refusal_test(HOST, "redis_exporter", CASES, PATHS)
