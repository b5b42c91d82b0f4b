# -*- coding: utf-8 -*-
# Copyright: arq.monitoring contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
name: scrape_configs
short_description: Prometheus scrape configs from the inventory
version_added: 0.1.0
positional: _input, hostvars, jobs
author: arq.monitoring developers (@arq-platform)
description:
  - Turns the inventory (C(groups) and C(hostvars)) into the C(scrape_configs) section of
    C(prometheus.yml) - one job per service, one target per host of the job's inventory groups.
  - Built-in jobs, one per service of the collection's catalog (the
    P(arq.monitoring.services#lookup) lookup), each included only when its group exists in the
    inventory, given as job label - group, port, metrics path.
    C(alertmanager) - C(alertmanager), 9093, C(/metrics);
    C(backend) - C(backend), 3001, C(/api/v1/metrics);
    C(grafana) - C(grafana), 3000, C(/metrics);
    C(node) - C(node_exporter), 9100, C(/metrics);
    C(postgres) - C(postgres_exporter), 9187, C(/metrics);
    C(prometheus) - C(prometheus), 9090, C(/metrics);
    C(redis) - C(redis_exporter), 9121, C(/metrics);
    C(victoriametrics) - C(victoriametrics), 8428, C(/metrics).
  - Every target carries the label C(instance) set to the host's inventory name, so dashboards
    and alerts read C(instance="db1"), not an address.
  - The address scraped is the host's C(ansible_host) (else its inventory name); IPv6 literals
    are bracketed. A host variable C(<var_prefix>_web_listen_address) (C(host:port),
    C([v6]:port), C(:port)) overrides the port, and the address too unless its host part is a
    wildcard - empty, C(0.0.0.0), or any spelling of the IPv6 unspecified address (C([::]),
    C([::0]), C([0:0:0:0:0:0:0:0]) ...). C(<var_prefix>_web_telemetry_path) overrides the
    metrics path for that host (through the C(__metrics_path__) target label).
  - A listen address on loopback only (C(127.0.0.0/8), C([::1]) in any spelling, C(localhost),
    C(*.localhost)) cannot be scraped from another host and is refused, unless I(scraper) is
    that very host; then the loopback address is the target. With sharding, a host this
    server's shard does not keep is not checked.
  - The C(prometheus) and C(alertmanager) jobs follow the path of each host's
    C(<var_prefix>_web_external_url) (C(prometheus_web_external_url),
    C(alertmanager_web_external_url)), which these servers serve everything under -
    C(https://x/prometheus/) gives C(/prometheus/metrics) for that host (through
    C(__metrics_path__)). A host's C(<var_prefix>_web_telemetry_path) wins.
  - Addresses are checked - host names are DNS names (letters, digits, C(_), C(-) not at either
    end of a label, at most 253 characters); digits and dots only must be a valid IPv4 address;
    brackets hold an IPv6 address; a C(%zone) only follows a link-local IPv6 address.
  - Targets and jobs are sorted; a host in several groups of one job is scraped once.
  - Bad input fails with C(scrape_configs:) followed by the job or host and the field at fault;
    no password is ever part of a message. Undefined variables fail as Ansible's own error.
  - See docs/scrape_configs.md in the collection for an inventory and the configuration it
    yields, file-based discovery, sharding and HA pairs.
options:
  _input:
    description: The inventory's groups, that is the magic variable C(groups).
    type: dict
    required: true
  hostvars:
    description: The magic variable C(hostvars) (any mapping of host name to variables).
    type: dict
    required: true
  jobs:
    description:
      - Jobs to add, or to change or turn off among the built-in ones.
      - An entry whose C(name) is a built-in job changes only the options it gives.
      - Another entry adds a job, and needs C(group) and C(port).
      - Every group an entry names must exist in the inventory (it may be empty).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The job's name, which is its C(job) label and, with I(file_sd_dir), the name of
            its target file (C(<name>.yml)). Letters, digits, C(_), C(.) and C(-).
        type: str
        required: true
      enabled:
        description: C(false) leaves the job out.
        type: bool
        default: true
      group:
        description: The inventory group, or list of groups, whose hosts are scraped.
        type: raw
      port:
        description: The port scraped when a host does not set its own listen address.
        type: int
      metrics_path:
        description:
          - The HTTP path of the metrics. Starts with C(/); no query string, fragment,
            whitespace or control character.
        type: str
        default: /metrics
      scheme:
        description: C(http) or C(https). Defaults to C(https) when I(tls) is given.
        type: str
        choices: [http, https]
      var_prefix:
        description:
          - Prefix of the host variables C(<var_prefix>_web_listen_address) and
            C(<var_prefix>_web_telemetry_path) read for this job. C('') reads none.
          - Defaults to the role's name for built-in jobs (C(node_exporter) for C(node)) and
            to the job's name for other jobs, each character that a variable name cannot hold
            (C(-), C(.)) turned into C(_), and C(_) before a leading digit - C(my-app.v2) reads
            C(my_app_v2_web_listen_address).
        type: str
      labels:
        description: Labels added to every target of the job (host labels win), named and valued as in I(labels_var).
        type: dict
        default: {}
      scrape_interval:
        description:
          - The job's scrape interval, a Prometheus duration - units C(y), C(w), C(d), C(h),
            C(m), C(s), C(ms) in that order, each at most once, as in C(30s) or C(1m30s); above 0.
        type: str
      scrape_timeout:
        description:
          - The job's scrape timeout (a Prometheus duration), at most its I(scrape_interval),
            else at most the global one of I(scraper) (its host variable
            C(prometheus_scrape_interval)) when that is set.
        type: str
      tls:
        description:
          - TLS settings towards the targets, written as the job's C(tls_config).
          - Keys C(ca_file), C(cert_file) and C(key_file) (paths on the Prometheus host;
            certificate and key go together), C(server_name), C(insecure_skip_verify).
        type: dict
      basic_auth:
        description:
          - Basic auth credentials, written as the job's C(basic_auth).
          - Keys C(username) and exactly one of C(password) (for example a vaulted variable)
            or C(password_file) (a path on the Prometheus host).
        type: dict
      fallback_scrape_protocol:
        description:
          - Prometheus 3 only. The format Prometheus 3 parses a target's answer as when its
            C(Content-Type) is missing or not one it knows; without it, Prometheus 3 fails such a
            scrape (Prometheus 2 took it as text). For targets that send a wrong header only; every
            service of the collection, and the arQ backend, send a right one.
          - Prometheus 2 refuses the key; the filter refuses it when I(scraper)'s host variable
            C(prometheus_version) is below 3.0.0.
        type: str
        choices: [PrometheusText0.0.4, PrometheusText1.0.0, OpenMetricsText0.0.1, OpenMetricsText1.0.0, PrometheusProto]
  tls:
    description:
      - TLS settings (as a job's I(tls)) for the jobs of the collection's own services, every
        built-in job but C(backend) (the application's). A job's own I(tls) wins.
      - site.yml passes the internal CA's path, C(/etc/prometheus/ca.crt), as C(ca_file).
    type: dict
  basic_auth:
    description:
      - Basic auth credentials (as a job's I(basic_auth)) for the same jobs as I(tls). A job's
        own I(basic_auth) wins.
    type: dict
  builtin_jobs:
    description: C(false) starts from no job at all instead of the built-in ones.
    type: bool
    default: true
  labels_var:
    description:
      - Name of the host variable holding extra labels for all of that host's targets,
        for example a dict with C(env) and C(datacenter).
      - Label names must be valid Prometheus label names, not start with C(__), and not be
        C(instance) or C(job); values are strings (UTF-8 text) or numbers.
    type: str
    default: prometheus_target_labels
  file_sd_dir:
    description:
      - Empty - targets are written inline as C(static_configs).
      - A directory on the Prometheus host - each job reads its targets from
        C(<file_sd_dir>/<job>.yml) (C(file_sd_configs)), so adding or removing a host changes
        only that file and needs no reload. Ask for the files' content with I(output).
    type: str
    default: ''
  output:
    description:
      - C(scrape_configs) - the list of scrape configs.
      - C(file_sd) - a dict of target file name (C(<job>.yml)) to its content, a list of
        target groups (empty without I(file_sd_dir)).
      - C(both) - a dict with keys C(scrape_configs) and C(file_sd).
    type: str
    choices: [scrape_configs, file_sd, both]
    default: scrape_configs
  shard_count:
    description:
      - Number of Prometheus servers sharing the targets. Above 1, each job gets a
        C(hashmod) relabel on the C(instance) label, so each host (all its jobs) is scraped
        by exactly one shard.
      - HA pairs are not shards - both servers of a pair use the same call and differ only
        in the external label C(replica).
    type: int
    default: 1
  shard_index:
    description: This Prometheus server's shard, from 0 to I(shard_count) - 1.
    type: int
    default: 0
  scraper:
    description:
      - The inventory name of the Prometheus host this configuration is for (site.yml passes
        C(inventory_hostname)).
      - A target listening on loopback only is scraped at that loopback address when it is
        this host, and refused otherwise - also when I(scraper) is not given.
      - Its host variable C(prometheus_scrape_interval), when set, is the global scrape
        interval each job's I(scrape_timeout) is checked against, and its C(prometheus_version),
        when set, the version a job's C(fallback_scrape_protocol) is checked against.
    type: str
notes:
  - The filter reads only the host variables named above, and only for hosts of a scraped group.
seealso:
  - name: Prometheus scrape_config
    description: The configuration the filter writes.
    link: https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config
"""

EXAMPLES = r"""
# group_vars/prometheus.yml, simplest form: the built-in jobs, targets inline (static_configs)
prometheus_scrape_configs: "{{ groups | arq.monitoring.scrape_configs(hostvars) }}"

# Jobs: change the node exporter's port and scrape it over TLS with basic auth,
# turn Grafana off, add a job of one's own
prometheus_scrape_jobs:
  - name: node
    port: 9200
    tls:
      ca_file: /etc/prometheus/exporters-ca.pem
    basic_auth:
      username: prometheus
      password: "{{ vault_node_exporter_password }}"
  - name: grafana
    enabled: false
  - name: haproxy
    group: loadbalancers
    port: 8405

# The whole stack over HTTPS with basic auth (the application's backend job stays as it is)
prometheus_scrape_configs_over_tls: >-
  {{ groups | arq.monitoring.scrape_configs(hostvars, tls={'ca_file': '/etc/prometheus/ca.crt'},
     basic_auth={'username': 'prometheus', 'password': vault_scrape_password}) }}

# Those jobs, targets in files (no reload when hosts come and go), sharded over two
# Prometheus servers whose host_vars set prometheus_shard to 0 and 1, each config for its own
# host (scraper: loopback-only exporters of that host are scraped there); one call, both parts:
# prometheus_scrape.scrape_configs goes into prometheus.yml,
# prometheus_scrape.file_sd['node.yml'] into /etc/prometheus/file_sd/node.yml
prometheus_scrape: >-
  {{ groups | arq.monitoring.scrape_configs(hostvars, prometheus_scrape_jobs,
     file_sd_dir='/etc/prometheus/file_sd', output='both',
     shard_count=2, shard_index=prometheus_shard, scraper=inventory_hostname) }}

# host_vars/db1.yml: per-host settings the filter reads
ansible_host: 2001:db8::10                        # node: [2001:db8::10]:9100
postgres_exporter_web_listen_address: ":9188"     # postgres: [2001:db8::10]:9188
prometheus_target_labels: {env: prod, datacenter: fra1}
"""

RETURN = r"""
_value:
  description:
    - With O(output=scrape_configs), a list of Prometheus scrape configs sorted by C(job_name),
      each with C(job_name), C(scheme), C(metrics_path), the optional C(scrape_interval),
      C(scrape_timeout), C(fallback_scrape_protocol), C(tls_config) and C(basic_auth), then either C(static_configs) or
      C(file_sd_configs), and C(relabel_configs) when sharded.
    - A target group is a dict with C(targets), a list of one C(<address>:<port>), and
      C(labels), with C(instance) set to the host's inventory name; one per host, sorted by host.
    - With O(output=file_sd), a dict of file name to list of target groups.
    - With O(output=both), a dict with keys C(scrape_configs) and C(file_sd).
  type: raw
"""

import gc
import hashlib
import ipaddress
import re
import socket
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ansible.errors import AnsibleFilterError
from jinja2 import Undefined

from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

# A job's host variables are <var_prefix>_web_listen_address and <var_prefix>_web_telemetry_path,
# and for the services of ROUTE_PREFIX_SERVICES <var_prefix>_web_external_url.
LISTEN_SUFFIX = "_web_listen_address"
PATH_SUFFIX = "_web_telemetry_path"
EXTERNAL_URL_SUFFIX = "_web_external_url"

# Services that serve every path, their metrics too, under the path of their external URL.
ROUTE_PREFIX_SERVICES = ("alertmanager", "prometheus")

# Built-in jobs, one per service of the catalog: job name -> group, port, metrics path, the
# roles' variable prefix (the service's listen variable without its suffix) and whether the
# metrics path follows the host's external URL.
BUILTIN_JOBS = {
    service["job"]: {"group": service["group"], "port": service["port"], "metrics_path": service["metrics_path"],
                     "var_prefix": service["listen_var"][:-len(LISTEN_SUFFIX)],
                     "route_prefix": name in ROUTE_PREFIX_SERVICES}
    for name, service in SERVICES.items()
}

# The jobs of the collection's own services (a role installs them), which the tls and basic_auth
# options apply to.
SERVICE_JOBS = frozenset(service["job"] for service in SERVICES.values() if service["role"])

# The scraping Prometheus host's global scrape interval (the prometheus role's variable).
GLOBAL_INTERVAL_VAR = BUILTIN_JOBS[SERVICES["prometheus"]["job"]]["var_prefix"] + "_scrape_interval"

# The scraping Prometheus host's version (the prometheus role's variable), when it sets one.
VERSION_VAR = BUILTIN_JOBS[SERVICES["prometheus"]["job"]]["var_prefix"] + "_version"

JOB_OPTIONS = (
    "basic_auth", "enabled", "fallback_scrape_protocol", "group", "labels", "metrics_path", "name", "port",
    "scheme", "scrape_interval", "scrape_timeout", "tls", "var_prefix",
)
# Prometheus 3's scrape protocols (config.ScrapeProtocol), what fallback_scrape_protocol takes.
SCRAPE_PROTOCOLS = ("PrometheusText0.0.4", "PrometheusText1.0.0", "OpenMetricsText0.0.1", "OpenMetricsText1.0.0",
                    "PrometheusProto")
TLS_OPTIONS = ("ca_file", "cert_file", "insecure_skip_verify", "key_file", "server_name")
BASIC_AUTH_OPTIONS = ("password", "password_file", "username")
OUTPUTS = ("scrape_configs", "file_sd", "both")

# The relabel label that carries a target's shard number (removed after relabeling: "__" prefix).
SHARD_LABEL = "__tmp_shard"

_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_VAR_CHARS = re.compile(r"[^A-Za-z0-9_]")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A DNS label as Go's resolver (Prometheus') takes it: "_" allowed, no "-" at either end.
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"  # no leading zero, as ipaddress
_IPV4 = re.compile(r"(?:%s\.){3}%s" % (_OCTET, _OCTET))
_ZONE = re.compile(r"[A-Za-z0-9_.-]+")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_USERINFO = re.compile(r"//[^/?#]*@")
# Prometheus durations: units largest first, each at most once; milliseconds per unit.
_DURATION = re.compile(r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?")
_DURATION_MS = (365 * 86400000, 7 * 86400000, 86400000, 3600000, 60000, 1000, 1)
_MAX_DURATION_MS = (2 ** 63 - 1) // 1000000  # Go's time.Duration: int64 nanoseconds
_RESERVED_LABELS = ("instance", "job")


def _fail(where, message):
    raise AnsibleFilterError("scrape_configs: %s: %s" % (where, message))


def _defined(value):
    """Let an undefined value fail as Ansible's (or Jinja's) own undefined-variable error."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _utf8(text):
    """Whether a str can be written out (as YAML): no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _port(value, where):
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    elif isinstance(value, bool) or not isinstance(value, int):
        _fail(where, "%r is not an integer port" % (value,))
    if not 1 <= value <= 65535:
        _fail(where, "port %d is out of range (1-65535)" % value)
    return value


def _ipv6(literal, shown, where):
    """The address of an IPv6 literal (no brackets), None if it is none; a %zone only on a link-local one."""
    address, percent, zone = literal.partition("%")
    try:
        ip = ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, address))  # a tenth of ipaddress' parse time
    except (OSError, ValueError, UnicodeError):
        return None
    if percent and not _ZONE.fullmatch(zone):
        _fail(where, "%r has an invalid IPv6 zone" % shown)
    if percent and not ip.is_link_local:
        _fail(where, "%r: a zone (%%%s) is only valid on a link-local IPv6 address (fe80::/10)" % (shown, zone))
    return ip


def _is_host_name(value):
    name = value[:-1] if value.endswith(".") else value
    return len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.split("."))


def _parse_host(value, where, want_ip=False):
    """The host part of a target address (a name, an IPv4 address or a bracketed IPv6 literal)
    and its ipaddress address: None for a name, and for an IPv4 address unless want_ip."""
    if not isinstance(value, str):
        _fail(where, "the address must be a string, not %s" % type(value).__name__)
    if not value:
        _fail(where, "empty address")
    if ":" in value or value.startswith("["):
        literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        ip = _ipv6(literal, value, where)
        if ip is None:
            _fail(where, "%r is neither a host name, an IPv4 address nor an IPv6 address" % value)
        return "[%s]" % literal, ip
    if "%" in value:
        _fail(where, "%r: a zone (%%...) is only valid on a link-local IPv6 address" % value)
    if _DOTTED_DIGITS.fullmatch(value):  # never a name (Go's resolver agrees): an IPv4 address or wrong
        if not _IPV4.fullmatch(value):
            _fail(where, "%r is not a valid IPv4 address" % value)
        return value, ipaddress.IPv4Address(value) if want_ip else None
    if not _is_host_name(value):
        _fail(where, "%r is not a valid host name or address" % value)
    return value, None


def _listen_address(value, where):
    """Split host:port, [v6]:port or :port into (host, port, loopback); the host is None for a
    wildcard (all addresses: empty, or any spelling of 0.0.0.0 or ::)."""
    if not isinstance(value, str):
        _fail(where, "expected host:port, [v6]:port or :port, not %s" % type(value).__name__)
    if value.startswith("["):
        literal, sep, port = value[1:].partition("]:")
        if not sep:
            _fail(where, "%r: expected [v6]:port" % value)
        port = _port(port, where)
        ip = _ipv6(literal, value, where)
        if ip is None:
            _fail(where, "%r: brackets hold an IPv6 address, not %r" % (value, literal))
        host = "[%s]" % literal
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            _fail(where, "%r: expected host:port or :port" % value)
        if ":" in host:
            _fail(where, "%r: an IPv6 address needs brackets, as in [v6]:port" % value)
        port = _port(port, where)
        if not host:
            return None, port, False
        host, ip = _parse_host(host, where, want_ip=True)
    if ip is None:
        name = host.rstrip(".").lower()
        return host, port, name == "localhost" or name.endswith(".localhost")  # RFC 6761
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:a.b.c.d listens as a.b.c.d
    if ip.is_unspecified:
        return None, port, False
    return host, port, ip.is_loopback


def _metrics_path(value, where):
    if not isinstance(value, str) or not value.startswith("/"):
        _fail(where, "%r is not a path starting with /" % (value,))
    if "?" in value or "#" in value:
        _fail(where, "%r: a metrics path has no query string (?) or fragment (#)" % value)
    if _SPACE_OR_CONTROL.search(value):
        _fail(where, "%r contains whitespace or a control character" % value)
    if not _utf8(value):
        _fail(where, "%r is not valid UTF-8 text" % value)
    return value


def _url_path(value, where):
    """The path an external URL puts before every path served, '' for none: its path without the
    slashes at either end, as Prometheus and Alertmanager derive their route prefix."""
    if not isinstance(value, str):
        _fail(where, "expected a URL, not %s" % type(value).__name__)
    if not value:
        return ""
    shown = _USERINFO.sub("//...@", value)  # a password in the URL stays out of messages
    if _SPACE_OR_CONTROL.search(value):
        _fail(where, "%r contains whitespace or a control character" % shown)
    try:
        parts = urlsplit(value)
        path = unquote(parts.path, errors="strict").strip("/")  # they serve the decoded path
    except (ValueError, UnicodeError):
        _fail(where, "%r is not a valid URL" % shown)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        _fail(where, "%r is not an http:// or https:// URL" % shown)
    return "/" + path if path else ""


def _duration(value, where):
    """A Prometheus duration (1y2w3d4h5m6s7ms, units largest first) in milliseconds, above 0."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if match is None:
        _fail(where, "%r is not a Prometheus duration such as 30s or 1m30s" % (value,))
    milliseconds = sum(int(count) * unit for count, unit in zip(match.groups(), _DURATION_MS) if count)
    if not milliseconds:
        _fail(where, "%r must be longer than 0" % value)
    if milliseconds > _MAX_DURATION_MS:
        _fail(where, "%r is out of range (Prometheus takes up to about 292 years)" % value)
    return milliseconds


def _labels(value, where):
    if not isinstance(value, Mapping):
        _fail(where, "labels must be a dict, not %s" % type(value).__name__)
    for name in value:  # before sorting: names of mixed types do not sort
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            _fail(where, "%r is not a valid label name" % (name,))
        if name in _RESERVED_LABELS:
            _fail(where, "label %r is set by the filter and cannot be overridden" % name)
    labels = {}
    for name in sorted(value):
        label = _defined(value[name])
        if isinstance(label, bool) or not isinstance(label, (str, int, float)):
            _fail(where, "label %r must be a string or a number, not %s" % (name, type(label).__name__))
        if isinstance(label, str) and not _utf8(label):
            _fail(where, "label %r: the value is not valid UTF-8 text" % name)
        labels[name] = str(label)
    return labels


def _check_keys(value, known, where, show_unknown=True):
    if not isinstance(value, Mapping):
        _fail(where, "must be a dict, not %s" % type(value).__name__)
    for key in value:
        _defined(value[key])
    unknown = sorted(str(key) for key in value if key not in known)
    if unknown and not show_unknown:
        _fail(where, "%d unknown option(s), not shown as they may hold secrets (known: %s)" % (len(unknown), ", ".join(known)))
    if unknown:
        _fail(where, "unknown option %s (known: %s)" % (", ".join(repr(k) for k in unknown), ", ".join(known)))


def _text(value, key, where):
    """A non-empty string option, written out as it is; its value is never part of a message."""
    if not isinstance(value, str) or not value:
        _fail(where, "%s must be a non-empty string" % key)
    if not _utf8(value):
        _fail(where, "%s is not valid UTF-8 text" % key)
    return value


def _tls(value, where):
    _check_keys(value, TLS_OPTIONS, where)
    tls = {}
    for key in TLS_OPTIONS:
        if key not in value:
            continue
        if key == "insecure_skip_verify":
            if not isinstance(value[key], bool):
                _fail(where, "insecure_skip_verify must be true or false")
        else:
            _text(value[key], key, where)
        tls[key] = value[key]
    if ("cert_file" in tls) != ("key_file" in tls):
        _fail(where, "cert_file and key_file go together")
    return tls


def _basic_auth(value, where):
    # Messages here name known fields only: never a value, nor an unknown key (a {user: password}
    # dict, as the roles' *_web_basic_auth_users, would otherwise print a password).
    _check_keys(value, BASIC_AUTH_OPTIONS, where, show_unknown=False)
    username = _text(value.get("username"), "username", where)
    secrets = [key for key in ("password", "password_file") if key in value]
    if len(secrets) != 1:
        _fail(where, "needs exactly one of password, password_file")
    return {"username": username, secrets[0]: _text(value[secrets[0]], secrets[0], where)}


def _var_prefix(job_name):
    """The host variable prefix of a job that names none: its name, each character a variable
    name cannot hold turned into _, and a _ before a leading digit."""
    prefix = _NOT_VAR_CHARS.sub("_", job_name)
    return "_" + prefix if prefix[:1].isdigit() else prefix


def _jobs(jobs, builtin_jobs, groups, service_defaults, global_interval, scraper_version=None):
    """Validate the jobs and merge them over the built-in ones; return them sorted by name.

    global_interval: None, or (its text, milliseconds, where it was read) of the scraping
    Prometheus' global scrape interval. scraper_version: None, or (its text, major version,
    where it was read) of the scraping Prometheus' version.
    """
    if jobs is None:
        jobs = []
    if not isinstance(jobs, (list, tuple)):
        _fail("jobs", "must be a list of job dicts, not %s" % type(jobs).__name__)
    if not isinstance(builtin_jobs, bool):
        _fail("builtin_jobs", "must be true or false")
    specs = {name: dict(spec, **(service_defaults if name in SERVICE_JOBS else {}))
             for name, spec in BUILTIN_JOBS.items()} if builtin_jobs else {}
    declared = set()
    for index, entry in enumerate(jobs):
        where = "jobs[%d]" % index
        if not isinstance(entry, Mapping):
            _fail(where, "must be a dict, not %s" % type(entry).__name__)
        name = entry.get("name")
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            _fail(where, "name: %r is not a job name (letters, digits, _ . -)" % (name,))
        where = "job %r" % name
        if name in declared:
            _fail(where, "duplicate job name")
        declared.add(name)
        _check_keys(entry, JOB_OPTIONS, where)
        spec = specs.setdefault(name, {"var_prefix": _var_prefix(name)})
        spec.update(entry)
    result = []
    for name in sorted(specs):
        spec = specs[name]
        where = "job %r" % name
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            _fail(where, "enabled must be true or false")
        if not enabled:
            continue
        group = spec.get("group")
        group_list = [group] if isinstance(group, str) else group
        if not isinstance(group_list, (list, tuple)) or not group_list:
            _fail(where, "group: needs an inventory group name or a list of them")
        for item in group_list:
            if not isinstance(item, str):
                _fail(where, "group: %r is not a group name" % (item,))
        missing = [item for item in group_list if item not in groups]
        if missing:
            if name not in declared:
                continue  # a built-in job whose group this inventory does not have
            _fail(where, "group: %r is not in the inventory" % missing[0])
        if "port" not in spec:
            _fail(where, "port: needed for a job that is not built in")
        tls = _tls(spec["tls"], where + ": tls") if spec.get("tls") is not None else None
        scheme = spec.get("scheme", "https" if tls else "http")
        if scheme not in ("http", "https"):
            _fail(where, "scheme: %r is not http or https" % (scheme,))
        var_prefix = spec["var_prefix"]
        if not isinstance(var_prefix, str) or (var_prefix and not _VAR_NAME.match(var_prefix)):
            _fail(where, "var_prefix: %r is not a variable name prefix" % (var_prefix,))
        labels = spec.get("labels")
        job = {
            "name": name,
            "groups": sorted(set(group_list)),
            "port": _port(spec["port"], where + ": port"),
            "metrics_path": _metrics_path(spec.get("metrics_path", "/metrics"), where + ": metrics_path"),
            "scheme": scheme,
            "var_prefix": var_prefix,
            "route_prefix": spec.get("route_prefix", False),
            "labels": _labels(labels, where + ": labels") if labels is not None else {},
            "tls": tls,
            "basic_auth": _basic_auth(spec["basic_auth"], where + ": basic_auth") if spec.get("basic_auth") is not None else None,
        }
        durations = {}
        for key in ("scrape_interval", "scrape_timeout"):
            job[key] = spec.get(key)
            if job[key] is not None:
                durations[key] = _duration(job[key], "%s: %s" % (where, key))
        # Prometheus refuses a timeout longer than the job's interval, its own or the global one.
        if "scrape_timeout" in durations:
            if "scrape_interval" in durations:
                if durations["scrape_timeout"] > durations["scrape_interval"]:
                    _fail(where, "scrape_timeout: %s is longer than the job's scrape_interval %s"
                          % (job["scrape_timeout"], job["scrape_interval"]))
            elif global_interval and durations["scrape_timeout"] > global_interval[1]:
                _fail(where, "scrape_timeout: %s is longer than the global scrape interval %s (%s)"
                      % (job["scrape_timeout"], global_interval[0], global_interval[2]))
        # Prometheus 3 fails a scrape whose Content-Type is missing or unknown unless the job names
        # a fallback; 2.x knows no such key (it took the text format) and refuses the config.
        fallback = job["fallback_scrape_protocol"] = spec.get("fallback_scrape_protocol")
        if fallback is not None:
            if not isinstance(fallback, str) or fallback not in SCRAPE_PROTOCOLS:
                _fail(where, "fallback_scrape_protocol: %r is not one of %s" % (fallback, ", ".join(SCRAPE_PROTOCOLS)))
            if scraper_version is not None and scraper_version[1] < 3:
                _fail(where, "fallback_scrape_protocol: needs Prometheus 3, and %s is %s (Prometheus 2 refuses the key "
                             "and takes a target's missing Content-Type as text by itself)"
                      % (scraper_version[2], scraper_version[0]))
        result.append(job)
    return result


def _shard_of(instance, shard_count):
    """The shard whose hashmod relabel keeps this instance: Prometheus' hashmod is the md5 of the
    source label values joined by ";", its last 8 bytes as a big-endian uint64, modulo."""
    digest = hashlib.md5(instance.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % shard_count


def _shard_relabel(shard_count, shard_index):
    for key, value in (("shard_count", shard_count), ("shard_index", shard_index)):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, "%r is not an integer" % (value,))
    if shard_count < 1:
        _fail("shard_count", "%d must be at least 1" % shard_count)
    if not 0 <= shard_index < shard_count:
        _fail("shard_index", "%d is out of range for shard_count %d (0 to %d)" % (shard_index, shard_count, shard_count - 1))
    if shard_count == 1:
        return None
    # What _shard_of computes.
    return [
        {"source_labels": ["instance"], "modulus": shard_count, "target_label": SHARD_LABEL, "action": "hashmod"},
        {"source_labels": [SHARD_LABEL], "regex": str(shard_index), "action": "keep"},
    ]


class _Hosts:
    """Per-host facts, read once from hostvars however many jobs scrape the host, and what the
    loopback rule needs: the scraping host and this server's shard."""

    def __init__(self, hostvars, labels_var, scraper, shard_count, shard_index):
        self._hostvars = hostvars
        self._labels_var = labels_var
        self.scraper = scraper
        self._shard = (shard_count, shard_index)
        # name -> (variables, address, extra labels, sorted labels with instance)
        self.cache = {}
        self.checked_groups = set()

    def read(self, name):
        where = "host %r" % name
        variables = self._hostvars[name] if name in self._hostvars else {}
        if not isinstance(variables, Mapping):
            _fail(where, "hostvars entry must be a dict, not %s" % type(variables).__name__)
        address = _defined(variables.get("ansible_host"))
        if address is None:
            address = _parse_host(name, where + ": inventory_hostname")[0]
        else:
            address = _parse_host(address, where + ": ansible_host")[0]
        labels = _defined(variables.get(self._labels_var))
        labels = _labels(labels, "%s: %s" % (where, self._labels_var)) if labels is not None else {}
        host = self.cache[name] = (variables, address, labels, dict(sorted(dict(labels, instance=name).items())))
        return host

    def check_loopback(self, name, listen_var, listen):
        """A loopback-only listener is scraped by the Prometheus on that host, and no other."""
        if name == self.scraper:
            return
        shard_count, shard_index = self._shard
        if shard_count > 1 and _shard_of(name, shard_count) != shard_index:
            return  # another shard's target: this server drops it
        where = "host %r: %s" % (name, listen_var)
        if self.scraper is None:
            _fail(where, "%r listens on loopback only, which no other host can scrape; listen on an address "
                         "Prometheus reaches, or give scraper=%r if this is the config of the Prometheus on %r"
                         % (listen, name, name))
        _fail(where, "%r listens on loopback only, which Prometheus on %r cannot scrape; listen on an address "
                     "it reaches" % (listen, self.scraper))


def _members(group, groups, hosts):
    """The host names of a group, checked once per call."""
    members = groups[group]
    if group in hosts.checked_groups:
        return members
    if not isinstance(members, (list, tuple)):
        _fail("group %r" % group, "must be a list of host names")
    # The usual case at C speed: plain non-empty strs; else one by one (str subclasses pass).
    if set(map(type, members)) - {str} or "" in members or not _utf8("".join(members)):
        for member in members:
            if not isinstance(_defined(member), str) or not member or not _utf8(member):
                _fail("group %r" % group, "%r is not a host name" % (member,))
    hosts.checked_groups.add(group)
    return members


def _targets(job, groups, hosts):
    """The job's target groups, one per host of its groups, sorted by host."""
    names = set()
    for group in job["groups"]:
        names.update(_members(group, groups, hosts))
    prefix = job["var_prefix"]
    listen_var = prefix + LISTEN_SUFFIX if prefix else None
    path_var = prefix + PATH_SUFFIX
    url_var = prefix + EXTERNAL_URL_SUFFIX if prefix and job["route_prefix"] else None
    job_path = job["metrics_path"]
    job_labels = job["labels"]
    port_suffix = ":%d" % job["port"]
    cache = hosts.cache
    targets = []
    # The hot loop (hosts x jobs): variables absent from a host cost two dict lookups, and a
    # target's labels are a copy of the host's sorted labels unless the job or host adds some.
    for name in sorted(names):
        host = cache.get(name) or hosts.read(name)
        variables, address, host_labels, sorted_labels = host
        target = None
        path = None
        if listen_var is not None:
            listen = variables.get(listen_var)
            if listen is not None:
                listen_host, port, loopback = _listen_address(_defined(listen), "host %r: %s" % (name, listen_var))
                if loopback:
                    hosts.check_loopback(name, listen_var, listen)
                target = "%s:%d" % (listen_host or address, port)
            path = variables.get(path_var)
            if path is not None:
                path = _metrics_path(path, "host %r: %s" % (name, path_var)) if _defined(path) != job_path else None
            elif url_var is not None:
                url = variables.get(url_var)
                if url is not None:
                    where = "host %r: %s" % (name, url_var)
                    route = _url_path(_defined(url), where)
                    path = _metrics_path(route + job_path, where) if route else None
        if job_labels or path:
            labels = dict(job_labels, **host_labels)
            labels["instance"] = name
            if path:
                labels["__metrics_path__"] = path
            labels = dict(sorted(labels.items()))
        else:
            labels = sorted_labels.copy()
        targets.append({"targets": [target or address + port_suffix], "labels": labels})
    return targets


def _global_interval(hostvars, scraper):
    """(text, milliseconds, where) of the scraper's global scrape interval, None when unknown."""
    variables = hostvars[scraper] if scraper is not None and scraper in hostvars else None
    if not isinstance(variables, Mapping):
        return None
    value = _defined(variables.get(GLOBAL_INTERVAL_VAR))
    if value is None or value == "":
        return None
    where = "host %r: %s" % (scraper, GLOBAL_INTERVAL_VAR)
    return value, _duration(value, where), where


def _scraper_version(hostvars, scraper):
    """(text, major, where) of the scraper's prometheus_version, None when unknown or no version."""
    variables = hostvars[scraper] if scraper is not None and scraper in hostvars else None
    if not isinstance(variables, Mapping):
        return None
    value = _defined(variables.get(VERSION_VAR))
    match = re.match(r"([0-9]+)[.]", str(value)) if value is not None else None
    if match is None:
        return None  # the prometheus role refuses a version that is not one
    return str(value), int(match.group(1)), "host %r: %s" % (scraper, VERSION_VAR)


def scrape_configs(groups, hostvars, jobs=None, *, tls=None, basic_auth=None, builtin_jobs=True,
                   labels_var="prometheus_target_labels", file_sd_dir="", output="scrape_configs",
                   shard_count=1, shard_index=0, scraper=None):
    """Build Prometheus scrape configs from the inventory; see DOCUMENTATION."""
    # The output is hosts x jobs small dicts and lists, none of them in a reference cycle. With
    # the cyclic garbage collector on, its passes over that growing heap make the time grow
    # faster than the inventory (about 2.5 times the time per target at 100,000 hosts), so it
    # is paused for the call and restored however the call ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _scrape_configs(groups, hostvars, jobs, tls, basic_auth, builtin_jobs, labels_var, file_sd_dir, output,
                               shard_count, shard_index, scraper)
    finally:
        if collecting:
            gc.enable()


def _scrape_configs(groups, hostvars, jobs, tls, basic_auth, builtin_jobs, labels_var, file_sd_dir, output,
                    shard_count, shard_index, scraper):
    for argument in (groups, hostvars, jobs, tls, basic_auth, builtin_jobs, labels_var, file_sd_dir, output,
                     shard_count, shard_index, scraper):
        _defined(argument)
    # Checked here too, so that a mistake is named after the option even with no service job.
    service_defaults = {}
    if tls:
        service_defaults["tls"] = _tls(tls, "tls")
    if basic_auth:
        service_defaults["basic_auth"] = _basic_auth(basic_auth, "basic_auth")
    if not isinstance(groups, Mapping):
        _fail("input", "must be the inventory's groups (groups | arq.monitoring.scrape_configs(hostvars))")
    if not isinstance(hostvars, Mapping):
        _fail("hostvars", "must be the hostvars mapping, not %s" % type(hostvars).__name__)
    if output not in OUTPUTS:
        _fail("output", "%r is not one of %s" % (output, ", ".join(OUTPUTS)))
    if not isinstance(labels_var, str) or not _VAR_NAME.match(labels_var):
        _fail("labels_var", "%r is not a variable name" % (labels_var,))
    if not isinstance(file_sd_dir, str) or (file_sd_dir and not file_sd_dir.startswith("/")):
        _fail("file_sd_dir", "%r is not an absolute path" % (file_sd_dir,))
    if not _utf8(file_sd_dir):
        _fail("file_sd_dir", "%r is not valid UTF-8 text" % file_sd_dir)
    if scraper is not None:
        if not isinstance(scraper, str) or not scraper:
            _fail("scraper", "%r is not an inventory host name" % (scraper,))
        if scraper not in hostvars and not any(scraper in members for members in groups.values()
                                               if isinstance(members, (list, tuple))):
            _fail("scraper", "%r is not a host of the inventory" % scraper)
    relabel = _shard_relabel(shard_count, shard_index)
    hosts = _Hosts(hostvars, labels_var, scraper, shard_count, shard_index)
    configs = []
    files = {}
    for job in _jobs(jobs, builtin_jobs, groups, service_defaults, _global_interval(hostvars, scraper),
                     _scraper_version(hostvars, scraper)):
        config = {"job_name": job["name"], "scheme": job["scheme"], "metrics_path": job["metrics_path"]}
        for key in ("scrape_interval", "scrape_timeout", "fallback_scrape_protocol"):
            if job[key] is not None:
                config[key] = job[key]
        if job["tls"]:
            config["tls_config"] = dict(job["tls"])
        if job["basic_auth"]:
            config["basic_auth"] = dict(job["basic_auth"])
        targets = _targets(job, groups, hosts)
        if file_sd_dir:
            file_name = job["name"] + ".yml"
            files[file_name] = targets
            config["file_sd_configs"] = [{"files": [file_sd_dir.rstrip("/") + "/" + file_name]}]
        else:
            config["static_configs"] = targets
        if relabel:
            config["relabel_configs"] = [dict(rule, source_labels=list(rule["source_labels"])) for rule in relabel]
        configs.append(config)
    if output == "scrape_configs":
        return configs
    if output == "file_sd":
        return files
    return {"scrape_configs": configs, "file_sd": files}


class FilterModule:
    """arq.monitoring.scrape_configs"""

    def filters(self):
        return {"scrape_configs": scrape_configs}
