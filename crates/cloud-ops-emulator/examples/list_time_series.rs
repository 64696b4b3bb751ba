//! Reads one metric back from Cloud Monitoring's `ListTimeSeries` on an
//! emulator, the way `docs/monitoring.md` shows a real run.
//!
//! ```sh
//! cargo run --example list_time_series -- 127.0.0.1:8085 \
//!     workload.googleapis.com/http.server.request.duration [project]
//! ```
//!
//! Prints the request, then each series with its labels and newest point.

use std::time::{SystemTime, UNIX_EPOCH};

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::monitoring::v3::list_time_series_request::TimeSeriesView;
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google::monitoring::v3::{typed_value, ListTimeSeriesRequest, TimeInterval};
use prost_types::Timestamp;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1:8085".to_owned());
    let metric_type = args
        .next()
        .unwrap_or_else(|| "workload.googleapis.com/http.server.request.duration".to_owned());
    let project = args.next().unwrap_or_else(|| "local".to_owned());

    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let request = ListTimeSeriesRequest {
        name: format!("projects/{project}"),
        filter: format!("metric.type = \"{metric_type}\""),
        interval: Some(TimeInterval {
            start_time: Some(Timestamp {
                seconds: now - 3600,
                nanos: 0,
            }),
            end_time: Some(Timestamp {
                seconds: now,
                nanos: 0,
            }),
        }),
        view: TimeSeriesView::Full as i32,
        ..ListTimeSeriesRequest::default()
    };
    println!(
        "ListTimeSeries name={:?} filter={:?} interval=(now-1h, now]",
        request.name, request.filter
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{host}"))?
        .connect()
        .await?;
    let response = MetricServiceClient::new(channel)
        .list_time_series(request)
        .await?
        .into_inner();
    for series in response.time_series {
        let mut labels: Vec<_> = series
            .metric
            .map(|metric| metric.labels.into_iter().collect())
            .unwrap_or_default();
        labels.sort();
        let resource = series.resource.unwrap_or_default();
        let mut resource_labels: Vec<_> = resource.labels.into_iter().collect();
        resource_labels.sort();
        println!("- metric.labels {labels:?}");
        println!("  resource {} {resource_labels:?}", resource.r#type);
        println!(
            "  kind {} value_type {} points {}",
            MetricKind::try_from(series.metric_kind).map_or("?", |kind| kind.as_str_name()),
            ValueType::try_from(series.value_type).map_or("?", |value| value.as_str_name()),
            series.points.len()
        );
        let Some(newest) = series.points.first() else {
            continue;
        };
        let interval = newest.interval.unwrap_or_default();
        let seconds = |ts: Option<Timestamp>| ts.map(|ts| ts.seconds);
        println!(
            "  newest point: start {:?} end {:?}",
            seconds(interval.start_time),
            seconds(interval.end_time)
        );
        match newest.value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(typed_value::Value::DistributionValue(d)) => println!(
                "  count {} mean {:.6} sum_of_squared_deviation {:.6} bucket_counts {:?}",
                d.count, d.mean, d.sum_of_squared_deviation, d.bucket_counts
            ),
            Some(other) => println!("  value {other:?}"),
            None => println!("  no value"),
        }
    }
    Ok(())
}
