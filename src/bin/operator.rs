//! The echo operator: reconciles `Echo` objects against the echo service, with one trace
//! from each watch event to the remote service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use echo_operator::crd::Echo;
use echo_operator::operator::calls::api_tracing::ApiTracingLayer;
use echo_operator::operator::calls::bounded::BoundUnlessWatchLayer;
use echo_operator::operator::calls::echo_client::RetryConfig;
use echo_operator::operator::process::health::{self, Readiness};
use echo_operator::operator::process::leader::{self, Election, Fence, LeaseConfig};
use echo_operator::operator::process::metrics::Metrics;
use echo_operator::operator::watch::watched::{self, Watched};
use echo_operator::operator::{self, LoopConfig, Settings};
use echo_operator::shutdown::{self, Stop};
use echo_operator::telemetry::{self, TelemetryConfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, client::ClientBuilder};
use tower::timeout::TimeoutLayer;

#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes operator for Echo objects, traced end to end"
)]
struct Args {
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    health_listen: SocketAddr,
    #[command(flatten)]
    echo: EchoArgs,
    #[command(flatten)]
    reconcile: ReconcileArgs,
    #[command(flatten)]
    lease: LeaseArgs,
}

/// The echo service and how it is called.
#[derive(clap::Args)]
struct EchoArgs {
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
    /// Retries of one echo service call on 5xx and connection errors.
    #[arg(long, env = "ECHO_HTTP_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    http_retries: u32,
    /// Seconds one echo service call may take (objects may ask it to wait up to 10 s).
    #[arg(long, env = "ECHO_TIMEOUT_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    echo_timeout_seconds: u64,
}

/// What is reconciled, how often, and within which bounds.
#[derive(clap::Args)]
struct ReconcileArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
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
    /// Longest the watch's LIST (and any request of its client but the watch itself) may
    /// take; a stalled one is retried with backoff.
    #[arg(long, env = "LIST_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    list_timeout_seconds: u64,
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
}

/// Leader election between replicas.
#[derive(clap::Args)]
struct LeaseArgs {
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

impl Args {
    /// Checks what a single flag's range cannot.
    fn validate(&self) -> Result<(), String> {
        let r = &self.reconcile;
        if r.max_error_backoff_seconds < r.error_backoff_seconds {
            return Err(format!(
                "MAX_ERROR_BACKOFF_SECONDS ({}) must not be below ERROR_BACKOFF_SECONDS ({})",
                r.max_error_backoff_seconds, r.error_backoff_seconds
            ));
        }
        Ok(())
    }

    /// The operator's settings, reading the echo service's CA bundle if one is named.
    fn settings(&self, identity: &str) -> Result<Settings, RunError> {
        let echo_ca = match &self.echo.echo_ca_file {
            Some(path) => Some(echo_operator::tls::read_ca_bundle(path)?),
            None => None,
        };
        let r = &self.reconcile;
        Ok(Settings {
            echo_ca,
            echo_retry: RetryConfig {
                max_retries: self.echo.http_retries,
                attempt_timeout: Duration::from_secs(self.echo.echo_timeout_seconds),
                ..RetryConfig::default()
            },
            identity: Some(identity.to_owned()),
            resync: Duration::from_secs(r.resync_seconds),
            error_backoff: Duration::from_secs(r.error_backoff_seconds),
            max_error_backoff: Duration::from_secs(r.max_error_backoff_seconds),
            reconcile_timeout: Duration::from_secs(r.reconcile_timeout_seconds),
            api_timeout: Duration::from_secs(r.api_timeout_seconds),
            ..Settings::new(self.echo.echo_url.clone())
        })
    }

    fn loop_config(&self) -> LoopConfig {
        LoopConfig {
            concurrency: self.reconcile.concurrency,
            shutdown_grace: Duration::from_secs(self.reconcile.shutdown_grace_seconds),
            ..LoopConfig::default()
        }
    }

