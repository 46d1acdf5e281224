//! The echo service: stores echoes in memory and continues the caller's trace.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use echo_operator::echo_server::metrics::EchoMetrics;
use echo_operator::echo_server::{self, EchoService, store};
use echo_operator::serve;
use echo_operator::telemetry::{self, TelemetryConfig};

// Every request allocates its spans' fields, log line and exported data on two worker
// threads; under glibc's malloc that was 15-19 % of the server's samples (perf, under wrk).
// mimalloc, side by side (e2e/bench/compare-echo): 18-19 % less CPU per traced request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Echo service that continues W3C traces from its callers"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "ECHO_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Also serve /healthz and /metrics alone on this address (for scrapers a NetworkPolicy
    /// keeps away from the API port).
    #[arg(long, env = "ECHO_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Most echoes kept at once; writes of new keys past it get 507.
    #[arg(long, env = "ECHO_MAX_ENTRIES", default_value_t = store::Limits::default().max_entries,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    max_entries: usize,
    /// Most echoes of one namespace; writes of its new keys past it get 507.
    #[arg(long, env = "ECHO_MAX_ENTRIES_PER_NAMESPACE",
          default_value_t = store::Limits::default().max_entries_per_namespace,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    max_entries_per_namespace: usize,
    /// Most bytes of names, messages and replies kept; writes past it get 507.
    #[arg(long, env = "ECHO_MAX_BYTES", default_value_t = store::Limits::default().max_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1_024..=1 << 40))]
    max_bytes: usize,
    /// After SIGTERM, how long requests in flight may finish (the longest delayMs is 10 s).
    /// With the 5 s span flush after it, keep it below the pod's
    /// terminationGracePeriodSeconds.
    #[arg(long, env = "ECHO_SHUTDOWN_GRACE_SECONDS", default_value_t = 11,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    shutdown_grace_seconds: u64,
    /// Seconds a client may take to send a request's headers before its connection is closed.
    #[arg(long, env = "ECHO_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    header_read_timeout_seconds: u64,
    /// Connections served at once, on each port; more wait to be accepted.
    #[arg(long, env = "ECHO_MAX_CONNECTIONS", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    max_connections: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry = match telemetry::init(&TelemetryConfig::from_env("echo-server")) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("echo-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Before "listening" is logged: from then on a SIGTERM must find the handler in place.
    let shutdown = echo_operator::shutdown::signal();
    echo_operator::shutdown::exit_on_second_signal();
    let limits = serve::Limits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
        max_connections: args.max_connections,
    };
    let result = async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        tracing::info!(address = %listener.local_addr()?, "echo-server listening");
        let service = EchoService {
            store: Arc::new(store::Store::with_limits(store::Limits {
                max_entries: args.max_entries,
                max_entries_per_namespace: args.max_entries_per_namespace,
                max_bytes: args.max_bytes,
            })),
            metrics: Arc::new(EchoMetrics::new(&telemetry.span_counters())),
        };
        if let Some(addr) = args.metrics_listen {
            let ops = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(address = %ops.local_addr()?, "metrics listening");
            let router = echo_server::ops_router(&service.metrics);
            // Ends with the process: scrapes are short and nothing waits on them.
            let forever = std::future::pending();
            tokio::spawn(serve::serve(ops, router, limits, forever, Duration::ZERO));
        }
        let grace = Duration::from_secs(args.shutdown_grace_seconds);
        echo_server::serve(listener, service, limits, shutdown, grace).await;
        Ok::<(), std::io::Error>(())
    }
    .await;
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, listen = %args.listen, "echo-server failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
