//! Shared test harness: the OTLP receiver and telemetry of the test process, the real
//! echo-server binary as a child process, and the operator's controller over a fake API.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod fake_api;
pub mod otlp;
pub mod tls;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use echo_operator::crd::{Echo, EchoSpec};
use echo_operator::operator::echo_client::{EchoClient, RetryConfig};
use echo_operator::operator::events::{EventRecorder, Reporter};
use echo_operator::operator::health::{Liveness, Readiness};
use echo_operator::operator::metrics::Metrics;
use echo_operator::operator::trace_links::TraceLinks;
use echo_operator::operator::{self, Backoff, Context, LoopConfig};
use echo_operator::telemetry::{self, ExporterConfig, Protocol, Telemetry, TelemetryConfig};
use futures::channel::{mpsc, oneshot};
use kube::runtime::watcher;

pub use fake_api::FakeApi;
pub use otlp::{Receiver, SpanRecord};

struct Shared {
    receiver: Receiver,
    telemetry: Telemetry,
    links: Arc<TraceLinks>,
}

/// The process-wide receiver and telemetry; `tracing` allows one global subscriber, so
/// every test in a binary shares them and tells its spans apart by trace id.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        echo_operator::tls::install_crypto_provider();
        let receiver = Receiver::start();
        let links = Arc::new(TraceLinks::default());
        let config = TelemetryConfig {
            service_name: "echo-operator".into(),
            resource_attributes: vec![("k8s.namespace.name".into(), "test".into())],
            exporter: Some(ExporterConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: format!("{}/v1/traces", receiver.endpoint()),
                certificate: None,
            }),
            sdk_disabled: false,
            log_filter: "warn".into(),
            json_logs: false,
            warnings: Vec::new(),
        };
        // Built off any async runtime: the blocking HTTP exporter must not live inside one.
        let resolver = links.clone();
        let telemetry = std::thread::spawn(move || telemetry::init(&config, Some(resolver)))
            .join()
            .expect("telemetry thread")
            .expect("telemetry init");
        Shared {
            receiver,
            telemetry,
            links,
        }
    })
}

pub fn receiver() -> &'static Receiver {
    &shared().receiver
}

pub fn flush_operator_spans() {
    shared().telemetry.force_flush();
}

/// The real `echo-server` binary, exporting to the test's receiver; killed on drop.
pub struct EchoServer {
    child: Child,
    pub addr: SocketAddr,
}

impl EchoServer {
    pub fn start() -> Self {
        Self::start_with_env(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                receiver().endpoint().as_str(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ])
    }

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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends `SIG{name}` (TERM, INT, ...) without waiting.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on: bound once, then released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Settings of one operator run in a test.
pub struct OperatorOptions {
    pub echo_url: String,
    /// PEM bundle the echo client trusts besides the system's roots.
    pub echo_ca: Option<Vec<u8>>,
    pub retry: RetryConfig,
    pub error_backoff: Duration,
    pub reconcile_timeout: Duration,
    /// Bound on each Kubernetes API request of a reconcile.
    pub api_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Start with the initial list still incomplete (no `InitDone` yet).
    pub hold_init_done: bool,
}

impl OperatorOptions {
    pub fn new(echo_url: String) -> Self {
        Self {
            echo_url,
            echo_ca: None,
            retry: RetryConfig {
                max_retries: 3,
                min_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                ..RetryConfig::default()
            },
            error_backoff: Duration::from_millis(300),
            reconcile_timeout: Duration::from_secs(30),
            api_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            hold_init_done: false,
        }
    }
}

/// The operator's controller over a fake API server, fed watch events by the test.
pub struct Operator {
    pub api: FakeApi,
    /// The reconcile context, to read the sizes of its per-object state.
    pub ctx: Arc<Context>,
    /// What the operator's /readyz reports.
    pub readiness: Readiness,
    events: mpsc::UnboundedSender<Result<watcher::Event<Echo>, watcher::Error>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub fn start(options: OperatorOptions) -> Self {
        Self::start_on(FakeApi::default(), options)
    }

    /// Runs over `api`, which the test may have set up (a request that hangs, say).
    pub fn start_on(api: FakeApi, options: OperatorOptions) -> Self {
        let ctx = Self::context(&api, &options);
        Self::start_with(api, ctx, options)
    }

