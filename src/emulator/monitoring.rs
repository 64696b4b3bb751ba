//! stub
use super::metric_store::MetricStore;
use gcloud_sdk::google::api::MetricDescriptor;
use gcloud_sdk::google::monitoring::v3 as m;
use tonic::{Request, Response, Status};
mod server {
    include!(concat!(
        env!("OUT_DIR"),
        "/google.monitoring.v3.MetricService.rs"
    ));
}
pub fn metric_server(
    store: MetricStore,
) -> server::metric_service_server::MetricServiceServer<Metrics> {
    server::metric_service_server::MetricServiceServer::new(Metrics { store })
}
pub struct Metrics {
    #[allow(dead_code)]
    store: MetricStore,
}
#[tonic::async_trait]
impl server::metric_service_server::MetricService for Metrics {
    async fn create_time_series(
        &self,
        _r: Request<m::CreateTimeSeriesRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn list_time_series(
        &self,
        _r: Request<m::ListTimeSeriesRequest>,
    ) -> Result<Response<m::ListTimeSeriesResponse>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn create_metric_descriptor(
        &self,
        _r: Request<m::CreateMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn get_metric_descriptor(
        &self,
        _r: Request<m::GetMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn list_metric_descriptors(
        &self,
        _r: Request<m::ListMetricDescriptorsRequest>,
    ) -> Result<Response<m::ListMetricDescriptorsResponse>, Status> {
        Err(Status::unimplemented("x"))
    }
}
