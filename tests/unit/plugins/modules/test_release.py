"""arq.monitoring.release, host half: accounts, binaries by SHA-1, release trees.

The module is imported rather than run in a subprocess, so that BIN_DIR points into tmp_path and
no real account is ever created or changed: pwd, grp and run_command are fakes that record the
commands the module issues.
"""

import io
import json
import os
import stat
import tarfile
from types import SimpleNamespace

import pytest
from ansible.module_utils import basic
from ansible_collections.arq.monitoring.plugins.plugin_utils.releases import sha1 as _sha1
from ansible_collections.arq.monitoring.plugins.modules import release

NOLOGIN = ("/nonexistent", "/usr/sbin/nologin")
USERADD = ["useradd", "--system", "--no-create-home", "--gid", "svc", "--home", "/nonexistent",
           "--shell", "/usr/sbin/nologin", "svc"]
USERMOD = ["usermod", "--gid", "svc", "--home", "/nonexistent", "--shell", "/usr/sbin/nologin", "svc"]
TOP = "svc-1.2.3.linux-amd64"


class Failed(Exception):
    pass


class Accounts:
    """Fake pwd and grp databases; groupadd, useradd and usermod act on them as the real ones would."""

    def __init__(self, groups=None, users=None):
        self.groups = dict(groups or {})  # name => gid
        self.users = dict(users or {})  # name => (gid, home, shell)
        self.commands = []
        self.pwd = SimpleNamespace(getpwnam=self.getpwnam)
        self.grp = SimpleNamespace(getgrnam=self.getgrnam)

    def getgrnam(self, name):
        return SimpleNamespace(gr_name=name, gr_gid=self.groups[name])

    def getpwnam(self, name):
        gid, home, shell = self.users[name]
        return SimpleNamespace(pw_name=name, pw_gid=gid, pw_dir=home, pw_shell=shell)

    def run(self, args, check_rc=False, **_):
        assert check_rc is True, f"{args} must fail the task when it fails"
        self.commands.append(list(args))
        options = dict(zip(args[1:-1:2], args[2:-1:2])) if args[0] != "groupadd" else {}
        if args[0] == "groupadd":
            self.groups[args[-1]] = 990 + len(self.groups)
        elif args[0] in ("useradd", "usermod"):
            self.users[args[-1]] = (self.groups[options["--gid"]], options["--home"], options["--shell"])
        return 0, "", ""


class FakeModule:
    def __init__(self, accounts=None, check_mode=False):
        self.check_mode = check_mode
        self.run_command = accounts.run if accounts else self.no_command

    @staticmethod
    def no_command(args, **_):
        raise AssertionError(f"no command expected, ran {args}")

    @staticmethod
    def fail_json(msg, **_):
        raise Failed(msg)


def use(monkeypatch, accounts):
    monkeypatch.setattr(release, "pwd", accounts.pwd)
    monkeypatch.setattr(release, "grp", accounts.grp)
    return accounts


@pytest.mark.parametrize("check", [False, True])
def test_a_missing_group_and_user_are_created_as_a_system_account(monkeypatch, check):
    accounts = use(monkeypatch, Accounts())
    assert release._accounts(FakeModule(accounts, check), "svc", "svc") == ["group:svc", "user:svc"]
    assert accounts.commands == ([] if check else [["groupadd", "--system", "svc"], USERADD])


@pytest.mark.parametrize("check", [False, True])
def test_a_missing_user_of_an_existing_group_is_created(monkeypatch, check):
    accounts = use(monkeypatch, Accounts(groups={"svc": 990}))
    assert release._accounts(FakeModule(accounts, check), "svc", "svc") == ["user:svc"]
    assert accounts.commands == ([] if check else [USERADD])


def test_an_account_as_wanted_is_left_alone(monkeypatch):
    accounts = use(monkeypatch, Accounts(groups={"svc": 990}, users={"svc": (990, *NOLOGIN)}))
    assert release._accounts(FakeModule(), "svc", "svc") == []
    assert release._accounts(FakeModule(check_mode=True), "svc", "svc") == []
    assert accounts.commands == []


@pytest.mark.parametrize("check", [False, True])
@pytest.mark.parametrize("user", [(991, *NOLOGIN), (990, "/home/svc", "/usr/sbin/nologin"),
                                  (990, "/nonexistent", "/bin/bash"), (0, "/root", "/bin/sh")],
                         ids=["gid", "home", "shell", "all"])
def test_an_account_that_differs_is_fixed_with_usermod(monkeypatch, check, user):
    accounts = use(monkeypatch, Accounts(groups={"svc": 990, "other": 991}, users={"svc": user}))
    assert release._accounts(FakeModule(accounts, check), "svc", "svc") == ["user:svc"]
    assert accounts.commands == ([] if check else [USERMOD])
    if not check:
        assert accounts.users["svc"] == (990, *NOLOGIN)
        assert release._accounts(FakeModule(), "svc", "svc") == []


