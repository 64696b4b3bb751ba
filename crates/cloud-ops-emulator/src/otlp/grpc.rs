//! OTLP/gRPC: the `opentelemetry.proto.collector.{trace,metrics,logs}.v1`
//! services' `Export`, as the generated tonic servers of
//! `opentelemetry-proto` (the crate `opentelemetry-otlp` exports with).
//! Requests may be gzip-compressed (OTLP servers must accept `gzip`).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{logs, metrics, traces, OtlpIngest, MAX_REQUEST_BYTES};

/// `routes` with the OTLP services added: one tonic router per port,
/// since two axum routers made from tonic's cannot be merged (both have a
/// fallback).
pub fn add_services(routes: tonic::service::Routes, ingest: &OtlpIngest) -> tonic::service::Routes {
    let service = OtlpService {
        ingest: ingest.clone(),
    };
    routes
        .add_service(
            TraceServiceServer::new(service.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            MetricsServiceServer::new(service.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            LogsServiceServer::new(service)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
}

/// Implements the three `Export` methods over one [`OtlpIngest`].
#[derive(Debug, Clone)]
pub struct OtlpService {
    ingest: OtlpIngest,
}

#[tonic::async_trait]
impl TraceService for OtlpService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        traces::export(&self.ingest, request.into_inner())
            .map(Response::new)
            .map_err(|e| e.to_status())
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpService {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        metrics::export(&self.ingest, request.into_inner())
            .map(Response::new)
            .map_err(|e| e.to_status())
    }
}

#[tonic::async_trait]
impl LogsService for OtlpService {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        logs::export(&self.ingest, request.into_inner())
            .map(Response::new)
            .map_err(|e| e.to_status())
    }
}
