# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""The controller's cache of verified release archives (private to the collection's plugins)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlConnectionError, open_url
from ansible_collections.arq.monitoring.plugins.module_utils.safe_tar import safe_extract

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "arq.monitoring", "releases")


def _fetch(url):
    try:
        # http, https and file URLs; the bytes as served (no Content-Encoding undone): checksums are of those.
        with open_url(url, timeout=60, decompress=False) as answer:
            return answer.read()
    except (OSError, ValueError, UrlConnectionError) as err:
        raise AnsibleActionFail(f"cannot download {url}: {err}") from err


def _pinned_sha256(args):
    """The pinned hash, or "" when the release's checksums decide."""
    if not args.get("checksum"):
        return ""
    algorithm, _colon, value = args["checksum"].partition(":")
    if algorithm != "sha256" or not HEX64.match(value.lower()):
        raise AnsibleActionFail(f"checksum must be sha256:<64 hex digits>, not {args['checksum']!r}")
    return value.lower()


def _arch(args, name):
    return name.replace("{arch}", args.get("arch") or "amd64")


def archive_name(args):
    """The archive's file name: O(archive) with {arch} filled in, else <basename>.linux-<arch>.tar.gz."""
    return _arch(args, args.get("archive") or f"{args['basename']}.linux-{{arch}}.tar.gz")


def _expected_sha256(args, archive_url, archive_name):
    if args.get("checksum"):
        return _pinned_sha256(args)
    if args.get("checksum_suffix"):
        sums_url = archive_url + args["checksum_suffix"]
    else:
        sums_url = args["url"].rstrip("/") + "/" + _arch(args, args.get("checksums_file") or "sha256sums.txt")
    for line in to_text(_fetch(sums_url)).splitlines():
        fields = line.split()
        if fields and HEX64.match(fields[0].lower()) and (
                len(fields) == 1 or fields[-1].lstrip("*").split("/")[-1] == archive_name):
            return fields[0].lower()
    raise AnsibleActionFail(f"{sums_url} lists no sha256 for {archive_name}")


def cached_release(args):
    """Path of the verified archive and of its unpacked copy in the controller's cache.

    A process lock per archive keeps forks from downloading it twice; a marker written after
    verification and unpacking tells a complete cache entry from an interrupted one.
    """
    cache = args.get("cache") or _default_cache()
    os.makedirs(cache, mode=0o755, exist_ok=True)
    name = archive_name(args)
    archive = os.path.join(cache, name)
    unpacked = archive[: -len(".tar.gz")]
    marker = unpacked + ".verified"
    with open(archive + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pinned = _pinned_sha256(args)
        if os.path.exists(marker):
            with open(marker) as handle:
                if not pinned or handle.read().strip() == pinned:
                    return archive, unpacked
        archive_url = args["url"].rstrip("/") + "/" + name
        expected = _expected_sha256(args, archive_url, name)
        data = _fetch(archive_url)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise AnsibleActionFail(f"{archive_url}: sha256 {actual} is not the expected {expected}")
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as out:
            out.write(data)
        os.replace(out.name, archive)
        shutil.rmtree(unpacked, ignore_errors=True)
        tmp = tempfile.mkdtemp(dir=cache)
        try:
            try:
                with tarfile.open(archive) as tar:
                    safe_extract(tar, tmp)
            except tarfile.TarError as err:  # an unsafe member (the data filter) or a broken archive
                raise AnsibleActionFail(f"{archive_url}: cannot unpack: {err}") from err
            # One top directory is the release's own; loose files (VictoriaMetrics) stay in tmp.
            top = [os.path.join(tmp, entry) for entry in os.listdir(tmp)]
            os.replace(top[0] if len(top) == 1 and os.path.isdir(top[0]) else tmp, unpacked)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(marker, "w") as out:
            out.write(actual + "\n")
    return archive, unpacked


def sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
