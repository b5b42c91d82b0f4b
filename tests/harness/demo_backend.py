#!/usr/bin/python3
"""Demo stand-in for the arQ backend: serves the seed's metrics at /api/v1/metrics on :3001.

Not the real backend: a stdlib HTTP server for the lab and the whole-stack scenario. It answers
GET /api/v1/health (and any other /api/ path with 404), counts every request it serves in
http_requests_total / http_request_duration_seconds, and reports its own process metrics under
the names the seed's Node.js backend uses (process_*, nodejs_*), so the seed's PromQL, alerts
and dashboards have real data.
"""
import http.server
import os
import resource
import threading
import time

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOCK = threading.Lock()
REQUESTS = {}  # (method, route, status) -> count
DURATIONS = {}  # route -> [bucket counts..., sum, count]
START = time.time()


def observe(method, route, status, seconds):
    with LOCK:
        REQUESTS[(method, route, status)] = REQUESTS.get((method, route, status), 0) + 1
        buckets = DURATIONS.setdefault(route, [0] * len(BUCKETS) + [0.0, 0])
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        buckets[-2] += seconds
        buckets[-1] += 1


def process_metrics():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    soft_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {
        "process_cpu_seconds_total": usage.ru_utime + usage.ru_stime,
        "process_resident_memory_bytes": rss,
        "process_open_fds": len(os.listdir("/proc/self/fd")),
        "process_max_fds": soft_fds,
        "process_start_time_seconds": START,
        "nodejs_eventloop_lag_seconds": 0.001,
        "nodejs_active_handles_total": threading.active_count(),
        "nodejs_active_requests_total": 0,
        "nodejs_heap_size_total_bytes": rss,
        "nodejs_heap_size_used_bytes": rss // 2,
        "nodejs_external_memory_bytes": 0,
    }


def exposition():
    lines = ["# TYPE http_requests_total counter"]
    with LOCK:
        for (method, route, status), count in sorted(REQUESTS.items()):
            lines.append(f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
        lines.append("# TYPE http_request_duration_seconds histogram")
        for route, values in sorted(DURATIONS.items()):
            for bound, count in zip(BUCKETS, values):
                lines.append(f'http_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {count}')
            lines.append(f'http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {values[-1]}')
            lines.append(f'http_request_duration_seconds_sum{{route="{route}"}} {values[-2]}')
            lines.append(f'http_request_duration_seconds_count{{route="{route}"}} {values[-1]}')
    for name, value in process_metrics().items():
        kind = "counter" if name.endswith("_total") and name.startswith("process_cpu") else "gauge"
        lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
    return ("\n".join(lines) + "\n").encode()


class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        started = time.monotonic()
        if self.path == "/api/v1/metrics":
            status, body, ctype = 200, exposition(), "text/plain; version=0.0.4"
        elif self.path == "/api/v1/health":
            status, body, ctype = 200, b'{"status":"ok"}', "application/json"
        else:
            status, body, ctype = 404, b'{"error":"not found"}', "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        observe("GET", self.path.split("?")[0] if status != 404 else "unknown", str(status), time.monotonic() - started)

    def log_message(self, *args):  # quiet: the journal is not an access log
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "3001"))), Backend).serve_forever()
