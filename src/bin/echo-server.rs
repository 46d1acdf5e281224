//! The echo service: stores echoes in memory and continues the caller's trace.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use echo_operator::telemetry::{self, TelemetryConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Echo service that continues W3C traces from its callers"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "ECHO_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry = match telemetry::init(&TelemetryConfig::from_env("echo-server"), None) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("echo-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Before "listening" is logged: from then on a SIGTERM must find the handler in place.
    let shutdown = echo_operator::shutdown::signal();
    let result = async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        tracing::info!(address = %listener.local_addr()?, "echo-server listening");
        echo_operator::echo_server::serve(listener, shutdown).await
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
