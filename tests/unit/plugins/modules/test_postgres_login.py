"""arq.monitoring.postgres_login: password hashes, quoting, the SQL it plans, and the module run
as Ansible runs it against a fake psql on PATH (no PostgreSQL): the fake answers the state query
with a JSON state the test gives it and records every call's arguments and standard input.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.arq.monitoring.plugins.modules import postgres_login as pl

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "postgres_login.py"
SALT = bytes(range(16))
# Made by PostgreSQL 15.18 (CREATE/ALTER ROLE ... PASSWORD with password_encryption set), so
# the module's hashing is held to the server's, not to a second copy of itself.
SERVER_SCRAM_PENCIL = ("SCRAM-SHA-256$4096:h53WsbfacoWMlkcnay3t2g==$b4Dg59xjbh8xnfTN5Kkd9EHBC+xN1b4WBvdyIPwMtZY="
                       ":aYyXQEeR9lNMY7m4FDrpErHpRDzZ832MBDzBWJ/3/5k=")
# U&'I\00ADX \2168\216A': a soft hyphen SASLprep maps to nothing, Roman numerals NFKC turns into letters.
SERVER_SCRAM_SASLPREP = ("SCRAM-SHA-256$4096:kAau+3OeqkjUZoqQN8f0qA==$CqUd9+7n7UtCMnD1HxDa1/lk24Fwm8t4yE8Xu49zSXM="
                         ":zozbMn2nVEu6GAnVRYa6Uewq4aLFxRFb1UTlO1zUCLM=")
SERVER_MD5_PENCIL_PGL_A = "md5cf4be18ea6a3effd046a035f0f8bd256"  # role pgl_a
PRESENT = {"login": True, "superuser": False, "createdb": False, "createrole": False}


def rfc5802_verifier(password, salt, iterations):
    """SCRAM-SHA-256 verifier written from RFC 5802 section 3 (Hi() as HMAC iterations, not
    hashlib.pbkdf2_hmac), for an ASCII password (SASLprep leaves it as it is)."""
    key = password.encode()
    block = hmac.new(key, salt + b"\x00\x00\x00\x01", hashlib.sha256).digest()
    salted = block
    for _round in range(iterations - 1):
        block = hmac.new(key, block, hashlib.sha256).digest()
        salted = bytes(a ^ b for a, b in zip(salted, block))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    parts = (salt, hashlib.sha256(client_key).digest(), server_key)
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, *(base64.b64encode(p).decode() for p in parts))


# Hashes and SASLprep

def test_scram_verifier_is_rfc5802s():
    assert pl.scram_verifier("pencil", SALT) == rfc5802_verifier("pencil", SALT, 4096)
    assert pl.scram_verifier("s3cret\"pg\"$HOME`id`#1", SALT, 10) == rfc5802_verifier("s3cret\"pg\"$HOME`id`#1", SALT, 10)


def test_new_verifiers_have_a_random_16_byte_salt_and_4096_iterations():
    first, second = pl.scram_verifier("pencil"), pl.scram_verifier("pencil")
    assert first != second
    head = first.split("$")[1]
    assert head.split(":")[0] == "4096" and len(base64.b64decode(head.split(":")[1])) == 16
    assert pl.password_matches(first, "any", "pencil") and pl.password_matches(second, "any", "pencil")


def test_scram_verify_against_the_servers_verifiers():
    assert pl.password_matches(SERVER_SCRAM_PENCIL, "pgl_a", "pencil")
    assert not pl.password_matches(SERVER_SCRAM_PENCIL, "pgl_a", "pencil ")
    assert not pl.password_matches(SERVER_SCRAM_PENCIL, "pgl_a", "Pencil")
    assert pl.password_matches(SERVER_SCRAM_SASLPREP, "pgl_a", "I\u00adX \u2168\u216a")
    # What SASLprep made of it: the same verifier.
    assert pl.password_matches(SERVER_SCRAM_SASLPREP, "pgl_a", "IX IXXI")


def test_scram_verify_against_an_independent_verifier():
    for password in ["pencil", "s3cret\"pg\"$HOME`id`#1:@/?&%", "x" * 100]:
        verifier = rfc5802_verifier(password, os.urandom(16), 4096)
        assert pl.password_matches(verifier, "r", password)
        assert not pl.password_matches(verifier, "r", password + "!")
    # Another iteration count is read from the verifier.
    assert pl.password_matches(rfc5802_verifier("pencil", SALT, 15000), "r", "pencil")


def test_md5_verify():
    assert pl.password_matches(SERVER_MD5_PENCIL_PGL_A, "pgl_a", "pencil")
    assert not pl.password_matches(SERVER_MD5_PENCIL_PGL_A, "pgl_b", "pencil")  # the role name is salt
    assert not pl.password_matches(SERVER_MD5_PENCIL_PGL_A, "pgl_a", "pencil2")
    assert pl.password_matches("md5" + hashlib.md5("p'w\"dr\u00f4le".encode()).hexdigest(), "r\u00f4le", "p'w\"d")


@pytest.mark.parametrize("stored", [None, "", "pencil", "md5", "SCRAM-SHA-256$4096:bad", "SCRAM-SHA-256$x:AA==$AA==:AA==",
                                    "SCRAM-SHA-256$4096:!!$AA==:AA==", "SHA256$whatever"])
def test_null_or_unknown_stored_passwords_differ(stored):
    assert pl.password_matches(stored, "r", "pencil") is False


@pytest.mark.parametrize("raw, prepared", [
    ("pencil", "pencil"),
    ("a\u0007b", "a\u0007b"),  # ASCII stays as it is, control characters too (as in PostgreSQL)
    ("I\u00adX", "IX"),  # mapped to nothing
    ("\u00aa", "a"),  # NFKC
    ("\u2168", "IX"),
    ("a\u00a0b", "a b"),  # a non-ASCII space maps to a space
    ("\u00e9\u0007", "\u00e9\u0007"),  # prohibited: the plain text is used
    ("\u0627\u0031", "\u0627\u0031"),  # RandALCat not at both ends: prohibited
    ("\u0627\u0628", "\u0627\u0628"),
    ("\u00ad", "\u00ad"),  # empty after mapping: prohibited
])
def test_saslprep_as_postgresql(raw, prepared):
    assert pl.saslprep(raw) == prepared


# Quoting

@pytest.mark.parametrize("name, ident", [
    ("postgres-exporter", '"postgres-exporter"'),
    ('we"ird', '"we""ird"'),
    ("with space", '"with space"'),
    ("it's", '"it\'s"'),
    ('""', '""""""'),
])
def test_identifiers(name, ident):
    assert pl.quote_ident(name) == ident


@pytest.mark.parametrize("text, literal", [
    ("plain", "'plain'"),
    ("it's", "'it''s'"),
    ("back\\slash", "'back\\slash'"),  # standard_conforming_strings = on: a backslash is a backslash
    ("''", "''''''"),
])
def test_literals(text, literal):
    assert pl.quote_literal(text) == literal


def test_the_state_query_quotes_the_names_and_sets_standard_strings_first():
    sql = pl.state_sql("o'dd \"name\"", ["pg_monitor", "it's"])
    assert sql.startswith("SET standard_conforming_strings = on;\n")
    assert sql.count("rolname = 'o''dd \"name\"'") == 2
    assert "ARRAY['pg_monitor', 'it''s']::text[]" in sql
    assert "ARRAY[]::text[]" in pl.state_sql("r", [])


# Plans

ABSENT = {"user": "postgres", "role": None, "member_of": [], "missing": []}


def present(password=None, member_of=(), **attributes):
    """psql's answer for an existing role: PRESENT's attributes unless given, its stored password and memberships."""
    return {"user": "postgres", "role": dict(PRESENT, password=password, **attributes), "member_of": list(member_of), "missing": []}


def test_plan_create_with_password_and_grant():
    actions, statements, diff = pl.plan(ABSENT, 'x "y"', "pencil", ["pg_monitor", "pg_read_all_stats"], salt=SALT)
    assert actions == ["create role", "set password", "grant pg_monitor", "grant pg_read_all_stats"]
    assert statements == [
        'CREATE ROLE "x ""y""" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD \'%s\'' % rfc5802_verifier("pencil", SALT, 4096),
        'GRANT "pg_monitor" TO "x ""y"""',
        'GRANT "pg_read_all_stats" TO "x ""y"""',
    ]
    assert diff["before"] == 'role x "y": absent\n'
    assert diff["after"] == ('role x "y"\nattributes: LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE\n'
                             "member of: pg_monitor, pg_read_all_stats\npassword: set\n")


