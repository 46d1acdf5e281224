//! How both binaries stop: the signal, a stop many tasks can wait for, and the grace period
//! after which work still running is abandoned.

use std::future::Future;
use std::time::{Duration, Instant};

/// Resolves on SIGTERM (what Kubernetes sends) or ctrl-c (SIGINT).
///
/// The handlers are installed when this is called, not when the future is first polled:
/// a SIGTERM that arrives in between would otherwise take the default action and kill the
/// process without flushing its spans. Call it early, inside the runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            tokio::select! {
                () = recv(terminate, "SIGTERM") => tracing::info!("SIGTERM received, shutting down"),
                () = recv(interrupt, "ctrl-c") => tracing::info!("ctrl-c received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("ctrl-c received, shutting down"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for ctrl-c");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Waits for one signal; if its handler could not be installed, waits forever (the other
/// signal still works) after saying so.
#[cfg(unix)]
async fn recv(handler: std::io::Result<tokio::signal::unix::Signal>, name: &str) {
    match handler {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}

/// Exits the process at once on the second SIGTERM or ctrl-c: the first starts a graceful
/// shutdown, and a person (or kubelet) who asks again does not want to wait for it. Call it
/// early, inside the runtime, next to [`signal`].
pub fn exit_on_second_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for a second signal; only the graceful path exists");
            return;
        };
        tokio::spawn(async move {
            for _ in 0..2 {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            eprintln!("second signal received: exiting without waiting");
            std::process::exit(130);
        });
    }
}

/// A shutdown signal many tasks can wait for: resolves for every waiter once `signal`
/// (usually [`signal`]) has resolved, and remembers when that was.
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<Option<Instant>>);

impl Stop {
    /// Starts waiting for `signal` on a task of its own.
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(Some(Instant::now()));
        });
        Self(rx)
    }

    /// Resolves once the signal has come (at once if it already has).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            // An error means the sender is gone without a signal: then it never comes.
            if rx.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// When the signal came, if it has.
    pub fn since(&self) -> Option<Instant> {
        *self.0.borrow()
    }
}

/// Splits `shutdown` for work that stops gracefully (a server draining connections, a
/// controller finishing reconciles): the work waits on the returned future, and
/// [`Grace::bound`] gives it at most `grace` once `shutdown` has resolved. A client or a
/// reconcile that never completes must not keep a pod past its termination grace period.
pub fn with_grace<F>(shutdown: F, grace: Duration) -> (impl Future<Output = ()> + use<F>, Grace)
where
    F: Future<Output = ()>,
{
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    (shutdown, Grace { signalled, grace })
}

/// The deadline half of [`with_grace`].
pub struct Grace {
    signalled: tokio::sync::oneshot::Receiver<()>,
    grace: Duration,
}

impl Grace {
    /// Runs `work` to its end, or until the grace period after the shutdown signal is over;
    /// `None` then, after a warning naming `what` was abandoned.
    pub async fn bound<T>(self, what: &str, work: impl Future<Output = T>) -> Option<T> {
        let Self { signalled, grace } = self;
        let deadline = async move {
            match signalled.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The signal half was dropped without a signal: no deadline.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            out = work => Some(out),
            () = deadline => {
                tracing::warn!(
                    grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
                    "{what} still running after the shutdown grace period; abandoning them"
                );
                None
            }
        }
    }
}
