#!/usr/bin/env python3
"""Benchmark of the whole stack on the local lab (a plain script, not a test): `make benchmark`.

Recreates the lab from scratch, then times site.yml's first converge and an idempotent re-run,
counts the tasks each play (one role each) runs per host on the re-run, runs the scrape_configs
filter benchmark, and writes the figures into docs/benchmarks.md between the markers.
"""
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- stack benchmark: begin -->", "<!-- stack benchmark: end -->"


def run(*args):
    # profile_tasks stamps each task with the time since the start (for seconds_per_play).
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    started = time.monotonic()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(done.stdout[-3000:] + done.stderr[-2000:])
    return time.monotonic() - started, done.stdout


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


def tasks_per_role(output):
    """{role: {host: tasks that ran (ok or changed)}}, from ansible-playbook's default output
    (also under the free strategy, where hosts' tasks interleave)."""
    counts = defaultdict(lambda: defaultdict(int))
    task, seen, last = None, set(), {}
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task, seen = line[line.index("[") + 1:line.rindex("]")], set()
        else:
            match = re.match(r"(ok|changed): \[([^\]]+)\]", line)
            if match and task and match.group(2) not in seen:
                host = match.group(2)
                seen.add(host)
                last[host] = task_role(task, host, last)
                counts[last[host]][host] += 1
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


def main():
    # Arguments pass on to site.yml (make benchmark: where the releases come from, as for make lab).
    site = ["ansible-playbook", "site.yml", "-i", "inventories/lab", *sys.argv[1:]]
    run("ansible-playbook", "tests/harness/lab.yml", "-i", "inventories/lab", "-e", "lab_state=absent")
    run("ansible-playbook", "tests/harness/lab.yml", "-i", "inventories/lab")
    first, first_output = run(*site)
    again, output = run(*site)
    load = os.getloadavg()[1]  # other work on the machine slows every task: say how much there was
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))
    first_plays, again_plays = seconds_per_play(first_output), seconds_per_play(output)
    rows = [f"| {play} | {first_plays.get(play, 0):.1f} s | {again_plays.get(play, 0):.1f} s |" for play in again_plays]
    tasks = [f"| {role} | {max(hosts.values())} | {', '.join(f'{h} {n}' for h, n in sorted(hosts.items()))} |"
             for role, hosts in tasks_per_role(output).items()]
    _, filter_table = run(sys.executable, "tests/benchmarks/scrape_configs.py")
    section = "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make benchmark` on {os.cpu_count()} cores "
        f"(lab: {len(re.findall(r'^lab-', output.split('PLAY RECAP')[-1], re.M))} hosts, Debian 12 and 13 containers; "
        f"load average over the last 5 minutes {load:.1f}).",
        "",
        "| run | wall time |",
        "| --- | ---: |",
        f"| first converge of site.yml | {first:.0f} s |",
        f"| idempotent re-run ({changed} changed) | {again:.0f} s ({again / first:.0%} of the first) |",
        "",
        "Each play of site.yml: its wall time in the first converge and in the re-run:",
        "",
        "| play | first converge | re-run |",
        "| --- | ---: | ---: |",
        *rows,
        "",
        "Tasks each role runs per host on the re-run (ok lines; skipped ones not counted):",
        "",
        "| role | most on one host | per host |",
        "| --- | ---: | --- |",
        *tasks,
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
