#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
# pylint: disable=disallowed-name  # `_` names the values this module discards (no gettext here)
"""A PostgreSQL login role and its memberships through psql: no psycopg2 on the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_login
short_description: A least-privilege PostgreSQL login role and its memberships, through psql
description:
  - Makes sure a role exists as V(LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE), is a member of
    every role in O(member_of) and, when O(password) is set, has that password. Other
    memberships and attributes are left as they are.
  - Runs C(psql) on the host, which every PostgreSQL server installation has, instead of a
    Python driver; run it as the server's OS superuser (C(become_user=postgres)) to log in over
    the local socket with peer authentication. SQL reaches C(psql) on its standard input only.
  - One C(psql) call reads the role's attributes, stored password and memberships; a second one,
    only when something differs and not in check mode, changes it in one transaction.
  - The stored password is compared with O(password) without sending it anywhere. A
    SCRAM-SHA-256 verifier is recomputed from O(password) with the verifier's salt and
    iteration count (RFC 5802, RFC 7677), an md5 hash from O(password) and O(name). A new
    password is sent as a SCRAM-SHA-256 verifier computed by the module (random salt, 4096
    iterations), so the plain text never reaches the server or its statement log.
  - Supports check mode and diff mode. The diff shows the attributes and memberships, and of
    the password only whether it is set.
version_added: 0.1.0
author: arq.monitoring developers (@arq-platform)
options:
  name:
    description: Name of the login role (at most 63 bytes).
    type: str
    required: true
  password:
    description:
      - Password of the role. Empty means the role's password is not managed (peer
        authentication needs none).
      - Prepared with SASLprep as PostgreSQL does, so a verifier the module writes is the one the
        server would have computed from the same plain text.
    type: str
    default: ""
  member_of:
    description: Roles the login role must be a member of; they must exist. Other memberships are kept.
    type: list
    elements: str
    default: [pg_monitor]
  host:
    description: Directory of the server's Unix socket, or a host name; omitted means the default of C(psql).
    type: str
  port:
    description: Port of the server (the socket's name, C(.s.PGSQL.<port>), over a Unix socket).
    type: int
    default: 5432
  database:
    description: Database C(psql) connects to (roles are server-wide; any database will do).
    type: str
    default: postgres
notes:
  - Runs C(psql -X), so no C(.psqlrc) is read; C(psql) logs in as the OS user the module runs as
    unless the environment says otherwise.
  - In check mode a server that cannot be reached (C(psql) missing, no socket, connection
    refused) does not fail the task; the role is taken as absent, with a warning. A real run fails.
  - Refuses to manage the role C(psql) is logged in as, which would strip its superuser attribute.
"""

EXAMPLES = r"""
- name: The exporter's login role, peer-authenticated over the local socket
  become: true
  become_user: postgres
  arq.monitoring.postgres_login:
    name: postgres-exporter
    host: /var/run/postgresql

- name: A role with a password, for connections over TCP
  become: true
  become_user: postgres
  arq.monitoring.postgres_login:
    name: metrics
    password: "{{ vault_metrics_password }}"
    member_of: [pg_monitor, pg_read_all_stats]
"""

RETURN = r"""
role:
  description: O(name).
  returned: always
  type: str
  sample: postgres-exporter
actions:
  description: What differed and was changed (or would be, in check mode), in order; empty when nothing differed.
  returned: always
  type: list
  elements: str
  sample: [create role, set password, grant pg_monitor]
"""

import base64
import hashlib
import hmac
import json
import os
import re
import stringprep
import unicodedata

from ansible.module_utils.basic import AnsibleModule

SCRAM_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16
NAMEDATALEN = 63  # longer names are cut short by PostgreSQL
# Key in the state query's answer, wanted value, the keyword for True, the keyword for False.
ATTRIBUTES = (
    ("login", True, "LOGIN", "NOLOGIN"),
    ("superuser", False, "SUPERUSER", "NOSUPERUSER"),
    ("createdb", False, "CREATEDB", "NOCREATEDB"),
    ("createrole", False, "CREATEROLE", "NOCREATEROLE"),
)
WANTED = " ".join(on if want else off for _, want, on, off in ATTRIBUTES)
# psql's stderr when it found no server to talk to (the messages are libpq's, in the C locale).
UNREACHABLE = ("Is the server running", "No such file or directory", "Connection refused")


