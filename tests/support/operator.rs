//! The operator's controller in the test process, over a fake API server the test feeds
//! watch events through, with its spans exported to the test's receiver.

use std::sync::Arc;
use std::time::Duration;

use echo_operator::crd::Echo;
use echo_operator::operator::calls::echo_client::RetryConfig;
use echo_operator::operator::process::health::Readiness;
use echo_operator::operator::process::leader::Fence;
use echo_operator::operator::process::metrics::Metrics;
use echo_operator::operator::{self, Context, LoopConfig, Settings};
use futures::channel::{mpsc, oneshot};
use kube::runtime::watcher;

use super::echo_process::EchoServer;
use super::eventually::eventually;
use super::fake_api::FakeApi;
use super::telemetry::telemetry;

/// Settings of one operator run in a test: the operator's own [`Settings`], shortened for
/// tests, and the knobs of the loop around it.
pub struct OperatorOptions {
    pub settings: Settings,
    /// Whether the operator may still write (open for good unless a test closes it).
    pub fence: Fence,
    pub shutdown_grace: Duration,
    /// Start with the initial list still incomplete (no `InitDone` yet).
    pub hold_init_done: bool,
}

impl OperatorOptions {
    pub fn new(echo_url: String) -> Self {
        let error_backoff = Duration::from_millis(300);
        let settings = Settings {
            echo_retry: RetryConfig {
                max_retries: 3,
                min_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                ..RetryConfig::default()
            },
            resync: Duration::from_secs(3600),
            error_backoff,
            max_error_backoff: error_backoff * 4,
            reconcile_timeout: Duration::from_secs(30),
            api_timeout: Duration::from_secs(10),
            ..Settings::new(echo_url.parse().expect("echo url"))
        };
        Self {
            settings,
            fence: Fence::always_open(),
            shutdown_grace: Duration::from_secs(5),
            hold_init_done: false,
        }
    }

    /// With at most `max_retries` resends of a failed echo call.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.settings.echo_retry.max_retries = max_retries;
        self
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

    /// With the default options, calling the echo-server binary `server`.
    pub fn calling(server: &EchoServer) -> Self {
        Self::start(OperatorOptions::new(server.url()))
    }

    /// Runs over `api`, which the test may have set up (a request that hangs, say).
    pub fn start_on(api: FakeApi, options: OperatorOptions) -> Self {
        let ctx = Self::context(&api, &options);
        Self::start_with(api, ctx, options)
    }

    /// The reconcile context the operator's binary would build, over `api`.
    pub fn context(api: &FakeApi, options: &OperatorOptions) -> Arc<Context> {
        let client = api.client(options.settings.api_timeout);
        let metrics = Arc::new(Metrics::new(&telemetry().span_counters()));
        let fence = options.fence.clone();
        let ctx = options.settings.context(client, metrics, fence);
        Arc::new(ctx.expect("the operator's context"))
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

    /// Waits (20 s) for a status write whose `Ready` condition has `status`, and returns
    /// the object.
    pub async fn wait_ready(&self, namespace: &str, name: &str, status: &str) -> Echo {
        eventually(format!("{namespace}/{name} Ready={status}"))
            .until(async || {
                let object = self.api.object(namespace, name).filter(|e| {
                    e.ready_condition()
                        .is_some_and(|condition| condition.status == status)
                });
                object.ok_or_else(|| self.api.seen())
            })
            .await
    }

    /// Applies `echo` and waits (20 s) for its `Ready` condition to be `status`.
    pub async fn apply_until_ready(&self, echo: &Echo, status: &str) -> Echo {
        self.apply(echo);
        let namespace = echo.metadata.namespace.as_deref().expect("namespace");
        let name = echo.metadata.name.as_deref().expect("name");
        self.wait_ready(namespace, name, status).await
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