    /// The fence every write of a reconcile checks: open for good without leader election,
    /// else open only while this replica's lease term runs.
    fn fence(&self) -> Fence {
        if self.lease.leader_election {
            Fence::closed()
        } else {
            Fence::always_open()
        }
    }

    /// Campaigns for the Lease with `client`, keeping `fence` at this replica's deadline,
    /// unless leader election is off.
    fn election(&self, client: kube::Client, identity: String, fence: Fence) -> Election {
        let lease = &self.lease;
        if !lease.leader_election {
            return Election::always_lead();
        }
        let config = LeaseConfig::new(
            lease.lease_namespace.clone(),
            lease.lease_name.clone(),
            identity,
            Duration::from_secs(lease.lease_duration_seconds),
        );
        Election::start(
            Api::namespaced(client, &lease.lease_namespace),
            config,
            fence,
        )
    }
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
    let telemetry = match telemetry::init(&TelemetryConfig::from_env("echo-operator")) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new(&telemetry.span_counters()));
    let code = match run(args, metrics).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "operator failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// Two clients over one configuration: the watch is a long poll that must not time out
/// (its LIST is bounded by `list_timeout`), while every request a reconcile makes is
/// bounded by `api_timeout`. Both trace their requests and send `traceparent` to the API
/// server.
fn clients(
    config: kube::Config,
    api_timeout: Duration,
    list_timeout: Duration,
) -> Result<(kube::Client, kube::Client), RunError> {
    let tracing_layer = ApiTracingLayer::new(config.cluster_url.clone());
    let watch_client = ClientBuilder::try_from(config.clone())?
        .with_layer(&BoundUnlessWatchLayer::new(list_timeout))
        .with_layer(&tracing_layer)
        .build();
    let client = ClientBuilder::try_from(config)?
        .with_layer(&TimeoutLayer::new(api_timeout))
        .with_layer(&tracing_layer)
        .build();
    Ok((watch_client, client))
}

async fn run(args: Args, metrics: Arc<Metrics>) -> Result<(), RunError> {
    // First: a SIGTERM during start-up must already find the handler in place.
    let stop = Stop::on(shutdown::signal());
    shutdown::exit_on_second_signal();
    let identity = identity();
    let settings = args.settings(&identity)?;
    let list_timeout = Duration::from_secs(args.reconcile.list_timeout_seconds);
    let config = kube::Config::infer().await?;
    let (watch_client, client) = clients(config, settings.api_timeout, list_timeout)?;
    let fence = args.fence();
    let ctx = Arc::new(settings.context(client, metrics, fence.clone())?);

    let readiness = Readiness::with_role(!args.lease.leader_election);
    health::serve(args.health_listen, ctx.health_router(readiness.clone()))
        .await
        .map_err(|source| RunError::Health {
            addr: args.health_listen,
            source,
        })?;
    let election = args.election(ctx.client.clone(), identity, fence);
    readiness.follow_problems(election.problems());
    tracing::info!(
        echo_url = %args.echo.echo_url,
        namespace = args.reconcile.namespace.as_deref().unwrap_or("<all>"),
        concurrency = args.reconcile.concurrency,
        "operator started"
    );
    let api: Api<Watched<Echo>> = match &args.reconcile.namespace {
        Some(namespace) => Api::namespaced(watch_client, namespace),
        None => Api::all(watch_client),
    };
    let watch = || watched::watch(api.clone(), watcher::Config::default()).default_backoff();
    let roles = election.roles();
    let (loop_config, signalled) = (args.loop_config(), stop.clone());
    let grace = loop_config.shutdown_grace;
    operator::run_while_leading(roles, watch, ctx, loop_config, readiness, stop).await;
    // Only now, with no reconcile left running, may another replica take over.
    let budget = leader::release_budget(signalled.since(), grace);
    election.stop(budget).await;
    tracing::info!("operator stopped");
    Ok(())
}