def quote_ident(name):
    """An SQL identifier: in double quotes, each double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    """A string literal for standard_conforming_strings = on: in single quotes, each one doubled."""
    return "'" + text.replace("'", "''") + "'"


def _prohibited(char):
    return (stringprep.in_table_c12(char) or stringprep.in_table_c21_c22(char) or stringprep.in_table_c3(char)
            or stringprep.in_table_c4(char) or stringprep.in_table_c5(char) or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char) or stringprep.in_table_c8(char) or stringprep.in_table_c9(char)
            or stringprep.in_table_a1(char))


def saslprep(password):
    """The password as PostgreSQL hashes it (pg_saslprep, RFC 4013): ASCII as it is; otherwise
    mapped and NFKC-normalized, or as it is where SASLprep prohibits the result (the server and
    libpq then fall back to the plain text too)."""
    if password.isascii():
        return password
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    if not mapped:
        return password
    prepared = unicodedata.normalize("NFKC", mapped)
    if any(_prohibited(c) for c in prepared):
        return password
    if any(stringprep.in_table_d1(c) for c in prepared):
        if (any(stringprep.in_table_d2(c) for c in prepared)
                or not stringprep.in_table_d1(prepared[0]) or not stringprep.in_table_d1(prepared[-1])):
            return password
    return prepared


def scram_keys(password, salt, iterations):
    """StoredKey and ServerKey of RFC 5802 for the password (SASLprep applied)."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def scram_verifier(password, salt=None, iterations=SCRAM_ITERATIONS):
    """PostgreSQL's SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, all base64."""
    salt = os.urandom(SCRAM_SALT_BYTES) if salt is None else salt
    stored_key, server_key = scram_keys(password, salt, iterations)
    b64 = [base64.b64encode(part).decode() for part in (salt, stored_key, server_key)]
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, *b64)


def password_matches(stored, name, password):
    """Whether PostgreSQL's stored rolpassword is the hash of the password (False for NULL or
    a format it does not know)."""
    if not stored:
        return False
    if stored.startswith("md5") and len(stored) == 35:
        expected = "md5" + hashlib.md5((password + name).encode()).hexdigest()
        return hmac.compare_digest(stored.encode(), expected.encode())
    if stored.startswith("SCRAM-SHA-256$"):
        try:
            head, keys = stored[len("SCRAM-SHA-256$"):].split("$")
            iterations, salt = head.split(":")
            stored_key, server_key = (base64.b64decode(k, validate=True) for k in keys.split(":"))
            computed = scram_keys(password, base64.b64decode(salt, validate=True), int(iterations))
        except ValueError:  # binascii.Error is a ValueError
            return False
        return hmac.compare_digest(computed[0], stored_key) and hmac.compare_digest(computed[1], server_key)
    return False


def _text_array(names):
    return "ARRAY[%s]::text[]" % ", ".join(quote_literal(n) for n in names)


def state_sql(name, member_of):
    """One query for everything the plan needs, answered as one line of JSON."""
    role = quote_literal(name)
    return f"""SET standard_conforming_strings = on;
SELECT json_build_object(
  'user', current_user,
  'role', (SELECT json_build_object('login', rolcanlogin, 'superuser', rolsuper, 'createdb', rolcreatedb,
                                    'createrole', rolcreaterole, 'password', rolpassword)
           FROM pg_catalog.pg_authid WHERE rolname = {role}),
  'member_of', ARRAY(SELECT DISTINCT g.rolname::text FROM pg_catalog.pg_auth_members m
                     JOIN pg_catalog.pg_authid g ON g.oid = m.roleid
                     JOIN pg_catalog.pg_authid r ON r.oid = m.member
                     WHERE r.rolname = {role} ORDER BY 1),
  'missing', ARRAY(SELECT w FROM unnest({_text_array(member_of)}) AS w
                   WHERE w NOT IN (SELECT rolname::text FROM pg_catalog.pg_authid)));
"""


def change_sql(statements):
    """The statements in one transaction (psql's ON_ERROR_STOP ends the session, rolling it back)."""
    return "SET standard_conforming_strings = on;\nBEGIN;\n" + "".join(s + ";\n" for s in statements) + "COMMIT;\n"


def _describe(name, role, members, password):
    if role is None:
        return f"role {name}: absent\n"
    attributes = " ".join(on if role[key] else off for key, _, on, off in ATTRIBUTES)
    return (f"role {name}\nattributes: {attributes}\nmember of: {', '.join(sorted(members)) or '(none)'}\n"
            f"password: {password}\n")


