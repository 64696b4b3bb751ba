//! The cost of one request's metrics: what the middleware records for a
//! `GET /api/books/{id}` answered 200 (the `http.server.request.duration`
//! histogram and the running deviation the Cloud Monitoring exporter
//! reports beside it), into the service's own meter provider, installed as
//! the service installs it (Cloud Monitoring v3, the default). The periodic
//! export is set to an hour so that none runs during the measurement: its
//! cost is per export interval, not per request.
//!
//! The figure is this thread's CPU time per request, which other work on the
//! machine disturbs far less than wall-clock time.
//!
//! ```sh
//! cargo bench -p cloudrun-observability --bench metrics
//! ```

use std::sync::Arc;
use std::time::Duration;

use cloudrun_observability::config::Config;
use cloudrun_observability::telemetry::export::health::ExportHealth;
use cloudrun_observability::telemetry::metrics::{self, MetricExport};
use cloudrun_observability::telemetry::resource::InstanceIdentity;
use cloudrun_observability::telemetry::Endpoint;

const REQUESTS: u32 = 1_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let config = Config::from_lookup(|_| None).expect("default configuration");
        let identity = InstanceIdentity::detect(&config).await;
        let pipeline = metrics::install(
            &identity,
            // Nothing listens there, and no export runs within the hour.
            MetricExport::CloudMonitoring(Endpoint::Emulator("127.0.0.1:9".into())),
            Duration::from_secs(3600),
            Arc::new(ExportHealth::new("metrics")),
        )
        .expect("the pipeline installs");

        let routes = ["/api/books/{id}", "/api/books", "/api/orders"];
        let started = thread_cpu_time();
        for n in 0..REQUESTS {
            let latency = Duration::from_micros(200 + u64::from(n % 800));
            metrics::record_request("GET", routes[n as usize % routes.len()], 200, latency);
        }
        let elapsed = thread_cpu_time() - started;
        println!(
            "metrics: {:.3} us CPU per request's metrics (histogram + deviation, 3 routes, {REQUESTS} requests)",
            elapsed.as_secs_f64() * 1e6 / f64::from(REQUESTS)
        );
        drop(pipeline);
    });
}

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
