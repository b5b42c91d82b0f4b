#!/usr/bin/env python3
"""Build an offline release mirror laid out like the upstream GitHub releases.

The binaries are the real programs from Debian's packages (``apt-get download`` +
``dpkg-deb -x``), repacked as ``<name>-<version>.linux-amd64.tar.gz`` with a
``sha256sums.txt`` beside them, under ``<owner>/<repo>/releases/download/v<version>/``.
The current releases come from Debian testing (forky), the ones before them from trixie, so that
upgrades can be tested.

Grafana's server is in no registry: its place is taken by the test stand-in of
tests/grafana_standin/, packed like Grafana's own release archive under the layout of
https://dl.grafana.com/oss/release (``oss/release/grafana-<version>.linux-amd64.tar.gz`` with a
``.sha256`` beside it, unpacking to ``grafana-v<version>/``).

    release_mirror.py build     # idempotent: $ARQ_CACHE/mirror, and promtool/amtool in $ARQ_CACHE/bin
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(os.environ.get("ARQ_CACHE", Path.home() / ".cache" / "arq-monitoring"))
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
FIXED_MTIME = 1735689600  # 2025-01-01: stable Last-Modified, so conditional requests hit


# (repository, archive name, version, suite, {file in archive: (package, path in package, mode)}).
# The current releases come from Debian testing (forky); the ones before them from trixie, so that
# upgrades in place can be tested. Like upstream's archives, each holds its binaries, LICENSE,
# NOTICE and, where upstream ships one, the example configuration.
def _docs(package: str, config: str | None = None) -> dict[str, tuple[str, str, int]]:
    files = {"LICENSE": (package, f"usr/share/doc/{package}/copyright", 0o644),
             "NOTICE": (package, f"usr/share/doc/{package}/copyright", 0o644)}
    if config:
        files[config.rsplit("/", 1)[-1]] = (package, config, 0o644)
    return files


def _prometheus(version: str, suite: str) -> tuple:
    return ("prometheus/prometheus", "prometheus", version, suite,
            {"prometheus": ("prometheus", "usr/bin/prometheus", 0o755),
             "promtool": ("promtool", "usr/bin/promtool", 0o755),
             **_docs("prometheus", "etc/prometheus/prometheus.yml")})


def _alertmanager(version: str, suite: str) -> tuple:
    return ("prometheus/alertmanager", "alertmanager", version, suite,
            {"alertmanager": ("prometheus-alertmanager", "usr/bin/prometheus-alertmanager", 0o755),
             "amtool": ("prometheus-alertmanager", "usr/bin/amtool", 0o755),
             **_docs("prometheus-alertmanager", "etc/prometheus/alertmanager.yml")})


def _exporter(repo: str, name: str, version: str, suite: str) -> tuple:
    package = "prometheus-" + name.replace("_", "-")
    return (repo, name, version, suite,
            {name: (package, f"usr/bin/{package}", 0o755), **_docs(package)})


RELEASES = [
    _prometheus("3.5.3", "forky"), _prometheus("2.53.3", "trixie"),
    _alertmanager("0.33.1", "forky"), _alertmanager("0.28.1", "trixie"),
    _exporter("prometheus/node_exporter", "node_exporter", "1.11.1", "forky"),
    _exporter("prometheus/node_exporter", "node_exporter", "1.9.0", "trixie"),
    _exporter("prometheus-community/postgres_exporter", "postgres_exporter", "0.19.1", "forky"),
    _exporter("prometheus-community/postgres_exporter", "postgres_exporter", "0.17.1", "trixie"),
    # redis_exporter's own archives carry a "v" in the version part of the name.
    _exporter("oliver006/redis_exporter", "redis_exporter", "v1.86.0", "forky"),
    _exporter("oliver006/redis_exporter", "redis_exporter", "v1.69.0", "trixie"),
]
# VictoriaMetrics' own layout: loose files in <archive>-linux-amd64-v<version>.tar.gz, each with
# its <archive>-linux-amd64-v<version>_checksums.txt; the server is victoria-metrics-prod, the
# backup tools come in vmutils. Debian builds them with the system's zstd (Debian 13 hosts).
VICTORIAMETRICS = ("VictoriaMetrics/VictoriaMetrics", "1.145.0", "forky", {
    "victoria-metrics": {"victoria-metrics-prod": "usr/bin/victoria-metrics"},
    "vmutils": {"vmbackup-prod": "usr/bin/vmbackup", "vmrestore-prod": "usr/bin/vmrestore"},
})
# The Grafana version the stand-in poses as (the grafana role's default).
GRAFANA_VERSION = "13.2.3"
GRAFANA_STANDIN = Path(__file__).resolve().parents[1] / "grafana_standin"
# Tools the controller-side tests run (promtool check/test, amtool check-config).
TOOLS = {"promtool": ("promtool", "forky", "usr/bin/promtool"),
         "amtool": ("prometheus-alertmanager", "forky", "usr/bin/amtool")}
# Files Debian's alertmanager reads from disk; the harness bakes them into the test images.
TEMPLATES = ("prometheus-alertmanager", "forky", "usr/share/prometheus/alertmanager")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apt_download(suite: str, package: str) -> Path:
    """Fetch one .deb of `suite` without touching the controller's own apt state."""
    root = CACHE / "apt" / suite
    debs = root / "debs"
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    debs.mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb {DEBIAN_MIRROR} {suite} main\n")
    opts = [f"-oDir::Etc::SourceList={root / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root / 'cache'}",
            "-oDir::State::status=/dev/null", "-oAPT::Architecture=amd64",
            "-oAPT::Sandbox::User=root", "-qq"]
    if not any((root / "lists").glob("*Packages*")):
        subprocess.run(["apt-get", *opts, "update"], check=True)
    subprocess.run(["apt-get", *opts, "download", package], check=True, cwd=debs)
    return sorted(debs.glob(f"{package}_*.deb"))[-1]


