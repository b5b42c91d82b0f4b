"""Bad settings, one per case, are refused with --check and for real before anything changes on
the host: amtool checks alertmanager.yml with its new templates in a private directory first,
and the flags are checked by pattern. Each message names the variable; a valid run afterwards
changes nothing."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import refusal_test  # noqa: E402

HOST = "alertmanager-d13"
PATHS = ["/etc/alertmanager", "/etc/systemd/system/alertmanager.service", "/usr/local/bin/alertmanager", "/usr/local/bin/amtool"]
ROUTE = {"receiver": "default", "group_by": ["alertname", "severity"]}
CASES = {
    "webhook receiver without a URL": (
        {"alertmanager_receivers": [{"name": "default", "webhook_configs": [{"send_resolved": False}]}]},
        "alertmanager_receivers"),
    "inhibit matcher written with ==": (
        {"alertmanager_inhibit_rules": [{"source_matchers": ['severity=="critical"'],
                                         "target_matchers": ['severity="warning"'], "equal": ["alertname"]}]},
        "alertmanager_inhibit_rules"),
    "route naming a mute interval that does not exist": (
        {"alertmanager_route": dict(ROUTE, routes=[{"receiver": "default", "matchers": ['team="x"'],
                                                    "mute_time_intervals": ["nosuch"]}])},
        "alertmanager_route"),
    "broken notification template": (
        {"alertmanager_notification_templates": {"arq.tmpl": '{{ define "arq.title" }}{{ .Status }{{ end }}'}},
        "alertmanager_notification_templates"),
    "retention in words": ({"alertmanager_data_retention": "five days"}, "alertmanager_data_retention"),
    "negative retention": ({"alertmanager_data_retention": "-120h"}, "alertmanager_data_retention"),
    "external URL without a scheme": ({"alertmanager_web_external_url": "am.example.com"}, "alertmanager_web_external_url"),
}


test_bad_settings_are_refused_before_any_change = refusal_test(HOST, "alertmanager", CASES, PATHS)