def plan(state, name, password="", member_of=("pg_monitor",), salt=None):
    """(actions, statements, diff) that bring the role from `state` (state_sql's answer) to the
    wanted one; a password to set is sent as a verifier made with `salt` (random if None)."""
    role, current = state["role"], state["member_of"] if state["role"] else []
    ident = quote_ident(name)
    actions, statements = [], []
    set_password = bool(password) and not (role and password_matches(role["password"], name, password))
    password_clause = ["PASSWORD " + quote_literal(scram_verifier(password, salt))] if set_password else []
    if role is None:
        actions.append("create role")
        statements.append(" ".join([f"CREATE ROLE {ident} {WANTED}"] + password_clause))
    else:
        keywords = [on if want else off for key, want, on, off in ATTRIBUTES if role[key] != want]
        actions += ["set " + k for k in keywords]
        if keywords or set_password:
            statements.append(" ".join([f"ALTER ROLE {ident}"] + keywords + password_clause))
    if set_password:
        actions.append("set password")
    wanted = list(dict.fromkeys(member_of))
    for group in wanted:
        if group not in current:
            actions.append("grant " + group)
            statements.append(f"GRANT {quote_ident(group)} TO {ident}")
    if not password:
        before_password = after_password = "not managed"
    elif set_password:
        before_password, after_password = ("none" if role is None or not role["password"] else "different"), "set"
    else:
        before_password = after_password = "unchanged"
    after_role = {key: want for key, want, _, _ in ATTRIBUTES}
    diff = {"before_header": f"role {name}", "after_header": f"role {name}",
            "before": _describe(name, role, current, before_password),
            "after": _describe(name, after_role, set(current) | set(wanted), after_password)}
    return actions, statements, diff


def _redact(text, sql):
    """psql's error without the new verifier (a statement it quotes back may hold it; it never
    holds the password): the verifier and each of its base64 parts, wherever they appear."""
    for verifier in re.findall(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", sql):
        text = text.replace(verifier, "(verifier, not shown)")
        for part in re.split(r"[$:]", verifier)[2:]:
            text = text.replace(part, "(not shown)")
    return text


def _check_name(module, option, value):
    if not value or "\0" in value or len(value.encode()) > NAMEDATALEN:
        module.fail_json(msg=f"{option}: {value!r} is not a role name (1 to {NAMEDATALEN} bytes, no NUL)")


def _conninfo(params):
    """psql's -d argument as a connection string, so no value is read as an option or a URI."""
    def value(text):
        return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"
    pairs = [("dbname", params["database"]), ("port", params["port"])]
    if params["host"]:
        pairs.append(("host", params["host"]))
    return " ".join(f"{key}={value(text)}" for key, text in pairs)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "password": {"type": "str", "default": "", "no_log": True},
            "member_of": {"type": "list", "elements": "str", "default": ["pg_monitor"]},
            "host": {"type": "str"},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str", "default": "postgres"},
        },
        supports_check_mode=True,
    )
    params = module.params
    name, password, member_of = params["name"], params["password"], params["member_of"]
    _check_name(module, "name", name)
    for group in member_of:
        _check_name(module, "member_of", group)
    if name in member_of:
        module.fail_json(msg=f"member_of: {name} cannot be a member of itself")
    if "\0" in password:
        module.fail_json(msg="password: must not contain a NUL character")

    result = {"changed": False, "role": name, "actions": []}
    psql = module.get_bin_path("psql")
    command = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", _conninfo(params)]
    # libpq's messages in English (they are matched below); the SQL's own text as UTF-8.
    environ = {"LC_ALL": "C", "PGCLIENTENCODING": "UTF8"}

    def unreachable(why):
        """Check mode on a host whose server is not up (yet): the role is taken as absent."""
        if not module.check_mode:
            module.fail_json(msg=f"cannot read role {name}: {why}", **result)
        module.warn(f"cannot read role {name} ({why}); check mode takes it as absent, a real run fails "
                    "unless PostgreSQL is running by then")
        return {"user": None, "role": None, "member_of": [], "missing": []}

    if psql is None:
        state = unreachable("psql not found (PostgreSQL is not installed)")
    else:
        rc, out, err = module.run_command(command, data=state_sql(name, member_of), environ_update=environ)
        if rc == 2 and any(marker in err for marker in UNREACHABLE):
            state = unreachable(" ".join(err.split()))
        elif rc != 0:
            module.fail_json(msg=f"psql failed (rc {rc}) reading role {name}: {err.strip()}", **result)
        else:
            lines = [line for line in out.splitlines() if line.strip()]
            try:
                state = json.loads(lines[-1])
            except (IndexError, ValueError):
                module.fail_json(msg=f"psql answered what is not the role's state (rc 0, {len(out)} characters)", **result)
    if state["user"] == name:
        module.fail_json(msg=f"{name} is the role psql is logged in as; refusing to take its superuser attribute away", **result)
    if state["missing"]:
        module.fail_json(msg=f"member_of: no role {', '.join(state['missing'])} in the server", **result)

    actions, statements, diff = plan(state, name, password, member_of)
    result.update(changed=bool(actions), actions=actions)
    if module._diff and actions:
        result["diff"] = diff
    if statements and not module.check_mode:
        sql = change_sql(statements)
        rc, out, err = module.run_command(command, data=sql, environ_update=environ)
        if rc != 0:
            module.fail_json(msg=f"psql failed (rc {rc}) changing role {name} ({', '.join(actions)}): {_redact(err.strip(), sql)}",
                             **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
