"""Per-request CPU of each part of the service, from two `perf script -F
comm,ip,sym` call-graph dumps (telemetry off, telemetry on): scripts/profile.

A part's figure is the samples whose stack holds one of its frames (its
callees included), each sample 1/hz s of CPU, divided by the requests served
while perf ran. Parts nested in another are indented under it; "the rest"
lines are what the parts above them leave of their parent.
"""

import argparse
import re
import sys

WORKER = "tokio-rt-worker"
KERNEL_ADDRESSES = 0xFFFF800000000000
OUTSIDE = "worker, outside the parts above"

# What the worker does outside the parts, by where the sample landed: the
# same code runs with telemetry off, so a difference here is telemetry's
# indirect cost (wake-ups, colder caches).
OUTSIDE_KINDS = [
    ("kernel: scheduling and wake-ups", r"schedule|finish_task_switch|try_to_wake_up|futex|_raw_spin_unlock_irqrestore"),
    ("kernel: epoll", r"ep_poll|epoll"),
    ("kernel: TCP and loopback", r"tcp_|__dev_queue_xmit|net_rx_action|sock_|__sys_sendto|do_writev|sock_write_iter"),
    ("kernel: the rest", r"."),
]
ALLOCATOR = re.compile(r"^(malloc|_int_malloc|cfree|_int_free|malloc_consolidate|unlink_chunk|__rdl_|__rust_alloc|__rust_dealloc|realloc|_int_realloc|__libc_)")

# (label, frame pattern, parent label or None). A sample counts for the first
# top-level part it matches, so the top level adds up to the total.
PARTS = [
    ("the handler (routing, CatchPanic, the book's JSON)", r"tower_http::catch_panic", None),
    ("the request middleware, handler excluded", r"telemetry::middleware::track_request|State<cloudrun_observability::telemetry::http_request::TrustedHops>", None),
    ("request line (event, format, queue)", r"middleware::RequestLine::log", "mw"),
    ("SERVER span start (parent, attributes, ids)", r"server_span::start$", "mw"),
    ("SERVER span end (status, to the export queue)", r"server_span::ServerSpan::end$", "mw"),
    ("request metrics (histogram, deviation)", r"middleware::record_metrics$", "mw"),
    ("httpRequest fields (URL, client address)", r"http_request::http_context$", "mw"),
    ("span export: the call (spans converted to OTLP messages)", r"ExportAccounting::run|opentelemetry_otlp::exporter::tonic::trace|CloudTraceExporter", None),
    ("span export: its gRPC connection (protobuf encoding, HTTP/2, socket)", r"^h2::|hyper::proto::h2::client|tonic::transport::channel", None),
    ("metric export on the runtime", r"opentelemetry_otlp::exporter::tonic::metrics|metrics::cloud_monitoring::", None),
]


def load(path):
    samples, current = [], None
    with open(path, errors="replace") as dump:
        for line in dump:
            if line[:1] not in ("\t", " ") and line.strip():
                current = (line.split()[0], [], [])
                samples.append(current)
            elif line.strip() and current is not None:
                parts = line.strip().split(" ", 1)
                if not current[1]:
                    current[2].append(int(parts[0], 16) >= KERNEL_ADDRESSES)
                current[1].append(parts[1] if len(parts) > 1 else "?")
    return samples


def outside_kind(frames, in_kernel):
    if in_kernel and in_kernel[0]:
        for label, pattern in OUTSIDE_KINDS:
            if any(re.search(pattern, frame) for frame in frames[:12]):
                return label
    if ALLOCATOR.search(frames[0]):
        return "user: the allocator"
    return "user: hyper, tokio, std"


def split(samples):
    """Per part, its sample count; plus per thread group."""
    counts = {label: 0 for label, _, _ in PARTS}
    counts.update({label: 0 for label, _ in OUTSIDE_KINDS})
    counts.update({"user: the allocator": 0, "user: hyper, tokio, std": 0})
    counts.update({"total": len(samples), OUTSIDE: 0,
                   "log writer thread": 0, "span batch thread": 0, "metric reader thread": 0,
                   "other threads": 0})
    patterns = [(label, re.compile(pattern), parent) for label, pattern, parent in PARTS]
    for comm, frames, in_kernel in samples:
        if comm != WORKER:
            if comm.startswith("log-writer"):
                counts["log writer thread"] += 1
            elif comm.startswith("OpenTelemetry.T"):
                counts["span batch thread"] += 1
            elif comm.startswith("OpenTelemetry.M"):
                counts["metric reader thread"] += 1
            else:
                counts["other threads"] += 1
            continue
        top = None
        for label, pattern, parent in patterns:
            if parent is None and top is None and any(pattern.search(f) for f in frames):
                top = label
                counts[label] += 1
            elif parent == "mw" and top == PARTS[1][0] and any(pattern.search(f) for f in frames):
                counts[label] += 1
        if top is None:
            counts[OUTSIDE] += 1
            counts[outside_kind(frames, in_kernel)] += 1
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hz", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("off")
    parser.add_argument("off_rate", type=float)
    parser.add_argument("on")
    parser.add_argument("on_rate", type=float)
    args = parser.parse_args()
    per_request = {}
    for mode, path, rate in (("off", args.off, args.off_rate), ("on", args.on, args.on_rate)):
        counts = split(load(path))
        us = 1e6 / args.hz / (rate * args.seconds)
        per_request[mode] = {label: n * us for label, n in counts.items()}
    off, on = per_request["off"], per_request["on"]
    mw = PARTS[1][0]
    nested = [label for label, _, parent in PARTS if parent == "mw"]
    for mode in (off, on):
        mode["the rest (request scope, route, Arcs, drops)"] = mode[mw] - sum(mode[label] for label in nested)
    rows = ["total"]
    for label, _, parent in PARTS:
        if parent is None:
            rows.append(label)
            if label == mw:
                rows += ["  " + label for label in nested] + ["  the rest (request scope, route, Arcs, drops)"]
    rows += [OUTSIDE] + ["  " + label for label, _ in OUTSIDE_KINDS] + ["  user: the allocator", "  user: hyper, tokio, std"]
    rows += ["log writer thread", "span batch thread", "metric reader thread", "other threads"]
    print(f"{'CPU per request, us':<88} {'off':>7} {'on':>7} {'on-off':>7}")
    for row in rows:
        label = row.strip()
        a, b = off.get(label, 0.0), on.get(label, 0.0)
        print(f"{row:<88} {a:7.2f} {b:7.2f} {b - a:+7.2f}")


if __name__ == "__main__":
    sys.exit(main())
