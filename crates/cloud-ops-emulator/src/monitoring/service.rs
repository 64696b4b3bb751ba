//! The `google.monitoring.v3.MetricService` gRPC service.
//!
//! Writes (`CreateTimeSeries`, `CreateMetricDescriptor`) are validated with
//! Google's rules and wording; reads (`ListTimeSeries`, `GetMetricDescriptor`,
//! `ListMetricDescriptors`) answer from the [`MetricStore`], with filters and
//! aggregation as Monitoring applies them.

use gcloud_sdk::google::api::MetricDescriptor;
use gcloud_sdk::google::monitoring::v3::{
    create_time_series_summary, list_time_series_request::TimeSeriesView,
    CreateMetricDescriptorRequest, CreateTimeSeriesRequest, CreateTimeSeriesSummary,
    GetMetricDescriptorRequest, ListMetricDescriptorsRequest, ListMetricDescriptorsResponse,
    ListTimeSeriesRequest, ListTimeSeriesResponse, TimeSeries,
};
use gcloud_sdk::google::rpc;
use prost::Message;
use tonic::{Code, Request, Response, Status};

use crate::deadline::{read_off_the_runtime, Deadline};
use crate::grpc::{bounded, clip_message, clip_to, Page, MAX_QUOTED_BYTES};
use crate::monitoring::aggregation::{parse_spec, read_by, AggregationError};
use crate::monitoring::filter::{self, Filter, Selector};
use crate::monitoring::store::{MetricStore, WriteOutcome};
use crate::monitoring::validation::{
    check_request_size, envelope, parse_project, validate_descriptor,
};
use crate::time::timestamp::{self, now_nanos};

const DEFAULT_PAGE_SIZE: usize = 100_000;

/// How Monitoring words a page token it cannot read.
fn invalid_page_token(token: &str) -> String {
    format!("Field pageToken had an invalid value of \"{token}\".")
}

/// The `google.monitoring.v3.MetricService` server over `store`.
pub fn metric_server(
    store: MetricStore,
) -> crate::grpc::metric_v3::metric_service_server::MetricServiceServer<MetricService> {
    crate::grpc::metric_v3::metric_service_server::MetricServiceServer::new(MetricService { store })
}

/// Implements the emulated `MetricService` methods.
#[derive(Debug, Clone)]
pub struct MetricService {
    store: MetricStore,
}

#[tonic::async_trait]
impl crate::grpc::metric_v3::metric_service_server::MetricService for MetricService {
    async fn create_time_series(
        &self,
        request: Request<CreateTimeSeriesRequest>,
    ) -> Result<Response<()>, Status> {
        self.handle_create_time_series(request).map_err(bounded)
    }

    async fn list_time_series(
        &self,
        request: Request<ListTimeSeriesRequest>,
    ) -> Result<Response<ListTimeSeriesResponse>, Status> {
        read_off_the_runtime(self.store.clone(), request, list_time_series)
            .await?
            .map(Response::new)
            .map_err(bounded)
    }

    async fn create_metric_descriptor(
        &self,
        request: Request<CreateMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        self.handle_create_metric_descriptor(request)
            .map_err(bounded)
    }

    async fn get_metric_descriptor(
        &self,
        request: Request<GetMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        self.handle_get_metric_descriptor(request).map_err(bounded)
    }

    async fn list_metric_descriptors(
        &self,
        request: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        // Descriptors are never evicted: a filter over many of them is a
        // long read, computed as `ListTimeSeries` is.
        read_off_the_runtime(self.store.clone(), request, list_metric_descriptors)
            .await?
            .map(Response::new)
            .map_err(bounded)
    }
}

/// The methods; their errors are [`bounded`] on the way out.
impl MetricService {
    fn handle_create_time_series(
        &self,
        request: Request<CreateTimeSeriesRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        let project = parse_project(&request.name)
            .and_then(|p| check_request_size(request.time_series.len()).map(|()| p))
            .map_err(|e| {
                self.store.record_rejected();
                Status::invalid_argument(e.to_string())
            })?;
        let outcome = self
            .store
            .write(&project, &request.time_series, now_nanos());
        if outcome.errors.is_empty() {
            Ok(Response::new(()))
        } else {
            Err(partial_failure(&request.time_series, &outcome))
        }
    }

    fn handle_create_metric_descriptor(
        &self,
        request: Request<CreateMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        let request = request.into_inner();
        let project =
            parse_project(&request.name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let descriptor = request
            .metric_descriptor
            .ok_or_else(|| Status::invalid_argument("Field metricDescriptor is required."))?;
        validate_descriptor(&descriptor).map_err(Status::invalid_argument)?;
        Ok(Response::new(
            self.store.upsert_descriptor(&project, descriptor),
        ))
    }

    fn handle_get_metric_descriptor(
        &self,
        request: Request<GetMetricDescriptorRequest>,
    ) -> Result<Response<MetricDescriptor>, Status> {
        let name = request.into_inner().name;
        let (project, metric_type) = parse_descriptor_name(&name)?;
        self.store
            .descriptor(project, metric_type)
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "Could not find descriptor for metric '{metric_type}'."
                ))
            })
    }
}

