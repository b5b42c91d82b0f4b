"""Helpers the scenarios' testinfra tests share: HTTP from inside an instance, failing runs."""
import json
import os
import subprocess
import tempfile


def curl(host, url, *args):
    """HTTP status and body of a request made inside the instance (arguments are quoted)."""
    cmd = host.run("curl -sS -o /tmp/body -w %s" + " %s" * (len(args) + 1), "%{http_code}", *args, url)
    return cmd.stdout.strip(), host.file("/tmp/body").content_string if cmd.rc == 0 else cmd.stderr


def converge(limit, extra_vars):
    """Run the scenario's converge.yml on one host with extra vars; the CompletedProcess.

    extra_vars is a dict, or YAML text (for values that need !unsafe).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as extra:
        extra.write(extra_vars if isinstance(extra_vars, str) else json.dumps(extra_vars))
        extra.flush()
        return subprocess.run(
            ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit,
             "-e", "@" + extra.name, os.environ["MOLECULE_SCENARIO_DIRECTORY"] + "/converge.yml"],
            capture_output=True, text=True, timeout=180, check=False,
        )


def recap_changed(run):
    """The changed= count of the run's recap (a failed preflight leaves it at 0)."""
    recap = run.stdout.split("PLAY RECAP")[-1]
    return int(recap.split("changed=")[1].split()[0])
