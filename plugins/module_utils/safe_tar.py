# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Release archives unpacked without letting a member escape (controller and host share it)."""

from __future__ import annotations

import tarfile


def safe_extract(tar, directory):
    """Extract into directory; raise tarfile.TarError for a member that would escape it.

    tarfile's data filter where Python has it (3.11.4+ and backports); otherwise absolute names,
    ".." components and links pointing out are refused before anything is written.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(directory, filter="data")
        return
    for member in tar.getmembers():
        link = member.linkname if member.issym() or member.islnk() else ""
        if any(name.startswith("/") or ".." in name.split("/") for name in (member.name, link) if name):
            raise tarfile.TarError(f"unsafe member {member.name}")
    tar.extractall(directory)