/// M1: INVALID_ARGUMENT with the envelope message and, in the details, a
/// `google.rpc.Status` carrying a `CreateTimeSeriesSummary` as Google sends.
fn partial_failure(series: &[TimeSeries], outcome: &WriteOutcome) -> Status {
    let message = clip_message(&envelope(&outcome.errors));
    let summary = CreateTimeSeriesSummary {
        total_point_count: count(series.iter().map(|s| s.points.len()).sum()),
        success_point_count: count(outcome.points_written),
        errors: vec![create_time_series_summary::Error {
            status: Some(rpc::Status {
                code: Code::InvalidArgument as i32,
                ..rpc::Status::default()
            }),
            point_count: count(
                outcome
                    .errors
                    .iter()
                    .map(|(i, _)| series[*i].points.len())
                    .sum(),
            ),
        }],
    };
    let details = rpc::Status {
        code: Code::InvalidArgument as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary".into(),
            value: summary.encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::InvalidArgument,
        message,
        details.encode_to_vec().into(),
    )
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn parse_descriptor_name(name: &str) -> Result<(&str, &str), Status> {
    name.strip_prefix("projects/")
        .and_then(|rest| rest.split_once("/metricDescriptors/"))
        .filter(|(p, t)| !p.is_empty() && !t.is_empty())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "Field name had an invalid value of \"{name}\": expected projects/[PROJECT_ID]/metricDescriptors/[METRIC_TYPE]."
            ))
        })
}

fn parse_filter(text: &str) -> Result<Filter, Status> {
    filter::parse(text).map_err(|e| {
        Status::invalid_argument(format!(
            "Field filter had an invalid value of \"{}\": {e}",
            clip_to(text, MAX_QUOTED_BYTES)
        ))
    })
}

fn list_metric_descriptors(
    store: &MetricStore,
    request: ListMetricDescriptorsRequest,
    deadline: Deadline,
) -> Result<ListMetricDescriptorsResponse, Status> {
    let project =
        parse_project(&request.name).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let filter = match request.filter.trim() {
        "" => None,
        text => Some(parse_filter(text)?),
    };
    let all = store
        .descriptors_by(&project, filter.as_ref(), deadline)
        .map_err(|e| {
            store.record_read_timeout();
            Status::from(e)
        })?;
    let (metric_descriptors, next_page_token) = Page::read(
        &request.page_token,
        request.page_size,
        DEFAULT_PAGE_SIZE,
        usize::MAX,
        invalid_page_token,
    )?
    .take(all);
    Ok(ListMetricDescriptorsResponse {
        metric_descriptors,
        next_page_token,
    })
}

fn list_time_series(
    store: &MetricStore,
    request: ListTimeSeriesRequest,
    deadline: Deadline,
) -> Result<ListTimeSeriesResponse, Status> {
    let project =
        parse_project(&request.name).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let filter = parse_time_series_filter(&request.filter)?;
    let (start, end) = read_interval(&request)?;
    let spec = parse_spec(request.aggregation.as_ref())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut out = read_by(
        store,
        &project,
        &filter,
        (start, end),
        spec.as_ref(),
        deadline,
    )
    .map_err(|e| match e {
        AggregationError::Deadline(e) => {
            store.record_read_timeout();
            Status::from(e)
        }
        e => Status::invalid_argument(e.to_string()),
    })?;
    if TimeSeriesView::try_from(request.view) == Ok(TimeSeriesView::Headers) {
        out.iter_mut().for_each(|s| s.points.clear());
    }
    let (time_series, next_page_token) = Page::read(
        &request.page_token,
        request.page_size,
        DEFAULT_PAGE_SIZE,
        usize::MAX,
        invalid_page_token,
    )?
    .take(out);
    Ok(ListTimeSeriesResponse {
        time_series,
        next_page_token,
        ..ListTimeSeriesResponse::default()
    })
}

/// M16: a filter is required and must name exactly one metric type.
fn parse_time_series_filter(text: &str) -> Result<Filter, Status> {
    if text.trim().is_empty() {
        return Err(Status::invalid_argument(
            "Field filter had an invalid value of \"\": A filter is required.",
        ));
    }
    let filter = parse_filter(text)?;
    if filter.metric_types().len() != 1 || filter.count_selector(&Selector::MetricType) != 1 {
        return Err(Status::invalid_argument(format!(
            "Field filter had an invalid value of \"{text}\": The filter must specify exactly one metric type, as metric.type = \"...\"."
        )));
    }
    Ok(filter)
}

/// M16: `(start, end]`; without a start, the instant `end`.
fn read_interval(request: &ListTimeSeriesRequest) -> Result<(i64, i64), Status> {
    let interval = request.interval.as_ref();
    let end_ts = interval
        .and_then(|i| i.end_time.as_ref())
        .ok_or_else(|| Status::invalid_argument("Field interval.endTime is required."))?;
    let bad = |field: &str, e: timestamp::TimestampError| {
        Status::invalid_argument(format!("Field interval.{field} had an invalid value: {e}."))
    };
    let end = timestamp::to_nanos(end_ts).map_err(|e| bad("endTime", e))?;
    let start = match interval.and_then(|i| i.start_time.as_ref()) {
        Some(ts) => timestamp::to_nanos(ts).map_err(|e| bad("startTime", e))?,
        None => end.saturating_sub(1),
    };
    if start > end {
        return Err(Status::invalid_argument("Field interval.startTime had an invalid value: The start time must not be after the end time."));
    }
    Ok((start, end))
}
