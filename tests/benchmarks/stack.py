#!/usr/bin/env python3
"""Benchmark of the whole stack on the local lab (a plain script, not a test): `make benchmark`.

    python tests/benchmarks/stack.py [--hosts 4,12,24] [--timeout 1200] [site.yml arguments]

For each lab size, recreates the lab from scratch (inventories/lab's 4 hosts, plus plain
node_exporter hosts lab-node01... alternating Debian 12 and 13, from a generated inventory), then
times site.yml's first converge and an idempotent re-run (which must change nothing), and counts
the tasks each play and role runs per host on the re-run. A size that takes longer than --timeout
seconds is given up. Then removes every lab container, runs the scrape_configs filter benchmark,
and writes the figures into docs/benchmarks.md between the markers.
"""
import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- stack benchmark: begin -->", "<!-- stack benchmark: end -->"
LAB_HOSTS = 4  # inventories/lab
# inotify instances a lab container holds (systemd 5, dbus-daemon 1; measured): every
# container's processes run as root and share fs.inotify.max_user_instances, and a systemd that
# gets none exits, stopping its container (or another user's, such as a Molecule scenario's).
INOTIFY_PER_HOST = 6
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


class GaveUp(Exception):
    """A lab size ran out of its time."""


def run(*args, deadline=None):
    # profile_tasks stamps each task with the time since the start (for seconds_per_play).
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    started = time.monotonic()
    # Its own process group, so that a timeout stops ansible-playbook's workers too.
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=None if deadline is None else max(deadline - started, 1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise GaveUp(f"{args[1]} still running when the size's time (--timeout) ran out")
    if process.returncode:
        sys.exit(stdout[-3000:] + stderr[-2000:])
    return time.monotonic() - started, stdout


def inotify_instances():
    """(fs.inotify.max_user_instances, instances open on the machine)."""
    used = 0
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            used += os.readlink(fd) == "anon_inode:inotify"
        except OSError:
            pass  # gone meanwhile
    return int(INOTIFY_LIMIT.read_text()), used


@contextlib.contextmanager
def inotify_room(size):
    """As root, raises fs.inotify.max_user_instances for the run when `size` lab containers would
    not fit (saying so), and puts it back afterwards; otherwise check_room gives such sizes up."""
    limit, used = inotify_instances()
    wanted = used + size * INOTIFY_PER_HOST + 64
    if wanted <= limit or os.geteuid() != 0:
        yield
        return
    print(f"fs.inotify.max_user_instances {limit} -> {wanted} for {size} lab containers, until the end", file=sys.stderr)
    INOTIFY_LIMIT.write_text(str(wanted))
    try:
        yield
    finally:
        INOTIFY_LIMIT.write_text(str(limit))


def check_room(size):
    """Gives up a lab size whose containers the machine's inotify instances cannot hold."""
    limit, used = inotify_instances()
    if used + size * INOTIFY_PER_HOST > limit:
        raise GaveUp(f"{size} systemd containers need about {size * INOTIFY_PER_HOST} inotify instances, "
                     f"{used} of the machine's fs.inotify.max_user_instances = {limit} were in use")


def inventory(size, directory):
    """The -i arguments of a lab of `size` hosts: inventories/lab, and the hosts beyond its 4 as
    plain node_exporter hosts (inventories/lab's group_vars apply to them as well)."""
    extra = {"lab-node%02d" % i: {"lab_image": "arq-monitoring/debian:%d" % (12 + (i % 2 == 0))}
             for i in range(1, size - LAB_HOSTS + 1)}
    path = Path(directory) / ("lab-%d.yml" % size)
    path.write_text(json.dumps({"all": {"children": {"node_exporter": {"hosts": extra}}}}))
    return ["-i", "inventories/lab", "-i", str(path)]


# The collection's roles, as the layout has them (the internal _service core aside).
ROLES = tuple(sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir() and not p.name.startswith("_")))


def task_role(task, host, last):
    """The role a task header belongs to: its own role, else the service the core's task names,
    else the host's role of the task before (the core's few tasks that name none)."""
    own = re.match(r"arq\.monitoring\.(\w+) : ", task)
    if own and own.group(1) != "_service":
        return own.group(1)
    named = [role for role in ROLES if re.search(r"\b%s\b" % role, task)]
    return named[-1] if named else last.get(host, "site.yml (facts)")


