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


def tasks_per_play(output):
    """{play: {host: tasks that ran (ok or changed)}}, from ansible-playbook's default output."""
    counts = defaultdict(lambda: defaultdict(int))
    play, seen = None, set()
    for line in output.splitlines():
        if line.startswith("PLAY [") and "RECAP" not in line:
            play = line[6:line.index("]")]
        elif line.startswith("TASK ["):
            seen = set()
        else:
            match = re.match(r"(ok|changed): \[([^\]]+)\]", line)
            if match and play and match.group(2) not in seen:
                seen.add(match.group(2))
                counts[play][match.group(2)] += 1
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
    rows = [f"| {play} | {first_plays.get(play, 0):.1f} s | {again_plays.get(play, 0):.1f} s | {max(hosts.values())} |"
            for play, hosts in tasks_per_play(output).items()]
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
        "Each play (one role each): its wall time in the first converge and in the re-run, and the",
        "tasks it runs per host on the re-run (the busiest host):",
        "",
        "| play | first converge | re-run | tasks on re-run |",
        "| --- | ---: | ---: | ---: |",
        *rows,
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