def test_plan_create_without_password():
    actions, statements, _diff = pl.plan(ABSENT, "postgres-exporter")
    assert actions == ["create role", "grant pg_monitor"]
    assert statements == ['CREATE ROLE "postgres-exporter" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE',
                          'GRANT "pg_monitor" TO "postgres-exporter"']


def test_plan_alter_only_what_differs():
    current = present(SERVER_SCRAM_PENCIL, ["pg_monitor"], login=False, superuser=True)
    actions, statements, diff = pl.plan(current, "pgl_a", "pencil")
    assert actions == ["set LOGIN", "set NOSUPERUSER"]
    assert statements == ['ALTER ROLE "pgl_a" LOGIN NOSUPERUSER']
    assert "attributes: NOLOGIN SUPERUSER NOCREATEDB NOCREATEROLE\n" in diff["before"]
    assert "password: unchanged\n" in diff["before"] and "password: unchanged\n" in diff["after"]


def test_plan_new_password_and_missing_grant_keep_other_memberships():
    actions, statements, diff = pl.plan(present(SERVER_SCRAM_PENCIL, ["app_readers"]), "pgl_a", "changed", salt=SALT)
    assert actions == ["set password", "grant pg_monitor"]
    assert statements == ["ALTER ROLE \"pgl_a\" PASSWORD '%s'" % rfc5802_verifier("changed", SALT, 4096),
                          'GRANT "pg_monitor" TO "pgl_a"']
    assert "member of: app_readers\npassword: different\n" in diff["before"]
    assert "member of: app_readers, pg_monitor\npassword: set\n" in diff["after"]
    assert "changed" not in diff["before"] + diff["after"] and "SCRAM" not in diff["before"] + diff["after"]