def task_results(output):
    """(play, task, host) of each task that ran (ok or changed) on a host, from ansible-playbook's
    default output (also under the free strategy, where hosts' tasks interleave)."""
    play, task, seen = None, None, set()
    for line in output.splitlines():
        if line.startswith("PLAY [") and "RECAP" not in line:
            play = line[6:line.index("]")]
        elif line.startswith(("TASK [", "RUNNING HANDLER [")):
            task, seen = line[line.index("[") + 1:line.rindex("]")], set()
        else:
            match = re.match(r"(ok|changed): \[([^\]]+)\]", line)
            if match and task and match.group(2) not in seen:
                seen.add(match.group(2))
                yield play, task, match.group(2)


def tasks_per_role(output):
    """{role: {host: tasks that ran}}."""
    counts, last = defaultdict(lambda: defaultdict(int)), {}
    for _, task, host in task_results(output):
        last[host] = task_role(task, host, last)
        counts[last[host]][host] += 1
    return counts


def tasks_per_play(output):
    """{play: {host: tasks that ran}}."""
    counts = defaultdict(lambda: defaultdict(int))
    for play, _, host in task_results(output):
        counts[play][host] += 1
    return counts


def seconds_per_play(output):
    """{play: wall seconds}, from the elapsed time profile_tasks stamps on each task."""
    starts, play, last = {}, None, 0.0
    for line in output.splitlines():
        if line.startswith("PLAY [") and "RECAP" not in line:
            play = line[6:line.index("]")]
        stamp = re.search(r"\) +(\d+):(\d+):(\d+\.\d+) \*", line)
        if stamp:
            elapsed = int(stamp[1]) * 3600 + int(stamp[2]) * 60 + float(stamp[3])
            starts.setdefault(play, elapsed)
            last = elapsed
    ends = list(starts.values())[1:] + [last]
    return {play: end - start for (play, start), end in zip(starts.items(), ends)}


