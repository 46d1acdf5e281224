//! The echo operator: reconciles `Echo` objects against the echo service, with one trace
//! from each watch event to the remote service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use echo_operator::operator::echo_client::{EchoClient, RetryConfig};
use echo_operator::operator::events::{EventRecorder, Reporter};
use echo_operator::operator::health::{self, Liveness, Readiness};
use echo_operator::operator::leader::{self, LeaseConfig, Role};
use echo_operator::operator::metrics::Metrics;
use echo_operator::operator::trace_links::TraceLinks;
use echo_operator::operator::{self, Backoff, Context, LoopConfig, api_tracing::ApiTracingLayer};
use echo_operator::shutdown::Stop;
use echo_operator::telemetry::{self, TelemetryConfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, client::ClientBuilder};
use tokio::sync::watch;
use tower::timeout::TimeoutLayer;

#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes operator for Echo objects, traced end to end"
)]
struct Args {
    /// Base URL of the echo service (http:// or https://).
    #[arg(
        long,
        env = "ECHO_URL",
        default_value = "http://echo-server.echo-tracing.svc:8080"
    )]
    echo_url: reqwest::Url,
    /// PEM file of certificate authorities to trust for an https:// echo URL, besides the
    /// system's.
    #[arg(long, env = "ECHO_CA_FILE")]
    echo_ca_file: Option<PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    health_listen: SocketAddr,
    /// Retries of one echo service call on 5xx and connection errors.
    #[arg(long, env = "ECHO_HTTP_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    http_retries: u32,
    /// Seconds one echo service call may take (objects may ask it to wait up to 10 s).
    #[arg(long, env = "ECHO_TIMEOUT_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    echo_timeout_seconds: u64,
    /// Seconds between reconciles of a healthy object.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    resync_seconds: u64,
    /// First delay after a failed reconcile, doubled on each further failure.
    #[arg(long, env = "ERROR_BACKOFF_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    error_backoff_seconds: u64,
    /// Longest delay after failed reconciles (at least ERROR_BACKOFF_SECONDS).
    #[arg(long, env = "MAX_ERROR_BACKOFF_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_error_backoff_seconds: u64,
    /// Reconciles running at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Longest one reconcile may take before it fails and is retried.
    #[arg(long, env = "RECONCILE_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    reconcile_timeout_seconds: u64,
    /// Longest one Kubernetes API request of a reconcile may take (the watch is not bound).
    #[arg(long, env = "API_TIMEOUT_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    api_timeout_seconds: u64,
    /// After SIGTERM, how long running reconciles may finish before they are abandoned.
    /// With the 5 s span flush after it, keep it below the pod's
    /// terminationGracePeriodSeconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    shutdown_grace_seconds: u64,
    /// Reconcile only while holding the Lease, so several replicas can run.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "echo-tracing")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "echo-operator")]
    lease_name: String,
    /// How long a renewal holds the Lease; a dead leader is replaced within about this.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_duration_seconds: u64,
}

/// Unique per replica: the pod name, else the host name and process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "echo-operator".to_owned());
        format!("{host}-{}", std::process::id())
    })
}

