//! Generates tonic server stubs for the Google APIs the emulator serves.
//!
//! gcloud-sdk ships only clients, so the server traits are generated here with
//! tonic-build's `manual` module on gcloud-sdk's prost message types: no .proto
//! files and no protoc are needed. Package and method names are the real ones
//! so that Google's own clients talk to the emulator unchanged.

use tonic_prost_build::manual::{Builder, Method, Service};

const TRACE_V2: &str = "gcloud_sdk::google::devtools::cloudtrace::v2";
const TRACE_V1: &str = "gcloud_sdk::google::devtools::cloudtrace::v1";
const MONITORING_V3: &str = "gcloud_sdk::google::monitoring::v3";
const API: &str = "gcloud_sdk::google::api";

fn unary(name: &str, route: &str, input: String, output: String) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(input)
        .output_type(output)
        .codec_path("crate::grpc::GoogleCodec")
        .build()
}

fn trace_v2() -> Service {
    Service::builder()
        .name("TraceService")
        .package("google.devtools.cloudtrace.v2")
        .method(unary(
            "batch_write_spans",
            "BatchWriteSpans",
            format!("{TRACE_V2}::BatchWriteSpansRequest"),
            "crate::grpc::Empty".into(),
        ))
        .method(unary(
            "create_span",
            "CreateSpan",
            format!("{TRACE_V2}::Span"),
            format!("{TRACE_V2}::Span"),
        ))
        .build()
}

fn trace_v1() -> Service {
    Service::builder()
        .name("TraceService")
        .package("google.devtools.cloudtrace.v1")
        .method(unary(
            "list_traces",
            "ListTraces",
            format!("{TRACE_V1}::ListTracesRequest"),
            format!("{TRACE_V1}::ListTracesResponse"),
        ))
        .method(unary(
            "get_trace",
            "GetTrace",
            format!("{TRACE_V1}::GetTraceRequest"),
            format!("{TRACE_V1}::Trace"),
        ))
        .build()
}

fn metric_v3() -> Service {
    Service::builder()
        .name("MetricService")
        .package("google.monitoring.v3")
        .method(unary(
            "create_time_series",
            "CreateTimeSeries",
            format!("{MONITORING_V3}::CreateTimeSeriesRequest"),
            "crate::grpc::Empty".into(),
        ))
        .method(unary(
            "list_time_series",
            "ListTimeSeries",
            format!("{MONITORING_V3}::ListTimeSeriesRequest"),
            format!("{MONITORING_V3}::ListTimeSeriesResponse"),
        ))
        .method(unary(
            "create_metric_descriptor",
            "CreateMetricDescriptor",
            format!("{MONITORING_V3}::CreateMetricDescriptorRequest"),
            format!("{API}::MetricDescriptor"),
        ))
        .method(unary(
            "get_metric_descriptor",
            "GetMetricDescriptor",
            format!("{MONITORING_V3}::GetMetricDescriptorRequest"),
            format!("{API}::MetricDescriptor"),
        ))
        .method(unary(
            "list_metric_descriptors",
            "ListMetricDescriptors",
            format!("{MONITORING_V3}::ListMetricDescriptorsRequest"),
            format!("{MONITORING_V3}::ListMetricDescriptorsResponse"),
        ))
        .build()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    Builder::new()
        .build_client(false)
        .compile(&[trace_v2(), trace_v1(), metric_v3()]);
}