def recap(output):
    """{host: {ok: n, changed: n, ...}} of the PLAY RECAP."""
    return {host: {key: int(n) for key, n in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in re.findall(r"^(\S+) +: (ok=.*)$", output.split("PLAY RECAP")[-1], re.M)}


def measure(size, lab, site, timeout):
    """Figures of one lab size: a fresh lab, site.yml's first converge and its re-run."""
    deadline = time.monotonic() + timeout
    check_room(size)
    run("ansible-playbook", "tests/harness/lab.yml", *lab, deadline=deadline)
    first, first_output = run(*site, deadline=deadline)
    again, output = run(*site, deadline=deadline)
    hosts = recap(output)
    changed = sum(counts["changed"] for counts in hosts.values())
    if changed or len(hosts) != size:
        sys.exit(f"{size} hosts: the re-run changed {changed} on {len(hosts)} hosts\n{output[-3000:]}")
    return {"size": size, "first": first, "again": again, "output": output, "load": os.getloadavg()[1],
            "first_plays": seconds_per_play(first_output), "plays": seconds_per_play(output)}


def one_size_tables(m):
    """The detail tables of one lab size (its plays' times, its roles' tasks per host)."""
    plays = [f"| {play} | {m['first_plays'].get(play, 0):.1f} s | {seconds:.1f} s |" for play, seconds in m["plays"].items()]
    roles = [f"| {role} | {max(hosts.values())} | {', '.join(f'{h} {n}' for h, n in sorted(hosts.items()))} |"
             for role, hosts in tasks_per_role(m["output"]).items()]
    return [
        f"Lab of {m['size']} hosts (load average over the last 5 minutes {m['load']:.1f}):",
        "",
        "| run | wall time |",
        "| --- | ---: |",
        f"| first converge of site.yml | {m['first']:.0f} s |",
        f"| idempotent re-run (0 changed) | {m['again']:.0f} s ({m['again'] / m['first']:.0%} of the first) |",
        "",
        "Each play of site.yml: its wall time in the first converge and in the re-run:",
        "",
        "| play | first converge | re-run |",
        "| --- | ---: | ---: |",
        *plays,
        "",
        "Tasks each role runs per host on the re-run (ok lines; skipped ones not counted):",
        "",
        "| role | most on one host | per host |",
        "| --- | ---: | --- |",
        *roles,
    ]


def scale_tables(measured, gave_up):
    """How the runs grow with the lab: totals per size, then each play at each size."""
    totals = []
    for m in measured:
        tasks = sum(n for hosts in tasks_per_play(m["output"]).values() for n in hosts.values())
        totals.append(f"| {m['size']} | {m['first']:.0f} s | {m['again']:.0f} s | {m['again'] / m['size']:.1f} s "
                      f"| {tasks} | {tasks / m['size']:.1f} | {m['load']:.1f} |")
    totals += [f"| {size} | gave up: {reason} | | | | | |" for size, reason in gave_up]
    plays = []
    for play in measured[0]["plays"]:
        cells = []
        for m in measured:
            hosts = tasks_per_play(m["output"])[play].values()
            each = "%d" % min(hosts) if min(hosts) == max(hosts) else "%d-%d" % (min(hosts), max(hosts))
            cells.append(f"{m['first_plays'].get(play, 0):.1f} / {m['plays'].get(play, 0):.1f} s, {len(hosts)} x {each}")
        plays.append(f"| {play} | {' | '.join(cells)} |")
    return [
        "As the lab grows (the hosts beyond the 4 above: plain node_exporter hosts, Debian 12 and 13"
        " alternating; each size a fresh lab):",
        "",
        "| lab hosts | first converge | re-run (0 changed) | re-run per host | tasks on the re-run | per host | load (5 min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *totals,
        "",
        "Each play at each size: first converge / re-run wall time, hosts x tasks per host on the re-run:",
        "",
        "| play | " + " | ".join(f"{m['size']} hosts" for m in measured) + " |",
        "| --- |" + " ---: |" * len(measured),
        *plays,
    ]


def forks():
    """ansible.cfg's forks (how many hosts a task runs on at once)."""
    return re.search(r"^forks *= *(\d+)", (REPO / "ansible.cfg").read_text(), re.M).group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="4,12,24", help="lab sizes, comma-separated, at least 4 each")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds before a lab size is given up")
    # Other arguments pass on to site.yml (make benchmark: where the releases come from, as for make lab).
    args, site_args = parser.parse_known_args()
    sizes = sorted(int(size) for size in args.hosts.split(","))
    if sizes[0] < LAB_HOSTS:
        parser.error(f"a lab has at least the {LAB_HOSTS} hosts of inventories/lab")
    measured, gave_up = [], []
    with tempfile.TemporaryDirectory(prefix="arq-benchmark-") as directory:
        everything = inventory(sizes[-1], directory)  # every lab container any size has
        with inotify_room(sizes[-1]):
            try:
                for size in sizes:
                    lab = inventory(size, directory)
                    run("ansible-playbook", "tests/harness/lab.yml", *everything, "-e", "lab_state=absent")
                    try:
                        measured.append(measure(size, lab, ["ansible-playbook", "site.yml", *lab, *site_args], args.timeout))
                    except GaveUp as reason:
                        print(f"{size} hosts: gave up: {reason}", file=sys.stderr)
                        gave_up = [(s, reason) for s in sizes if s >= size]
                        break
            finally:
                run("ansible-playbook", "tests/harness/lab.yml", *everything, "-e", "lab_state=absent")
    if not measured:
        sys.exit("no lab size finished in time")
    _, filter_table = run(sys.executable, "tests/benchmarks/scrape_configs.py")
    section = "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make benchmark` on {os.cpu_count()} cores "
        f"(Debian 12 and 13 containers; forks={forks()} from ansible.cfg).",
        "",
        *one_size_tables(measured[0]),
        "",
        *scale_tables(measured, gave_up),
        "",
        "scrape_configs filter (`tests/benchmarks/scrape_configs.py`):",
        "",
        "```",
        filter_table.strip(),
        "```",
        END,
    ])
    text = DOC.read_text()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text += "\n## Whole stack on the lab\n\n" + section + "\n"
    DOC.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