impl Args {
    /// Checks what a single flag's range cannot.
    fn validate(&self) -> Result<(), String> {
        if self.max_error_backoff_seconds < self.error_backoff_seconds {
            return Err(format!(
                "MAX_ERROR_BACKOFF_SECONDS ({}) must not be below ERROR_BACKOFF_SECONDS ({})",
                self.max_error_backoff_seconds, self.error_backoff_seconds
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot load a Kubernetes client configuration: {0}")]
    KubeConfig(#[from] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    KubeClient(#[from] kube::Error),
    #[error("cannot build the echo service client: {0}")]
    EchoClient(#[from] reqwest::Error),
    #[error(transparent)]
    CaBundle(#[from] echo_operator::tls::CaBundleError),
    #[error("cannot serve health endpoints on {addr}: {source}")]
    Health {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = args.validate() {
        eprintln!("operator: {problem}");
        return ExitCode::from(2);
    }
    let links = Arc::new(TraceLinks::default());
    let telemetry = match telemetry::init(
        &TelemetryConfig::from_env("echo-operator"),
        Some(links.clone()),
    ) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new(&telemetry.span_counters()));
    let code = match run(args, links, metrics).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "operator failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn run(args: Args, links: Arc<TraceLinks>, metrics: Arc<Metrics>) -> Result<(), RunError> {
    // First: a SIGTERM during start-up must already find the handler in place.
    let stop = Stop::on(echo_operator::shutdown::signal());
    echo_operator::shutdown::exit_on_second_signal();
    let config = kube::Config::infer().await?;
    let identity = identity();
    let tracing_layer = ApiTracingLayer::new(config.cluster_url.clone());
    // Two clients: the watch is a long poll that must not time out, while every request a
    // reconcile makes is bounded.
    let watch_client = ClientBuilder::try_from(config.clone())?
        .with_layer(&tracing_layer)
        .build();
    let client = ClientBuilder::try_from(config)?
        .with_layer(&TimeoutLayer::new(Duration::from_secs(
            args.api_timeout_seconds,
        )))
        .with_layer(&tracing_layer)
        .build();
    let reporter = Reporter {
        controller: "echo-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let extra_ca = match &args.echo_ca_file {
        Some(path) => Some(echo_operator::tls::read_ca_bundle(path)?),
        None => None,
    };
    let reconcile_timeout = Duration::from_secs(args.reconcile_timeout_seconds);
    let liveness = Liveness::new(reconcile_timeout * 2);
    let ctx = Arc::new(Context {
        echo: EchoClient::new(
            args.echo_url.clone(),
            &RetryConfig {
                max_retries: args.http_retries,
                attempt_timeout: Duration::from_secs(args.echo_timeout_seconds),
                ..RetryConfig::default()
            },
            extra_ca.as_deref(),
        )?
        .with_metrics(metrics.clone())
        .with_identity(&identity),
        recorder: EventRecorder::new(client.clone(), reporter),
        client,
        links: links.clone(),
        backoff: Backoff::new(
            Duration::from_secs(args.error_backoff_seconds),
            Duration::from_secs(args.max_error_backoff_seconds),
        ),
        resync: Duration::from_secs(args.resync_seconds),
        reconcile_timeout,
        liveness: liveness.clone(),
        metrics: metrics.clone(),
    });

    let readiness = Readiness::with_role(!args.leader_election);
    let listener = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .map_err(|source| RunError::Health {
            addr: args.health_listen,
            source,
        })?;
    let health_router = health::router(readiness.clone(), ctx.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, health_router).await {
            tracing::error!(error = %err, "health endpoint stopped");
        }
    });

    let api: Api<echo_operator::crd::Echo> = match &args.namespace {
        Some(namespace) => Api::namespaced(watch_client, namespace),
        None => Api::all(watch_client),
    };
    let (role_tx, roles) = watch::channel(if args.leader_election {
        Role::Follower { leader: None }
    } else {
        Role::Leader
    });
    let (campaign_stop_tx, campaign_stop) = tokio::sync::oneshot::channel::<()>();
    let campaign = args.leader_election.then(|| {
        let config = LeaseConfig::new(
            args.lease_namespace.clone(),
            args.lease_name.clone(),
            identity.clone(),
            Duration::from_secs(args.lease_duration_seconds),
        );
        let leases = Api::namespaced(ctx.client.clone(), &args.lease_namespace);
        tokio::spawn(leader::campaign(
            leases,
            config,
            role_tx.clone(),
            async move {
                let _ = campaign_stop.await;
            },
        ))
    });
    tracing::info!(
        echo_url = %args.echo_url,
        namespace = args.namespace.as_deref().unwrap_or("<all>"),
        concurrency = args.concurrency,
        "operator started"
    );
    let loop_config = LoopConfig {
        concurrency: args.concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        ..LoopConfig::default()
    };
    let watch = || watcher(api.clone(), watcher::Config::default()).default_backoff();
    operator::run_while_leading(roles, watch, ctx, loop_config, readiness, stop).await;
    // Only now, with no reconcile left running, may another replica take over.
    let _ = campaign_stop_tx.send(());
    if let Some(campaign) = campaign {
        let _ = tokio::time::timeout(Duration::from_secs(3), campaign).await;
    }
    drop(role_tx);
    tracing::info!("operator stopped");
    Ok(())
}