def test_a_new_group_moves_an_existing_user_into_it(monkeypatch):
    accounts = use(monkeypatch, Accounts(groups={"users": 100}, users={"svc": (100, *NOLOGIN)}))
    assert release._accounts(FakeModule(accounts), "svc", "svc") == ["group:svc", "user:svc"]
    assert accounts.commands == [["groupadd", "--system", "svc"], USERMOD]


# _install_binary


def test_a_binary_is_installed_root_owned_0755_through_a_new_inode(tmp_path):
    src, bin_dir = tmp_path / "src", tmp_path / "bin"
    bin_dir.mkdir()
    os.chown(bin_dir, 0, 1000)
    bin_dir.chmod(0o2755)  # setgid: a new file would take the directory's group, not root
    src.write_bytes(b"new\n")
    os.chown(src, 1000, 1000)
    src.chmod(0o600)
    dest = bin_dir / "svc"
    dest.write_bytes(b"old\n")
    os.link(dest, tmp_path / "running")  # a running program keeps its inode
    release._install_binary(FakeModule(), str(src), str(dest))
    assert dest.read_bytes() == b"new\n" and (tmp_path / "running").read_bytes() == b"old\n"
    info = os.stat(dest)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o755)
    assert os.listdir(bin_dir) == ["svc"]


def test_a_failed_install_leaves_no_temporary_file(tmp_path):
    with pytest.raises(OSError):
        release._install_binary(FakeModule(), str(tmp_path / "missing"), str(tmp_path / "svc"))
    assert os.listdir(tmp_path) == []


# _unpack_tree


def tree_archive(path, members):
    """name => bytes (a file, mode 0777), None (a directory, mode 0777) or str (a symlink's target), owned by 1000."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 1000
            info.mode = 0o777
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return str(path)


TREE = {TOP: None, TOP + "/bin": None, TOP + "/bin/svc": b"#!/bin/sh\n", TOP + "/conf": None,
        TOP + "/conf/defaults.ini": b"[server]\n", TOP + "/bin/svc-link": "svc"}


@pytest.fixture(params=["data filter", "no extraction filters"])
def filters(request, monkeypatch):
    """Both ways of unpacking: Python's data filter, or the module's own checks without it."""
    if request.param == "no extraction filters":
        monkeypatch.delattr(tarfile, "data_filter")
    return request.param


def test_a_tree_is_unpacked_root_owned_without_group_or_other_write(tmp_path, filters):
    archive, directory = tree_archive(tmp_path / "svc.tar.gz", TREE), tmp_path / "opt"
    release._unpack_tree(FakeModule(), archive, str(directory), TOP)
    assert os.listdir(directory) == [TOP]  # the temporary .unpack.* directory is gone
    top = directory / TOP
    assert (top / "bin/svc").read_bytes() == b"#!/bin/sh\n" and os.readlink(top / "bin/svc-link") == "svc"
    paths = [top] + list(top.rglob("*"))
    assert len(paths) == len(TREE)
    for path in paths:
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid) == (0, 0), path
        if not path.is_symlink():
            assert stat.S_IMODE(info.st_mode) & 0o022 == 0, path
    assert os.access(top / "bin/svc", os.X_OK)


def test_an_archive_without_the_top_directory_fails_and_leaves_nothing(tmp_path, filters):
    archive, directory = tree_archive(tmp_path / "svc.tar.gz", TREE), tmp_path / "opt"
    with pytest.raises(Failed, match="^the release archive has no top directory svc-9.9.9$"):
        release._unpack_tree(FakeModule(), archive, str(directory), "svc-9.9.9")
    assert os.listdir(directory) == []


@pytest.mark.parametrize("evil", ["../evil", TOP + "/../../evil"])
def test_a_member_escaping_the_directory_is_refused(tmp_path, filters, evil):
    archive, directory = tree_archive(tmp_path / "svc.tar.gz", {**TREE, evil: b"pwned\n"}), tmp_path / "opt"
    with pytest.raises((Failed, tarfile.TarError)) as failure:
        release._unpack_tree(FakeModule(), archive, str(directory), TOP)
    if filters == "no extraction filters":
        assert str(failure.value) == f"{archive}: unsafe member {evil}"
    assert not list(tmp_path.rglob("*evil*")) and os.listdir(directory) == []


# main(), as Ansible runs it, with BIN_DIR in tmp_path


@pytest.fixture
def host(tmp_path, monkeypatch):
    """BIN_DIR in tmp_path, the account as wanted, run_command recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setattr(release, "BIN_DIR", str(bin_dir))
    accounts = use(monkeypatch, Accounts(groups={"svc": 990}, users={"svc": (990, *NOLOGIN)}))
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: accounts.run(args, **kw))
    return SimpleNamespace(bin=bin_dir, accounts=accounts)


