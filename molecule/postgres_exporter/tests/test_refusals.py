"""Bad settings, one per case, are refused with --check and for real before anything changes on
the host (PostgreSQL's login role included), naming the variable; a valid run afterwards changes
nothing."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import refusal_test  # noqa: E402

HOST = "postgres-exporter-d13-secure"
PATHS = ["/etc/postgres_exporter", "/etc/systemd/system/postgres_exporter.service", "/usr/local/bin/postgres_exporter"]
CASES = {
    "database port above 65535": ({"postgres_exporter_db_port": 70000}, "postgres_exporter_db_port"),
    "unknown sslmode": ({"postgres_exporter_db_sslmode": "sometimes"}, "postgres_exporter_db_sslmode"),
    "password with a space": ({"postgres_exporter_db_password": "two words"}, "postgres_exporter_db_password"),
    "collectors given as a string": ({"postgres_exporter_enabled_collectors": "database"}, "postgres_exporter_enabled_collectors"),
    "server CA that is not PEM": ({"postgres_exporter_db_ssl_ca": "not a certificate"}, "postgres_exporter_db_ssl_ca"),
    "version with trailing text": ({"postgres_exporter_version": "0.17.1garbage"}, "postgres_exporter_version"),
}


test_bad_settings_are_refused_before_any_change = refusal_test(HOST, "postgres_exporter", CASES, PATHS)
