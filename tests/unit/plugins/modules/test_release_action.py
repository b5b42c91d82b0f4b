"""arq.monitoring.release, controller half: the verified release cache, against a file:// release directory.

The fake upstream release lives in tmp_path/upstream (an archive whose top directory holds small
executables, and its sha256sums.txt); the cache is tmp_path/cache.
"""

import hashlib
import io
import os
import re
import shutil
import tarfile

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.arq.monitoring.plugins.plugin_utils.releases import cached_release

BASENAME = "svc-1.2.3"
NAME = BASENAME + ".linux-amd64.tar.gz"
TOP = BASENAME + ".linux-amd64"


def archive_bytes(members):
    """A .tar.gz of name => (content, mode); a name ending in / is a directory, a str content a symlink's target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, (content, mode) in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode = mode
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


GOOD = {TOP + "/": (b"", 0o755), TOP + "/svc": (b"#!/bin/sh\necho svc\n", 0o755),
        TOP + "/svctool": (b"#!/bin/sh\necho tool\n", 0o755), TOP + "/LICENSE": (b"MIT\n", 0o644)}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def upstream(tmp_path):
    """Write a release directory; returns (directory, archive bytes)."""
    directory = tmp_path / "upstream"

    def make(members=None, sums=True):
        members = GOOD if members is None else members
        directory.mkdir(exist_ok=True)
        data = archive_bytes(members)
        (directory / NAME).write_bytes(data)
        if sums:
            (directory / "sha256sums.txt").write_text(
                f"{'0' * 64}  {BASENAME}.linux-arm64.tar.gz\n{sha256(data)}  {NAME}\n")
        return directory, data
    return make


def args_for(tmp_path, directory, **extra):
    return {"url": directory.as_uri(), "basename": BASENAME, "arch": "amd64",
            "cache": str(tmp_path / "cache"), **extra}


def test_first_call_downloads_verifies_and_unpacks(tmp_path, upstream):
    directory, data = upstream()
    archive, unpacked = cached_release(args_for(tmp_path, directory))
    cache = tmp_path / "cache"
    assert archive == str(cache / NAME) and unpacked == str(cache / TOP)
    assert (cache / NAME).read_bytes() == data
    assert (cache / TOP / "svc").read_bytes() == b"#!/bin/sh\necho svc\n"
    assert os.access(cache / TOP / "svc", os.X_OK) and (cache / TOP / "LICENSE").is_file()
    assert (cache / (TOP + ".verified")).read_text() == sha256(data) + "\n"
    # Only the entry, its marker and its lock: no temporary download or unpack directory is left.
    assert sorted(p.name for p in cache.iterdir()) == sorted([NAME, TOP, TOP + ".verified", NAME + ".lock"])


def test_second_call_uses_the_cache_without_the_url(tmp_path, upstream):
    directory, _data = upstream()
    first = cached_release(args_for(tmp_path, directory))
    shutil.rmtree(directory)
    assert cached_release(args_for(tmp_path, directory)) == first
    assert os.path.isfile(os.path.join(first[1], "svc"))


def test_a_wrong_sha256_fails_naming_the_url_and_both_hashes_and_the_next_call_retries(tmp_path, upstream):
    directory, data = upstream()
    wrong = "f" * 64
    (directory / "sha256sums.txt").write_text(f"{wrong}  {NAME}\n")
    with pytest.raises(AnsibleActionFail) as failure:
        cached_release(args_for(tmp_path, directory))
    message = str(failure.value)
    assert f"{directory.as_uri()}/{NAME}" in message and wrong in message and sha256(data) in message
    assert not (tmp_path / "cache" / (TOP + ".verified")).exists()
    assert not (tmp_path / "cache" / TOP).exists()
    upstream()  # the release directory fixed: the next call downloads again and succeeds
    _archive, unpacked = cached_release(args_for(tmp_path, directory))
    assert os.path.isfile(os.path.join(unpacked, "svc"))
    assert (tmp_path / "cache" / (TOP + ".verified")).exists()


def test_a_pinned_checksum_needs_no_sha256sums(tmp_path, upstream):
    directory, data = upstream(sums=False)
    _archive, unpacked = cached_release(args_for(tmp_path, directory, checksum="sha256:" + sha256(data).upper()))
    assert os.path.isfile(os.path.join(unpacked, "svctool"))
    assert (tmp_path / "cache" / (TOP + ".verified")).read_text() == sha256(data) + "\n"


def test_a_pinned_checksum_that_differs_fails(tmp_path, upstream):
    directory, data = upstream(sums=False)
    with pytest.raises(AnsibleActionFail, match=f"sha256 {sha256(data)} is not the expected {'a' * 64}"):
        cached_release(args_for(tmp_path, directory, checksum="sha256:" + "a" * 64))
    assert not (tmp_path / "cache" / (TOP + ".verified")).exists()


def test_a_cached_entry_verified_against_another_pin_is_fetched_again(tmp_path, upstream):
    directory, data = upstream()
    cached_release(args_for(tmp_path, directory))
    shutil.rmtree(directory)
    with pytest.raises(AnsibleActionFail, match="cannot download"):
        cached_release(args_for(tmp_path, directory, checksum="sha256:" + "b" * 64))
    assert cached_release(args_for(tmp_path, directory, checksum="sha256:" + sha256(data)))


@pytest.mark.parametrize("checksum", ["md5:" + "a" * 32, "sha256:" + "a" * 63, "sha256:" + "g" * 64,
                                      "a" * 64, "sha1:" + "a" * 64, "sha256:" + "a" * 65])
def test_a_pinned_checksum_that_is_not_sha256_hex_is_refused(tmp_path, upstream, checksum):
    directory, _data = upstream()
    with pytest.raises(AnsibleActionFail, match="checksum must be sha256:<64 hex digits>") as failure:
        cached_release(args_for(tmp_path, directory, checksum=checksum))
    assert repr(checksum) in str(failure.value)
    assert not (tmp_path / "cache" / (TOP + ".verified")).exists()


@pytest.mark.parametrize("line", ["{hash}\n", "{hash}  {name}\n", "{hash} *{name}\n"])
def test_checksum_suffix_reads_the_archive_s_own_checksum_file(tmp_path, upstream, line):
    directory, data = upstream(sums=False)
    (directory / (NAME + ".sha256")).write_text(line.format(hash=sha256(data), name=NAME))
    _archive, unpacked = cached_release(args_for(tmp_path, directory, checksum_suffix=".sha256"))
    assert os.path.isfile(os.path.join(unpacked, "svc"))


def test_checksum_suffix_with_a_wrong_hash_fails(tmp_path, upstream):
    directory, data = upstream()  # sha256sums.txt is right but is not the file asked for
    (directory / (NAME + ".sha256")).write_text("c" * 64 + "\n")
    with pytest.raises(AnsibleActionFail, match=f"sha256 {sha256(data)} is not the expected {'c' * 64}"):
        cached_release(args_for(tmp_path, directory, checksum_suffix=".sha256"))


def test_sha256sums_not_listing_the_archive_fails_clearly(tmp_path, upstream):
    directory, _data = upstream()
    (directory / "sha256sums.txt").write_text(f"{'d' * 64}  {BASENAME}.linux-arm64.tar.gz\n")
    with pytest.raises(AnsibleActionFail) as failure:
        cached_release(args_for(tmp_path, directory))
    assert str(failure.value) == f"{directory.as_uri()}/sha256sums.txt lists no sha256 for {NAME}"
    assert not (tmp_path / "cache" / NAME).exists()


def test_a_missing_release_fails_naming_the_url(tmp_path, upstream):
    directory, _data = upstream()
    (directory / NAME).unlink()
    with pytest.raises(AnsibleActionFail, match=f"cannot download {directory.as_uri()}/{NAME}"):
        cached_release(args_for(tmp_path, directory))


@pytest.mark.parametrize("evil", [{"../evil": (b"pwned\n", 0o755)}, {"../../evil": (b"pwned\n", 0o755)},
                                  {TOP + "/../../../evil": (b"pwned\n", 0o755)},
                                  {TOP + "/evil": ("../../../evil", 0o777)}])
def test_a_member_escaping_the_directory_is_refused_and_nothing_is_written_outside(tmp_path, upstream, evil):
    directory, _data = upstream({**GOOD, **evil})
    url = re.escape(f"{directory.as_uri()}/{NAME}")
    with pytest.raises(AnsibleActionFail, match=f"^{url}: cannot unpack: .*outside the destination"):
        cached_release(args_for(tmp_path, directory))
    assert not list(tmp_path.rglob("*evil*"))
    cache = tmp_path / "cache"
    assert not (cache / (TOP + ".verified")).exists() and not (cache / TOP).exists()
    assert [p.name for p in cache.iterdir() if p.is_dir()] == []  # no temporary unpack directory left
    upstream()  # a good archive in its place: the entry was not taken for a complete one
    _archive, unpacked = cached_release(args_for(tmp_path, directory))
    assert os.path.isfile(os.path.join(unpacked, "svc"))


def test_an_archive_that_is_not_a_tar_fails_naming_the_url(tmp_path, upstream):
    directory, _data = upstream()
    data = b"<html>not found</html>\n"
    (directory / NAME).write_bytes(data)
    (directory / "sha256sums.txt").write_text(f"{sha256(data)}  {NAME}\n")
    with pytest.raises(AnsibleActionFail, match="^" + re.escape(f"{directory.as_uri()}/{NAME}: cannot unpack")):
        cached_release(args_for(tmp_path, directory))
    assert not (tmp_path / "cache" / (TOP + ".verified")).exists()


def test_an_archive_named_otherwise_with_loose_files_and_its_own_checksum_file(tmp_path):
    """VictoriaMetrics' layout: <name>-linux-<arch>-v<version>.tar.gz of loose files, with
    <name>-linux-<arch>-v<version>_checksums.txt beside it."""
    directory = tmp_path / "upstream"
    directory.mkdir()
    data = archive_bytes({"vm-prod": (b"#!/bin/sh\necho vm\n", 0o755)})
    (directory / "vm-linux-amd64-v1.2.3.tar.gz").write_bytes(data)
    (directory / "vm-linux-amd64-v1.2.3_checksums.txt").write_text(f"{sha256(data)}  vm-linux-amd64-v1.2.3.tar.gz\n")
    archive, unpacked = cached_release(args_for(tmp_path, directory, archive="vm-linux-{arch}-v1.2.3.tar.gz",
                                                checksums_file="vm-linux-{arch}-v1.2.3_checksums.txt"))
    assert archive.endswith("/vm-linux-amd64-v1.2.3.tar.gz") and unpacked.endswith("/vm-linux-amd64-v1.2.3")
    assert (tmp_path / "cache" / "vm-linux-amd64-v1.2.3" / "vm-prod").read_bytes() == b"#!/bin/sh\necho vm\n"
