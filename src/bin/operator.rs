//! The echo operator: reconciles `Echo` objects against the echo service, with one trace
//! from each watch event to the remote service.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use echo_operator::operator::echo_client::{EchoClient, RetryConfig};
use echo_operator::operator::health::{self, Readiness};
use echo_operator::operator::trace_links::TraceLinks;
use echo_operator::operator::{self, Backoff, Context, LoopConfig, api_tracing::ApiTracingLayer};
use echo_operator::telemetry::{self, TelemetryConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, client::ClientBuilder};

#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes operator for Echo objects, traced end to end"
)]
struct Args {
    /// Base URL of the echo service.
    #[arg(
        long,
        env = "ECHO_URL",
        default_value = "http://echo-server.echo-tracing.svc:8080"
    )]
    echo_url: reqwest::Url,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    health_listen: SocketAddr,
    /// Retries of one echo service call on 5xx and connection errors.
    #[arg(long, env = "ECHO_HTTP_RETRIES", default_value_t = 3)]
    http_retries: u32,
    /// Seconds between reconciles of a healthy object.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// First delay after a failed reconcile, doubled on each further failure.
    #[arg(long, env = "ERROR_BACKOFF_SECONDS", default_value_t = 5)]
    error_backoff_seconds: u64,
    /// Longest delay after failed reconciles.
    #[arg(long, env = "MAX_ERROR_BACKOFF_SECONDS", default_value_t = 300)]
    max_error_backoff_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot load a Kubernetes client configuration: {0}")]
    KubeConfig(#[from] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    KubeClient(#[from] kube::Error),
    #[error("cannot build the echo service client: {0}")]
    EchoClient(#[from] reqwest::Error),
    #[error("cannot serve health endpoints on {addr}: {source}")]
    Health {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
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
    let code = match run(args, links).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "operator failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn run(args: Args, links: Arc<TraceLinks>) -> Result<(), RunError> {
    // First: a SIGTERM during start-up must already find the handler in place.
    let shutdown = echo_operator::shutdown::signal();
    let config = kube::Config::infer().await?;
    let tracing_layer = ApiTracingLayer::new(config.cluster_url.clone());
    let client = ClientBuilder::try_from(config)?
        .with_layer(&tracing_layer)
        .build();
    let reporter = Reporter {
        controller: "echo-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        echo: EchoClient::new(
            args.echo_url.clone(),
            &RetryConfig {
                max_retries: args.http_retries,
                ..RetryConfig::default()
            },
        )?,
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        links,
        backoff: Backoff::new(
            Duration::from_secs(args.error_backoff_seconds),
            Duration::from_secs(args.max_error_backoff_seconds),
        ),
        resync: Duration::from_secs(args.resync_seconds),
    });

    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .map_err(|source| RunError::Health {
            addr: args.health_listen,
            source,
        })?;
    let health_router = health::router(readiness.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, health_router).await {
            tracing::error!(error = %err, "health endpoint stopped");
        }
    });

    let api: Api<echo_operator::crd::Echo> = match &args.namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    let events = watcher(api, watcher::Config::default()).default_backoff();
    tracing::info!(
        echo_url = %args.echo_url,
        namespace = args.namespace.as_deref().unwrap_or("<all>"),
        "operator started"
    );
    operator::run_controller(events, ctx, LoopConfig::default(), readiness, shutdown).await;
    tracing::info!("operator stopped");
    Ok(())
}
