#!/usr/bin/env python3
"""Benchmark of the arq.monitoring.scrape_configs filter (a plain script, not a test).

    .venv/bin/python tests/benchmarks/scrape_configs.py [HOSTS ...]
    .venv/bin/python tests/benchmarks/scrape_configs.py --ansible [HOSTS ...]

For each inventory size (default 1,000, 10,000 and 100,000 hosts) builds an inventory where
every host is scraped by 6 jobs, with per-host addresses (IPv4 and IPv6), listen addresses and
labels, and times the filter (sharded, 2 shards) called with plain dicts. Prints, per size, the
best wall-clock and CPU time of a few runs and the CPU time per target (CPU time is the steadier
figure on a shared machine).

With --ansible (default 1,000 and 10,000 hosts), writes the same inventory out (every host
ansible_connection=local, the jobs as arq_monitoring_scrape_jobs) and runs scrape_configs.yml
on its first Prometheus host: a baseline task, then one evaluating site.yml's __site_scrape
(with Ansible's `hostvars`, which resolve each host's variables). Prints a Markdown table of
the best of a few runs of each task (ansible.posix.profile_tasks) and the playbook's wall time.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.arq.monitoring.plugins.filter.scrape_configs import scrape_configs  # noqa: E402

GROUPS = ["node_exporter", "postgres_exporter", "redis_exporter", "backend", "prometheus", "alertmanager"]
# Six jobs: every host is in the groups of six built-in jobs (Grafana's is turned off), so
# N hosts give 6 x N targets. The node job also carries job labels.
JOBS = [
    {"name": "node", "labels": {"team": "ops"}},
    {"name": "grafana", "enabled": False},
]


def inventory(n):
    hosts = ["host%06d.example.net" % i for i in range(n)]
    groups = {"all": hosts, "ungrouped": [], **{group: list(hosts) for group in GROUPS}}
    hostvars = {}
    for i, host in enumerate(hosts):
        # Three addresses in four are IPv4, one is IPv6; a third of the hosts move the node
        # exporter's port, half carry target labels.
        variables = {"ansible_host": "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255) if i % 4 else "2001:db8::%x:%x" % (i >> 16, i & 0xFFFF)}
        if i % 3 == 0:
            variables["node_exporter_web_listen_address"] = ":9200"
        if i % 2 == 0:
            variables["prometheus_target_labels"] = {"env": "prod", "datacenter": "dc%d" % (i % 5)}
        hostvars[host] = variables
    return groups, hostvars


def main(sizes):
    print("hosts     targets  jobs  runs  wall s (best)  cpu s (best)  us/target (cpu)")
    for n in sizes:
        groups, hostvars = inventory(n)
        runs = 7 if n <= 10_000 else 3
        wall = cpu = float("inf")
        for _ in range(runs):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            configs = scrape_configs(groups, hostvars, JOBS, shard_count=2, shard_index=1)
            wall = min(wall, time.perf_counter() - start_wall)
            cpu = min(cpu, time.process_time() - start_cpu)
        count = sum(len(c["static_configs"]) for c in configs)
        print("%-9d %7d %5d %5d %14.3f %13.3f %16.2f" % (n, count, len(configs), runs, wall, cpu, cpu / count * 1e6))


def ansible_inventory(n, directory):
    """inventory(n) as an Ansible inventory file; its path."""
    groups, hostvars = inventory(n)
    path = Path(directory) / ("hosts-%d.json" % n)
    path.write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "local", "arq_monitoring_scrape_jobs": JOBS},
        "hosts": hostvars,
        "children": {group: {"hosts": dict.fromkeys(groups[group])} for group in GROUPS},
    }}))
    return path


def through_ansible(sizes, runs=3):
    env = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "ANSIBLE_NOCOLOR": "1"}
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    playbook = [str(Path(sys.executable).parent / "ansible-playbook"), str(Path(__file__).with_suffix(".yml"))]
    print("| hosts | targets | runs | playbook wall s | baseline task s | filter task s | filter - baseline s | ms per host |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="arq-scrape-configs-") as directory:
        for n in sizes:
            path = ansible_inventory(n, directory)
            wall = baseline = task = float("inf")
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run([*playbook, "-i", str(path)], cwd=REPO, env=env, capture_output=True,
                                      text=True, timeout=900, check=False)
                if done.returncode:
                    sys.exit(done.stdout[-3000:] + done.stderr[-2000:])
                wall = min(wall, time.perf_counter() - started)
                # profile_tasks' summary: "<task> ------ 0.39s"
                times = {name: float(s) for name, s in re.findall(r"^(Baseline|Filter) -+ (\d+\.\d+)s$", done.stdout, re.M)}
                baseline, task = min(baseline, times["Baseline"]), min(task, times["Filter"])
            print("| {:,} | {:,} | {} | {:.1f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(
                n, n * len(GROUPS), runs, wall, baseline, task, task - baseline, (task - baseline) / n * 1e3))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ansible"]:
        through_ansible([int(a) for a in sys.argv[2:]] or [1_000, 10_000])
    else:
        main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000])