def extract(deb: Path) -> Path:
    out = deb.with_suffix("")
    if not out.is_dir():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(out)
    return out


def pack(entries: dict[str, tuple[bytes | None, int]], top: str) -> bytes:
    """A reproducible tar.gz of {relative path: (content, or None for a directory; mode)} under
    `top` (loose files when empty): fixed dates, owners and order, and a gzip header without the
    time of packing."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (content, mode) in sorted((({"": (None, 0o755)} if top else {}) | entries).items()):
            info = tarfile.TarInfo(f"{top}/{name}".strip("/"))
            info.mtime, info.mode = FIXED_MTIME, mode
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=FIXED_MTIME)


def build_grafana_standin() -> None:
    """The Grafana stand-in as grafana-<version>.linux-amd64.tar.gz; rebuilt when its source changes."""
    release_dir = CACHE / "mirror" / "oss" / "release"
    name = f"grafana-{GRAFANA_VERSION}.linux-amd64.tar.gz"
    program = (GRAFANA_STANDIN / "grafana").read_text().replace("@VERSION@", GRAFANA_VERSION).encode()
    defaults = (GRAFANA_STANDIN / "conf" / "defaults.ini").read_bytes()
    data = pack({
        "bin": (None, 0o755), "bin/grafana": (program, 0o755),
        "conf": (None, 0o755), "conf/defaults.ini": (defaults, 0o644),
        "conf/provisioning": (None, 0o755),
        "public": (None, 0o755), "public/README.txt": (b"Grafana test stand-in: no web UI.\n", 0o644),
        "VERSION": (f"{GRAFANA_VERSION}\n".encode(), 0o644),
    }, f"grafana-v{GRAFANA_VERSION}")
    digest = hashlib.sha256(data).hexdigest()
    sums = release_dir / f"{name}.sha256"
    if sums.exists() and sums.read_text().strip() == digest:
        return
    release_dir.mkdir(parents=True, exist_ok=True)
    (release_dir / name).write_bytes(data)
    sums.write_text(digest)  # dl.grafana.com's .sha256 files hold the bare hash
    for path in (release_dir / name, sums):
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    # The roles' controller cache answers from a verified copy and the mirror's fixed dates make a
    # conditional request come back "not modified": drop the stale copy of an older stand-in.
    role_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arq.monitoring" / "releases"
    for stale in role_cache.glob(f"grafana-{GRAFANA_VERSION}.linux-*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    print(f"mirror: grafana {GRAFANA_VERSION} (test stand-in)", file=sys.stderr)


def build_victoriametrics(mirror: Path) -> None:
    repo, version, suite, archives = VICTORIAMETRICS
    release_dir = mirror / repo / "releases" / "download" / f"v{version}"
    for archive, files in archives.items():
        name = f"{archive}-linux-amd64-v{version}"
        sums = release_dir / f"{name}_checksums.txt"
        if sums.exists():
            continue
        package = extract(apt_download(suite, "victoria-metrics"))
        data = pack({f: ((package / p).read_bytes(), 0o755) for f, p in files.items()}, "")
        release_dir.mkdir(parents=True, exist_ok=True)
        (release_dir / f"{name}.tar.gz").write_bytes(data)
        sums.write_text(f"{hashlib.sha256(data).hexdigest()}  {name}.tar.gz\n")
        for path in (release_dir / f"{name}.tar.gz", sums):
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        print(f"mirror: {repo} {version} {archive} from {suite}", file=sys.stderr)


def build() -> None:
    mirror = CACHE / "mirror"
    for repo, name, version, suite, binaries in RELEASES:
        release_dir = mirror / repo / "releases" / "download" / (version if version.startswith("v") else f"v{version}")
        sums = release_dir / "sha256sums.txt"
        if sums.exists():
            continue
        top = f"{name}-{version}.linux-amd64"
        data = pack({f: ((extract(apt_download(suite, pkg)) / p).read_bytes(), mode)
                     for f, (pkg, p, mode) in binaries.items()}, top)
        release_dir.mkdir(parents=True, exist_ok=True)
        (release_dir / f"{top}.tar.gz").write_bytes(data)
        sums.write_text(f"{hashlib.sha256(data).hexdigest()}  {top}.tar.gz\n")
        for path in release_dir.iterdir():
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        print(f"mirror: {repo} {version} from {suite}", file=sys.stderr)
    build_victoriametrics(mirror)
    build_grafana_standin()
    bin_dir = CACHE / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool, (package, suite, path) in TOOLS.items():
        src = extract(apt_download(suite, package)) / path
        if not (bin_dir / tool).exists() or sha256(bin_dir / tool) != sha256(src):
            shutil.copy2(src, bin_dir / tool)
    package, suite, subdir = TEMPLATES
    templates = CACHE / "mirror-src" / f"templates-{suite}"
    if not templates.is_dir():
        src = extract(apt_download(suite, package)) / subdir
        shutil.copytree(src, templates)


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit(__doc__)
    build()