def test_plan_null_password_is_set_and_md5_is_replaced_by_scram():
    actions, statements, _diff = pl.plan(present(None, ["pg_monitor"]), "pgl_a", "pencil")
    assert actions == ["set password"]
    assert "PASSWORD 'SCRAM-SHA-256$4096:" in statements[0]
    assert pl.plan(present(SERVER_MD5_PENCIL_PGL_A, ["pg_monitor"]), "pgl_a", "pencil")[0] == []
    assert pl.plan(present(SERVER_MD5_PENCIL_PGL_A, ["pg_monitor"]), "pgl_a", "other")[0] == ["set password"]


def test_plan_nothing():
    assert pl.plan(present(SERVER_SCRAM_PENCIL, ["pg_monitor"]), "pgl_a", "pencil")[:2] == ([], [])
    # An empty password is not managed: any stored one (or none) is fine.
    actions, statements, diff = pl.plan(present(None, ["pg_monitor", "other"]), "pgl_a", "")
    assert (actions, statements) == ([], [])
    assert diff["before"] == diff["after"]


def test_the_change_runs_in_one_transaction():
    assert pl.change_sql(["A", "B"]) == "SET standard_conforming_strings = on;\nBEGIN;\nA;\nB;\nCOMMIT;\n"


# The module, run as Ansible runs it, against a fake psql

FAKE_PSQL = r'''#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "psql.json")) as handle:
    config = json.load(handle)
stdin = sys.stdin.read()
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin,
                           "env": {{k: os.environ.get(k) for k in ("LC_ALL", "PGCLIENTENCODING")}}}}) + "\n")
answer = config["read" if "json_build_object" in stdin else "change"]
if "stdout" in answer:
    sys.stdout.write(answer["stdout"])
sys.stderr.write(answer.get("stderr", ""))
if answer.get("echo"):  # a psql that quotes the statements back in its error
    sys.stderr.write(stdin)
sys.exit(answer.get("rc", 0))
'''


