"""The OpenTelemetry Python SDK's standard OTLP exporters against the
emulator, over gRPC and then HTTP/protobuf, configured by OTEL_* variables
only; what they sent is read back through the emulator's Google APIs:
Cloud Trace v1 GetTrace and Monitoring ListTimeSeries (Google's own Python
clients), and the console's log search.

Usage: python test_otlp.py PATH_TO_cloudrun-observability
Last line: `otlp-python: N passed, M failed`.
"""

import json
import os
import subprocess
import sys
import time
import traceback
import urllib.request

import grpc
from google.cloud import monitoring_v3, trace_v1
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)
from google.cloud.trace_v1.services.trace_service.transports import TraceServiceGrpcTransport

PROJECT = "py-otlp-test"
HERE = os.path.dirname(os.path.abspath(__file__))


def start_emulator(binary):
    """A standalone emulator on a random port; OTLP's own ports off."""
    process = subprocess.Popen(
        [binary, "emulator", "--port", "0", "--otlp-grpc-port", "0", "--otlp-http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    # "Cloud Trace / Cloud Monitoring emulator listening on 127.0.0.1:PORT (...)"
    addr = line.split(" listening on ")[1].split()[0]
    return process, addr


def send(addr, protocol, instance):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{addr}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "py-shop",
            "OTEL_RESOURCE_ATTRIBUTES": f"gcp.project_id={PROJECT},service.instance.id={instance},cloud.region=europe-west1",
        }
    )
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "send.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"send.py failed:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_trace(channel, sent):
    client = trace_v1.TraceServiceClient(transport=TraceServiceGrpcTransport(channel=channel))
    got = client.get_trace(project_id=PROJECT, trace_id=sent["trace_id"])
    names = sorted(span.name for span in got.spans)
    assert names == ["GET /books", "SELECT books"], names
    root = next(span for span in got.spans if span.name == "GET /books")
    assert root.labels["http.request.method"] == "GET", dict(root.labels)
    assert root.labels["service.name"] == "py-shop", dict(root.labels)


def check_metrics(channel, instance):
    client = monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    now = int(time.time())
    interval = monitoring_v3.TimeInterval(
        {"end_time": {"seconds": now + 60}, "start_time": {"seconds": now - 600}}
    )

    def series(metric_type):
        return list(
            client.list_time_series(
                request={
                    "name": f"projects/{PROJECT}",
                    "filter": f'metric.type = "{metric_type}" AND resource.labels.instance = "{instance}"',
                    "interval": interval,
                    "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
                }
            )
        )

    counter = series("prometheus.googleapis.com/py.orders/counter")
    assert len(counter) == 1, counter
    assert counter[0].resource.type == "prometheus_target"
    assert counter[0].resource.labels["job"] == "py-shop"
    assert counter[0].resource.labels["location"] == "europe-west1"
    assert counter[0].metric.labels["outcome"] == "ok"
    assert counter[0].points[0].value.double_value == 3.0, counter[0].points[0]
    histogram = series("prometheus.googleapis.com/py.latency/histogram")
    assert len(histogram) == 1, histogram
    assert histogram[0].points[0].value.distribution_value.count == 3


def check_logs(addr, sent):
    with urllib.request.urlopen(f"http://{addr}/logs?q={sent['token']}", timeout=10) as response:
        page = response.read().decode()
    assert page.count(sent["token"]) >= 2, "both log records are shown"
    assert "WARNING" in page


def main():
    binary = sys.argv[1]
    process, addr = start_emulator(binary)
    passed = failed = 0
    try:
        channel = grpc.insecure_channel(addr)
        for protocol, instance in (("grpc", "grpc-1"), ("http/protobuf", "http-1")):
            try:
                sent = send(addr, protocol, instance)
            except Exception:  # noqa: BLE001 - reported, counted
                traceback.print_exc()
                print(f"FAIL {protocol}: sending")
                failed += 3
                continue
            for name, check in (
                ("trace", lambda: check_trace(channel, sent)),
                ("metrics", lambda: check_metrics(channel, instance)),
                ("logs", lambda: check_logs(addr, sent)),
            ):
                try:
                    check()
                    print(f"ok   {protocol} {name}")
                    passed += 1
                except Exception:  # noqa: BLE001 - reported, counted
                    traceback.print_exc()
                    print(f"FAIL {protocol} {name}")
                    failed += 1
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"otlp-python: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
