//! The real `echo-server` binary as a child process of the test.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::eventually::eventually;
use super::telemetry::receiver;

/// The `echo-server` binary, exporting where the test says; killed on drop.
pub struct EchoServer {
    child: Child,
    pub addr: SocketAddr,
}

impl EchoServer {
    /// Exports to the test's receiver on a 100 ms batch schedule.
    pub fn start() -> Self {
        Self::exporting_to(&receiver().endpoint(), &[])
    }

    /// Exports to `endpoint` on a 100 ms batch schedule, with `env` on top (which may
    /// change the schedule).
    pub fn exporting_to(endpoint: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        all.extend_from_slice(env);
        Self::start_with_env(&all)
    }

    /// Starts with no exporter settings but `env`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        // The test's own reqwest clients need rustls's provider as much as the binaries do.
        echo_operator::tls::install_crypto_provider();
        let mut command = Command::new(env!("CARGO_BIN_EXE_echo-server"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn echo-server");
        let stdout = child.stdout.take().expect("stdout");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = json["fields"]["address"].as_str()
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("echo-server printed its address")
            .expect("a socket address");
        Self { child, addr }
    }

    /// Sockets the process holds open now (listeners, connections, exporter).
    pub fn open_sockets(&self) -> usize {
        let fds = format!("/proc/{}/fd", self.child.id());
        std::fs::read_dir(fds)
            .expect("the process's descriptors")
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A PUT of `body` to `/v1/echoes/default/{name}`, ready to send.
    pub fn put(&self, name: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .put(format!("{}/v1/echoes/default/{name}", self.url()))
            .json(body)
    }

    /// For `eventually`: whether the service has stored `namespace/name` (a GET finds it).
    pub async fn stores(&self, namespace: &str, name: &str) -> bool {
        reqwest::get(format!("{}/v1/echoes/{namespace}/{name}", self.url()))
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    }

    /// Sends `SIG{name}` (TERM, INT, ...) without waiting.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status();
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub async fn terminate(mut self, within: Duration) -> ExitStatus {
        self.signal("TERM");
        eventually("the echo-server's exit after SIGTERM")
            .within(within)
            .until(async || self.child.try_wait().ok().flatten())
            .await
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The caller's span in [`traceparent`]: the parent the echo server's SERVER span gets.
pub const CALLER_SPAN: &str = "b7ad6b7169203331";

/// A sampled W3C traceparent: a caller in `trace_id` whose span is [`CALLER_SPAN`].
pub fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

/// An echo service URL nothing listens on: its port was bound once, then released.
pub fn unreachable_echo_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    format!("http://127.0.0.1:{port}")
}