@pytest.fixture
def run(monkeypatch, capsys):
    def run(check=False, diff=False, **args):
        args = {"name": "svc", "user": "svc", "group": "svc", **args, "_ansible_check_mode": check,
                "_ansible_diff": diff}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        with pytest.raises(SystemExit):
            release.main()
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return run


@pytest.fixture
def built(tmp_path):
    """The controller's unpacked binaries and their SHA-1 as the action part computes them."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("svc", "svctool"):
        (cache / name).write_bytes(f"#!/bin/sh\necho {name}\n".encode())
    sources = {name: str(cache / name) for name in ("svc", "svctool")}
    return SimpleNamespace(sources=sources, checksums={name: _sha1(path) for name, path in sources.items()})


BINARIES = {"url": "file:///unused", "basename": "svc-1.2.3", "binaries": ["svc", "svctool"]}


def test_missing_binaries_are_reported_outdated_and_installed_from_their_sources(host, run, built):
    first = run(**BINARIES, checksums=built.checksums)  # the action's first call: nothing transferred yet
    assert first["changed"] is True and first["outdated"] == ["svc", "svctool"] and first["service"] == "svc"
    assert first["changed_paths"] == [str(host.bin / "svc"), str(host.bin / "svctool")]
    assert first["tree_missing"] is False and os.listdir(host.bin) == []
    second = run(**BINARIES, checksums=built.checksums, sources=built.sources)
    assert second["outdated"] == ["svc", "svctool"] and second["changed_paths"] == first["changed_paths"]
    assert (host.bin / "svctool").read_bytes() == b"#!/bin/sh\necho svctool\n"
    assert stat.S_IMODE(os.stat(host.bin / "svc").st_mode) == 0o755
    again = run(**BINARIES, checksums=built.checksums)
    assert again["changed"] is False and again["outdated"] == [] and again["changed_paths"] == []
    assert host.accounts.commands == []


def test_only_the_binary_whose_sha1_differs_is_outdated(host, run, built):
    run(**BINARIES, checksums=built.checksums, sources=built.sources)
    (host.bin / "svctool").write_bytes(b"tampered\n")
    result = run(**BINARIES, checksums=built.checksums)
    assert result["outdated"] == ["svctool"] and result["changed_paths"] == [str(host.bin / "svctool")]
    run(**BINARIES, checksums=built.checksums, sources={"svctool": built.sources["svctool"]})
    assert (host.bin / "svctool").read_bytes() == b"#!/bin/sh\necho svctool\n"


def test_check_mode_reports_binaries_and_accounts_without_changing_them(host, run, built):
    del host.accounts.users["svc"]
    result = run(check=True, **BINARIES, checksums=built.checksums, sources=built.sources)
    assert result["changed"] is True and result["outdated"] == ["svc", "svctool"]
    assert result["changed_paths"] == ["user:svc", str(host.bin / "svc"), str(host.bin / "svctool")]
    assert os.listdir(host.bin) == [] and host.accounts.commands == []


def test_accounts_are_managed_with_no_release(host, run):
    del host.accounts.users["svc"]
    result = run()
    assert result["changed"] is True and result["changed_paths"] == ["user:svc"]
    assert result["outdated"] == [] and result["tree_missing"] is False
    assert host.accounts.commands == [USERADD]
    assert run()["changed"] is False


def test_a_missing_tree_is_reported_then_unpacked_once(tmp_path, host, run):
    archive = tree_archive(tmp_path / "svc.tar.gz", TREE)
    tree = {"dir": str(tmp_path / "opt"), "top": TOP}
    missing = run(tree=tree)
    assert missing["tree_missing"] is True and missing["changed_paths"] == [str(tmp_path / "opt" / TOP)]
    assert run(check=True, tree=tree, tree_source=archive)["tree_missing"] is True
    assert not (tmp_path / "opt" / TOP).exists()
    assert run(tree=tree, tree_source=archive)["tree_missing"] is True
    assert (tmp_path / "opt" / TOP / "conf/defaults.ini").read_bytes() == b"[server]\n"
    again = run(tree=tree)
    assert again["tree_missing"] is False and again["changed"] is False


def test_the_diff_names_what_changes(host, run, built):
    result = run(diff=True, **BINARIES, checksums=built.checksums)
    assert result["diff"] == {"before": "", "after": f"{host.bin / 'svc'}\n{host.bin / 'svctool'}\n",
                              "after_header": "svc release"}
    run(**BINARIES, checksums=built.checksums, sources=built.sources)
    assert "diff" not in run(diff=True, **BINARIES, checksums=built.checksums)
