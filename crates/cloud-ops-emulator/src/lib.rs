//! # cloud-ops-emulator
//!
//! A local stand-in for Google Cloud Observability: Cloud Trace, Cloud
//! Monitoring, Cloud Logging's log-based metrics, uptime checks and alerting.
//!
//! Nobody on the project can reach Google Cloud, so this emulator receives
//! what our exporters would send to Google, validates it with Google's rules
//! and error wording, and keeps it in bounded memory so it can be read back
//! through the same APIs Google's clients use (Cloud Trace v1 reads,
//! Monitoring `ListTimeSeries`).
//!
//! One port serves gRPC (HTTP/2 cleartext, prior knowledge) and plain HTTP/1
//! routes: the tonic services are turned into an axum [`Router`] and merged
//! with a JSON status and the web [`console`], which also shows the log
//! lines kept in the [`LogStore`].
//!
//! The same router also takes OTLP ([`otlp`]), as Google's Telemetry API
//! does: traces, metrics and logs over gRPC and HTTP. A standalone emulator
//! also listens on OTLP's standard ports (4317 gRPC, 4318 HTTP) so that
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317` just works.

pub mod alerting;
pub(crate) mod cli;
pub mod console;
pub(crate) mod deadline;
pub(crate) mod footprint;
pub(crate) mod grpc;
pub(crate) mod guard;
pub(crate) mod json;
pub mod logging;
pub mod monitoring;
pub mod otlp;
pub(crate) mod status;
pub mod terraform;
pub mod time;
pub mod trace;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use cli::EmulatorArgs;
pub use logging::LogStore;
pub use monitoring::MetricStore;
pub use trace::TraceStore;

/// Environment variable naming the emulator a client should talk to instead
/// of Google (`host:port`, plaintext, no credentials).
pub const EMULATOR_HOST_ENV: &str = "CLOUD_OPS_EMULATOR_HOST";

/// The `host:port` of an emulator from [`EMULATOR_HOST_ENV`], if set and non-empty.
pub fn emulator_host_from_env() -> Option<String> {
    std::env::var(EMULATOR_HOST_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// How the emulator listens and how much it keeps in memory.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; loopback by default because the emulator has no auth.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free port (tests, embedded use).
    pub port: u16,
    /// Spans kept in memory; the oldest are dropped (and counted) beyond it.
    pub max_spans: usize,
    /// Estimated bytes of spans kept; the oldest are dropped beyond it.
    pub max_span_bytes: usize,
    /// Metric points kept in memory over all series; oldest dropped first.
    pub max_points: usize,
    /// Estimated bytes of metric series and points kept; the oldest points
    /// (and series left without points) are dropped beyond it.
    pub max_metric_bytes: usize,
    /// Minimum time between two points of one series (M8). Google documents 5 s.
    pub min_sampling_period: Duration,
    /// Log entries kept for the console; the oldest are dropped beyond it.
    pub max_log_entries: usize,
    /// Estimated bytes of parsed log entries kept for the console; the
    /// oldest go first beyond it.
    pub max_log_bytes: usize,
    /// The Cloud Run service the log lines come from: their `resource`.
    pub log_source: logging::store::LogSource,
    /// Evaluate the deployment's Terraform monitoring (log-based metrics,
    /// uptime checks, alert policies) against what the emulator receives.
    pub alerting: Option<alerting::AlertingConfig>,
    /// Also serve OTLP (gRPC, and HTTP too) on this port of `host`: `None`
    /// off, 0 a random port. OTLP is always served on `port` as well. A
    /// port that is taken is a warning, not a failure.
    pub otlp_grpc_port: Option<u16>,
    /// Also serve OTLP/HTTP (and gRPC too) on this port; as `otlp_grpc_port`.
    pub otlp_http_port: Option<u16>,
    /// The project of OTLP data whose resource has no `gcp.project_id`;
    /// `None` rejects such data, as Google does.
    pub otlp_default_project: Option<String>,
    /// How long a console page may search the stores; past it the page
    /// shows what it found and says it was cut short.
    pub console_page_budget: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8085,
            max_spans: 100_000,
            max_span_bytes: trace::store::DEFAULT_MAX_BYTES,
            max_points: 1_000_000,
            max_metric_bytes: monitoring::store::DEFAULT_MAX_BYTES,
            min_sampling_period: Duration::from_secs(5),
            max_log_entries: 20_000,
            max_log_bytes: 64 * 1024 * 1024,
            log_source: logging::store::LogSource::default(),
            alerting: None,
            otlp_grpc_port: None,
            otlp_http_port: None,
            otlp_default_project: None,
            console_page_budget: console::DEFAULT_PAGE_BUDGET,
        }
    }
}

impl EmulatorConfig {
    /// The emulator a service starts for itself when it has no Google
    /// project: on the usual port, its log entries attributed to
    /// `service_name`, evaluating `terraform_dir`'s monitoring when given.
    /// It takes OTLP on its own port only, not on 4317/4318: two local
    /// services would fight over those, and a standalone emulator may
    /// already hold them.
    pub fn embedded(
        service_name: &str,
        terraform_dir: Option<std::path::PathBuf>,
        time_scale: time::scale::TimeScale,
        project: &str,
    ) -> Self {
        Self {
            alerting: terraform_dir.map(|dir| {
                alerting::AlertingConfig::new(
                    dir,
                    terraform::VariableInputs::default(),
                    time_scale,
                    project.to_owned(),
                )
            }),
            log_source: logging::store::LogSource::local(service_name),
            ..Self::default()
        }
    }
}

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot bind the emulator to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the emulator's local address: {0}")]
    LocalAddr(std::io::Error),
    #[error("the emulator server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot wait for the shutdown signal: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Alerting(#[from] alerting::AlertingError),
    #[error("cannot start the emulator's own runtime: {0}")]
    Runtime(std::io::Error),
}

/// Cheap clonable handle to everything the emulator has stored.
#[derive(Debug, Clone)]
pub struct EmulatorStore {
    pub traces: TraceStore,
    pub metrics: MetricStore,
    pub logs: LogStore,
    /// How long a console page may search the stores before it shows what
    /// it found and says it was cut short.
    pub page_budget: Duration,
    /// The Terraform monitoring, when loaded.
    pub alerting: Option<alerting::AlertingHandle>,
}

impl EmulatorStore {
    /// Empty stores sized by `config`. With a time scale, the sampling limit
    /// (M8) shrinks with every other monitoring period.
    pub fn new(config: &EmulatorConfig) -> Self {
        let scale = config
            .alerting
            .as_ref()
            .map_or(time::scale::TimeScale::REAL_TIME, |a| a.time_scale);
        Self {
            traces: TraceStore::new(config.max_spans).with_max_bytes(config.max_span_bytes),
            metrics: MetricStore::new(config.max_points, scale.scale(config.min_sampling_period))
                .with_max_bytes(config.max_metric_bytes),
            logs: LogStore::with_source(
                config.max_log_entries,
                config.max_log_bytes,
                config.log_source.clone(),
            ),
            page_budget: config.console_page_budget,
            alerting: None,
        }
    }
}

/// Entry point: see [`Emulator::start`].
pub struct Emulator;

impl Emulator {
    /// Binds the listener (so the port is known before serving) and spawns the server task.
    ///
    /// # Errors
    /// [`EmulatorError::Bind`] when the address is taken or not allowed.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
        let mut store = EmulatorStore::new(&config);
        if let Some(alerting_config) = &config.alerting {
            let monitoring = alerting::load(alerting_config)?;
            let handle = alerting::start(
                monitoring,
                alerting_config,
                store.clone(),
                format!("http://{local_addr}"),
            );
            for line in handle.summary_lines() {
                tracing::info!("{line}");
            }
            store.alerting = Some(handle);
        }
        let ingest = otlp::OtlpIngest::new(store.clone(), config.otlp_default_project.clone());
        let app = guard::protect(router_with(store.clone(), &ingest), config.host);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, stop_rx));
        tracing::info!(%local_addr, "Cloud Trace / Cloud Monitoring emulator listening");
        let mut extra = Vec::new();
        let mut otlp_addrs = [None, None];
        let mut otlp_warnings = Vec::new();
        for (slot, port) in [config.otlp_grpc_port, config.otlp_http_port]
            .into_iter()
            .enumerate()
        {
            let Some(port) = port else { continue };
            let addr = SocketAddr::new(config.host, port);
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let bound = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
                    let (tx, rx) = oneshot::channel::<()>();
                    extra.push((
                        tx,
                        tokio::spawn(serve(
                            listener,
                            guard::protect(otlp::routes(&ingest), config.host),
                            rx,
                        )),
                    ));
                    otlp_addrs[slot] = Some(bound);
                }
                Err(error) => {
                    let warning = format!(
                        "cannot listen for OTLP on {addr} ({error}); OTLP is still served on {local_addr}"
                    );
                    tracing::warn!(%addr, cause = %error, "{warning}");
                    otlp_warnings.push(warning);
                }
            }
        }
        Ok(RunningEmulator {
            local_addr,
            otlp_grpc_addr: otlp_addrs[0],
            otlp_http_addr: otlp_addrs[1],
            otlp_warnings,
            store,
            stop: stop_tx,
            task,
            extra,
            runtime: None,
        })
    }

    /// [`Emulator::start`] on a runtime and threads of its own, for an
    /// emulator embedded in another program: a console page over 100 000
    /// spans or a flood of posted log lines then takes the emulator's two
    /// worker threads, never the host program's. The runtime ends when the
    /// returned emulator is shut down or dropped.
    ///
    /// # Errors
    /// As [`Emulator::start`], or [`EmulatorError::Runtime`] when the
    /// thread or runtime cannot be created.
    pub async fn start_isolated(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        let (started_tx, started_rx) = oneshot::channel();
        let (keep_tx, keep_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emulator")
            .on_thread_start(yield_to_the_host)
            .enable_all()
            .build()
            .map_err(EmulatorError::Runtime)?;
        std::thread::Builder::new()
            .name("emulator-runtime".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let started = Emulator::start(config).await;
                    let failed = started.is_err();
                    let _ = started_tx.send(started);
                    if !failed {
                        // Until the RunningEmulator (holding keep_tx) is gone.
                        let _ = keep_rx.await;
                    }
                });
            })
            .map_err(EmulatorError::Runtime)?;
        let mut running = started_rx.await.map_err(|_| {
            EmulatorError::Runtime(std::io::Error::other("the emulator's thread ended"))
        })??;
        running.runtime = Some(keep_tx);
        Ok(running)
    }

    /// Runs the emulator standalone until Ctrl-C or SIGTERM, printing where it
    /// listens; with `logs_from_stdin`, every stdin line is a log entry for
    /// the console (`service | emulator --logs -`).
    ///
    /// # Errors
    /// Binding or serving failures, see [`EmulatorError`].
    pub async fn run_until_signal(
        config: EmulatorConfig,
        logs_from_stdin: bool,
    ) -> Result<(), EmulatorError> {
        let config_hint = config.otlp_default_project.clone();
        let running = Self::start(config).await?;
        println!(
            "Cloud Trace / Cloud Monitoring emulator listening on {addr} \
             (gRPC h2c and http://{addr}/); export {EMULATOR_HOST_ENV}={addr}",
            addr = running.local_addr()
        );
        for line in running.otlp_summary(&config_hint) {
            println!("{line}");
        }
        if let Some(alerting) = &running.store.alerting {
            for line in alerting.summary_lines() {
                println!("{line}");
            }
            println!("incidents: http://{}/incidents", running.local_addr());
        }
        if logs_from_stdin {
            let logs = running.store().logs;
            // Blocking reads on their own thread; when stdin ends (the piped
            // service stopped) the emulator keeps serving what it has.
            tokio::task::spawn_blocking(move || {
                if let Err(error) = logs.ingest_reader(std::io::stdin().lock()) {
                    eprintln!("emulator: stopped reading logs from stdin: {error}");
                }
            });
        }
        wait_for_signal().await?;
        running.shutdown().await;
        Ok(())
    }
}

/// Lowers the calling thread's scheduling priority (nice 10), so that
/// when the emulator and its host program want the same cores, the host
/// (the service being developed) wins: the emulator's pages and ingest may
/// slow down, the service's requests do not. Linux sets nice per thread.
fn yield_to_the_host() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and id 0 changes only the
    // calling thread's nice value; it touches no memory.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

async fn serve(
    listener: TcpListener,
    app: Router,
    stop: oneshot::Receiver<()>,
) -> Result<(), EmulatorError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await
        .map_err(EmulatorError::Serve)
}

async fn wait_for_signal() -> Result<(), EmulatorError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(EmulatorError::Signal)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(EmulatorError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(EmulatorError::Signal)
    }
}

/// A started emulator; dropping it without [`RunningEmulator::shutdown`] leaves
/// the server task running until the runtime stops.
#[derive(Debug)]
pub struct RunningEmulator {
    local_addr: SocketAddr,
    otlp_grpc_addr: Option<SocketAddr>,
    otlp_http_addr: Option<SocketAddr>,
    /// Why an OTLP port could not be used (it was taken), for the start-up lines.
    otlp_warnings: Vec<String>,
    store: EmulatorStore,
    stop: oneshot::Sender<()>,
    task: ServerTask,
    /// The OTLP listeners on their own ports, with their stop signals.
    extra: Vec<(oneshot::Sender<()>, ServerTask)>,
    /// With [`Emulator::start_isolated`]: dropped with the emulator, which
    /// lets its runtime's thread end.
    runtime: Option<oneshot::Sender<()>>,
}

/// One listener's server, running until its stop signal.
type ServerTask = JoinHandle<Result<(), EmulatorError>>;

impl RunningEmulator {
    /// Where the emulator listens (gRPC and HTTP on the same port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where OTLP's own gRPC port listens (`otlp_grpc_port`), if it could bind.
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc_addr
    }

    /// Where OTLP's own HTTP port listens (`otlp_http_port`), if it could bind.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http_addr
    }

    /// What a person starting the emulator needs to know about OTLP: where
    /// it listens and how the project is chosen.
    fn otlp_summary(&self, default_project: &Option<String>) -> Vec<String> {
        let mut lines = vec![format!(
            "OTLP (gRPC, HTTP/protobuf, HTTP/JSON) on {}{}{}",
            self.local_addr,
            self.otlp_grpc_addr
                .map(|a| format!(", gRPC port {a}"))
                .unwrap_or_default(),
            self.otlp_http_addr
                .map(|a| format!(", HTTP port {a}"))
                .unwrap_or_default(),
        )];
        lines.extend(self.otlp_warnings.iter().map(|w| format!("  warning: {w}")));
        if let Some(addr) = self.otlp_grpc_addr {
            lines.push(format!(
                "  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{addr} OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
            ));
        }
        lines.push(match default_project {
            Some(project) => format!(
                "  OTLP data without resource attribute gcp.project_id goes to project {project} (--otlp-project)"
            ),
            None => "  OTLP data must name its project, as Google requires: \
                     OTEL_RESOURCE_ATTRIBUTES=gcp.project_id=local (or start with --otlp-project local)"
                .to_owned(),
        });
        lines
    }

    /// Handle to the stored spans, series and counters.
    pub fn store(&self) -> EmulatorStore {
        self.store.clone()
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(self) {
        if let Some(alerting) = &self.store.alerting {
            alerting.stop();
        }
        let _ = self.stop.send(());
        let mut tasks = vec![self.task];
        for (stop, task) in self.extra {
            let _ = stop.send(());
            tasks.push(task);
        }
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(cause = %error, "emulator stopped with an error"),
                Err(error) => tracing::error!(cause = %error, "emulator task failed"),
            }
        }
    }
}

/// The emulator's whole HTTP surface: gRPC services, OTLP, `GET /api/status` and
/// the web console (`/`, `/logs`, `/traces`, `/metrics`, `/errors`,
/// `/incidents`, `POST /api/logs`, `GET /api/incidents`). OTLP data
/// without `gcp.project_id` is rejected; see [`router_with`].
pub fn router(store: EmulatorStore) -> Router {
    let ingest = otlp::OtlpIngest::new(store.clone(), None);
    router_with(store, &ingest)
}

/// [`router`] with OTLP ingested by `ingest` (which may name a default project).
pub fn router_with(store: EmulatorStore, ingest: &otlp::OtlpIngest) -> Router {
    let grpc = tonic::service::Routes::new(trace::service::trace_v2_server(store.traces.clone()))
        .add_service(trace::service::trace_v1_server(store.traces.clone()))
        .add_service(monitoring::service::metric_server(store.metrics.clone()));
    let grpc = otlp::grpc::add_services(grpc, ingest).into_axum_router();
    status::routes(store.clone())
        .merge(console::routes(store))
        .merge(grpc)
        .merge(otlp::http::routes(ingest))
        .fallback(guard::not_found)
}