    /// The reconcile context the operator's binary would build, over `api`.
    pub fn context(api: &FakeApi, options: &OperatorOptions) -> Arc<Context> {
        let links = shared().links.clone();
        let client = api.client(options.api_timeout);
        let metrics = Arc::new(Metrics::new(&shared().telemetry.span_counters()));
        Arc::new(Context {
            echo: EchoClient::new(
                options.echo_url.parse().expect("echo url"),
                &options.retry,
                options.echo_ca.as_deref(),
            )
            .expect("echo client")
            .with_metrics(metrics.clone()),
            recorder: EventRecorder::new(
                client.clone(),
                Reporter {
                    controller: "echo-operator".into(),
                    instance: None,
                },
            ),
            client,
            links,
            backoff: Backoff::new(options.error_backoff, options.error_backoff * 4),
            resync: Duration::from_secs(3600),
            reconcile_timeout: options.reconcile_timeout,
            liveness: Liveness::new(options.reconcile_timeout * 2),
            metrics,
        })
    }

    fn start_with(api: FakeApi, ctx: Arc<Context>, options: OperatorOptions) -> Self {
        let (events, stream) = mpsc::unbounded();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = LoopConfig {
            debounce: Duration::from_millis(100),
            concurrency: 4,
            shutdown_grace: options.shutdown_grace,
        };
        let readiness = Readiness::default();
        let task = tokio::spawn(operator::run_controller(
            stream,
            ctx.clone(),
            config,
            readiness.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        api.set_watch(events.clone());
        let operator = Self {
            api,
            ctx,
            readiness,
            events,
            stop: Some(stop),
            task,
        };
        operator.send(watcher::Event::Init);
        if !options.hold_init_done {
            operator.send(watcher::Event::InitDone);
        }
        operator
    }

    pub fn send(&self, event: watcher::Event<Echo>) {
        self.events
            .unbounded_send(Ok(event))
            .expect("controller is running");
    }

    /// Stores `echo` in the fake API server, which delivers it as a watch event.
    pub fn apply(&self, echo: &Echo) {
        self.api.apply(echo);
    }

    /// Waits for a status write whose `Ready` condition has `status`, and returns the object.
    pub async fn wait_ready(&self, namespace: &str, name: &str, status: &str) -> Echo {
        self.api
            .wait_until(&format!("{namespace}/{name} Ready={status}"), |api| {
                api.object(namespace, name)
                    .and_then(|e| e.ready_condition().map(|c| c.status == status))
                    .unwrap_or(false)
            })
            .await;
        self.api.object(namespace, name).expect("object")
    }

    pub async fn stop(self) {
        let _ = self.stop_within(Duration::from_secs(10)).await;
    }

    /// Signals shutdown and waits up to `within` for the controller to return; returns how
    /// long it took, or `None` when it did not return in time.
    pub async fn stop_within(mut self, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(within, &mut self.task)
            .await
            .ok()
            .map(|_| started.elapsed())
    }
}

/// A new `Echo` at generation 1, as the API server would hand it out.
pub fn echo(namespace: &str, name: &str, spec: EchoSpec) -> Echo {
    let mut echo = Echo::new(name, spec);
    echo.metadata.namespace = Some(namespace.into());
    echo.metadata.uid = Some(format!("uid-{name}"));
    echo.metadata.generation = Some(1);
    echo.metadata.resource_version = Some("1".into());
    echo
}

pub fn spec(message: &str) -> EchoSpec {
    EchoSpec {
        message: message.into(),
        delay_ms: None,
        fail_first: None,
    }
}

/// Whether the parent of every span has arrived too. A parent ends after its children and
/// may reach the receiver a batch later, so a trace that starts in the test (no remote
/// parent) is complete only when this holds.
pub fn parents_arrived(spans: &[SpanRecord]) -> bool {
    spans.iter().all(|span| {
        span.parent_span_id
            .as_deref()
            .is_none_or(|parent| spans.iter().any(|s| s.span_id == parent))
    })
}

/// Spans of one trace, with the look-ups the assertions need.
pub struct Trace(pub Vec<SpanRecord>);

impl Trace {
    pub fn one(&self, service: &str, name: &str) -> &SpanRecord {
        let found: Vec<&SpanRecord> = self
            .0
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {service} span {name:?}:\n{}",
            otlp::describe(&self.0)
        );
        found[0]
    }

    pub fn all(&self, service: &str, pred: impl Fn(&SpanRecord) -> bool) -> Vec<&SpanRecord> {
        self.0
            .iter()
            .filter(|s| s.service == service && pred(s))
            .collect()
    }

    pub fn children_of<'a>(&'a self, parent: &SpanRecord) -> Vec<&'a SpanRecord> {
        self.0
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(parent.span_id.as_str()))
            .collect()
    }

    pub fn assert_parent(&self, child: &SpanRecord, parent: &SpanRecord) {
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(parent.span_id.as_str()),
            "{} ({}) should be a child of {} ({}):\n{}",
            child.name,
            child.service,
            parent.name,
            parent.service,
            otlp::describe(&self.0)
        );
    }
}
