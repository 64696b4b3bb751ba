"""Sends one trace, two metrics and two log records with the OpenTelemetry
Python SDK's standard OTLP exporters, configured by OTEL_* variables only
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), as any Python service would.

Prints one JSON line: the trace id and the token the log records carry, for
test_otlp.py to read back.
"""

import json
import logging
import os
import uuid

from opentelemetry import metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# The exporter family that OTEL_EXPORTER_OTLP_PROTOCOL names, as the SDK's
# auto-configuration picks it.
if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
token = uuid.uuid4().hex

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = tracer_provider.get_tracer("otlp-python-test")

meter_provider = MeterProvider(
    resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
)
meter = meter_provider.get_meter("otlp-python-test")

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
log = logging.getLogger("otlp-python-test")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(logger_provider=logger_provider))

with tracer.start_as_current_span("GET /books") as root:
    root.set_attribute("http.request.method", "GET")
    with tracer.start_as_current_span("SELECT books") as child:
        child.set_attribute("db.system", "sqlite")
        log.warning("low stock %s", token)
    trace_id = format(root.get_span_context().trace_id, "032x")
log.info("done %s", token)

orders = meter.create_counter("py.orders", unit="1", description="Orders placed")
orders.add(3, {"outcome": "ok"})
latency = meter.create_histogram("py.latency", unit="ms")
for value in (5, 12, 40):
    latency.record(value, {"http.route": "/books"})

# Shutting down exports what is left; each returns whether that worked.
tracer_provider.shutdown()
meter_provider.shutdown()
logger_provider.shutdown()
print(json.dumps({"trace_id": trace_id, "token": token}))
