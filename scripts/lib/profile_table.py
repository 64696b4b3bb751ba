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
    ("span export on the runtime (OTLP encoding, gRPC)", r"ExportAccounting::run|opentelemetry_otlp::exporter::tonic::trace|CloudTraceExporter", None),
    ("the exports' gRPC connection (HTTP/2 framing, socket I/O)", r"^h2::|hyper::proto::h2::client|tonic::transport::channel", None),
    ("metric export on the runtime", r"opentelemetry_otlp::exporter::tonic::metrics|metrics::cloud_monitoring::", None),
]


def load(path):
    samples, current = [], None
    with open(path, errors="replace") as dump:
        for line in dump:
            if line[:1] not in ("\t", " ") and line.strip():
                current = (line.split()[0], [])
                samples.append(current)
            elif line.strip() and current is not None:
                parts = line.strip().split(" ", 1)
                current[1].append(parts[1] if len(parts) > 1 else "?")
    return samples


def split(samples):
    """Per part, its sample count; plus per thread group."""
    counts = {label: 0 for label, _, _ in PARTS}
    counts.update({"total": len(samples), "worker, outside the parts above (hyper, tokio, the kernel's network and scheduling)": 0,
                   "log writer thread": 0, "span batch thread": 0, "metric reader thread": 0,
                   "other threads": 0})
    patterns = [(label, re.compile(pattern), parent) for label, pattern, parent in PARTS]
    for comm, frames in samples:
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
            counts["worker, outside the parts above (hyper, tokio, the kernel's network and scheduling)"] += 1
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
    rows += ["worker, outside the parts above (hyper, tokio, the kernel's network and scheduling)",
             "log writer thread", "span batch thread", "metric reader thread", "other threads"]
    print(f"{'CPU per request, us':<88} {'off':>7} {'on':>7} {'on-off':>7}")
    for row in rows:
        label = row.strip()
        a, b = off.get(label, 0.0), on.get(label, 0.0)
        print(f"{row:<88} {a:7.2f} {b:7.2f} {b - a:+7.2f}")


if __name__ == "__main__":
    sys.exit(main())