@pytest.fixture
def psql(tmp_path):
    """Install a fake psql; returns a function that sets its answers, and one that reads its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "psql").write_text(FAKE_PSQL.format(python=sys.executable))
    (bin_dir / "psql").chmod(0o755)

    def answer(current=None, read=None, change=None):
        read = read or {"stdout": "\n" + json.dumps(current if current is not None else ABSENT) + "\n"}
        (bin_dir / "psql.json").write_text(json.dumps({"read": read, "change": change or {}}))

    def calls():
        log = bin_dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    answer.calls = calls
    answer.bin = bin_dir
    return answer


def run(tmp_path, psql_fake, check=False, diff=False, path=None, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": check, "_ansible_diff": diff, **args}}))
    env = {**os.environ, "PATH": path if path is not None else f"{psql_fake.bin}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def test_creates_a_role_in_one_transaction_with_a_verifier_not_the_password(tmp_path, psql):
    psql(ABSENT)
    result = run(tmp_path, psql, diff=True, name="o'dd \"name\"", password="pencil-Secret-1", host="/var/run/postgresql", port=5433)
    assert result["changed"] is True and result["actions"] == ["create role", "set password", "grant pg_monitor"]
    read, change = psql.calls()
    command = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "dbname='postgres' port='5433' host='/var/run/postgresql'"]
    assert read["argv"] == change["argv"] == command
    assert read["env"] == {"LC_ALL": "C", "PGCLIENTENCODING": "UTF8"}
    assert "WHERE rolname = 'o''dd \"name\"'" in read["stdin"]
    lines = change["stdin"].rstrip("\n").splitlines()
    assert lines[:2] == ["SET standard_conforming_strings = on;", "BEGIN;"] and lines[-1] == "COMMIT;"
    assert lines[2].startswith('CREATE ROLE "o\'dd ""name""" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD \'SCRAM-SHA-256$4096:')
    assert lines[3] == 'GRANT "pg_monitor" TO "o\'dd ""name""";'
    verifier = lines[2].split("PASSWORD '")[1].rstrip("';")
    assert pl.password_matches(verifier, "o'dd \"name\"", "pencil-Secret-1")
    # The plain text is in no call and nowhere in the result.
    assert "pencil-Secret-1" not in json.dumps(psql.calls())
    assert "pencil-Secret-1" not in json.dumps(result) and "SCRAM" not in json.dumps(result)
    assert result["diff"]["after"].endswith("password: set\n")


def test_converged_role_is_one_read_and_no_change(tmp_path, psql):
    psql(present(rfc5802_verifier("pencil", SALT, 4096), ["pg_monitor", "other"]))
    result = run(tmp_path, psql, diff=True, name="metrics", password="pencil")
    assert result["changed"] is False and result["actions"] == [] and "diff" not in result
    assert len(psql.calls()) == 1
    assert "-d" in psql.calls()[0]["argv"] and "host=" not in " ".join(psql.calls()[0]["argv"])


def test_grant_only(tmp_path, psql):
    psql(present(None, ["other"]))
    result = run(tmp_path, psql, name="metrics", member_of=["pg_monitor", "pg_read_all_stats", "other"])
    assert result["actions"] == ["grant pg_monitor", "grant pg_read_all_stats"]
    assert psql.calls()[1]["stdin"] == ('SET standard_conforming_strings = on;\nBEGIN;\nGRANT "pg_monitor" TO "metrics";\n'
                                        'GRANT "pg_read_all_stats" TO "metrics";\nCOMMIT;\n\n')


def test_check_mode_reads_and_reports_without_changing(tmp_path, psql):
    psql(present(SERVER_SCRAM_PENCIL, [], superuser=True, createrole=True))
    result = run(tmp_path, psql, check=True, diff=True, name="pgl_a", password="other")
    assert result["changed"] is True
    assert result["actions"] == ["set NOSUPERUSER", "set NOCREATEROLE", "set password", "grant pg_monitor"]
    assert len(psql.calls()) == 1 and "json_build_object" in psql.calls()[0]["stdin"]
    assert "attributes: LOGIN SUPERUSER NOCREATEDB CREATEROLE\nmember of: (none)\npassword: different\n" in result["diff"]["before"]


def test_check_mode_without_a_server_takes_the_role_as_absent_and_warns(tmp_path, psql):
    refused = {"rc": 2, "stderr": 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
                                  "No such file or directory\n\tIs the server running locally and accepting connections on that socket?\n"}
    psql(read=refused)
    result = run(tmp_path, psql, check=True, name="metrics")
    assert result["changed"] is True and result["actions"] == ["create role", "grant pg_monitor"]
    assert "Is the server running locally" in json.dumps(result["warnings"])
    failed = run(tmp_path, psql, name="metrics")
    assert failed["failed"] is True and "cannot read role metrics" in failed["msg"] and "No such file" in failed["msg"]
    assert all("json_build_object" in call["stdin"] for call in psql.calls())


def test_no_psql_on_the_host(tmp_path, psql):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(tmp_path, psql, check=True, path=str(empty), name="metrics")
    assert result["changed"] is True and "psql not found" in json.dumps(result["warnings"])
    result = run(tmp_path, psql, path=str(empty), name="metrics")
    assert result["failed"] is True and "psql not found" in result["msg"]


def test_psql_errors_are_shown_without_the_verifier(tmp_path, psql):
    psql(change={"rc": 3, "stderr": "ERROR:  role \"metrics\" already exists\n"})
    result = run(tmp_path, psql, name="metrics", password="pencil-Secret-1")
    assert result["failed"] is True
    assert result["msg"] == ('psql failed (rc 3) changing role metrics (create role, set password, grant pg_monitor): '
                             'ERROR:  role "metrics" already exists')
    # A psql that quotes the statements back: the verifier, and each part of it, is blanked out.
    psql(change={"rc": 3, "stderr": "ERROR:  syntax error\n", "echo": True})
    msg = run(tmp_path, psql, name="metrics", password="pencil-Secret-1")["msg"]
    verifier = psql.calls()[-1]["stdin"].split("PASSWORD '")[1].split("'")[0]
    assert 'CREATE ROLE "metrics"' in msg and "PASSWORD '(verifier, not shown)'" in msg
    assert "pencil-Secret-1" not in msg and "SCRAM-SHA-256$" not in msg
    assert not any(part in msg for part in verifier.replace("$", ":").split(":")[2:])


def test_read_errors_fail_with_psqls_message(tmp_path, psql):
    psql(read={"rc": 2, "stderr": 'psql: error: connection to server on socket "/x/.s.PGSQL.5432" failed: '
                                  'FATAL:  Peer authentication failed for user "root"\n'})
    result = run(tmp_path, psql, check=True, name="metrics")
    assert result["failed"] is True and "Peer authentication failed" in result["msg"]
    psql(read={"stdout": "not json\n"})
    assert "not the role's state" in run(tmp_path, psql, name="metrics")["msg"]


def test_refuses_missing_groups_itself_and_the_connecting_role(tmp_path, psql):
    psql(dict(ABSENT, missing=["pg_monitr"]))
    assert run(tmp_path, psql, check=True, name="metrics", member_of=["pg_monitr"])["msg"] == "member_of: no role pg_monitr in the server"
    psql(present(None, [], superuser=True))
    result = run(tmp_path, psql, name="postgres")
    assert result["failed"] is True and "refusing" in result["msg"] and len(psql.calls()) == 2
    assert "member of itself" in run(tmp_path, psql, name="a", member_of=["a"])["msg"]
    assert "not a role name" in run(tmp_path, psql, name="x" * 64)["msg"]
    assert "not a role name" in run(tmp_path, psql, name="")["msg"]


def test_the_password_is_no_log(tmp_path, psql):
    psql(present(rfc5802_verifier("pencil-Secret-1", SALT, 4096), ["pg_monitor"]))
    result = run(tmp_path, psql, name="metrics", password="pencil-Secret-1")
    assert result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
