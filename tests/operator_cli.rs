//! The operator binary's command line: settings it refuses, and its message without a
//! cluster to talk to.

use std::process::Command;

/// The operator binary with no reachable cluster configuration.
fn operator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_operator"));
    command
        .env("HEALTH_LISTEN", "127.0.0.1:0")
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    command
}

#[test]
fn operator_refuses_settings_that_would_hot_loop() {
    for (variable, value, says) in [
        ("RESYNC_SECONDS", "0", "resync-seconds"),
        ("ERROR_BACKOFF_SECONDS", "0", "error-backoff-seconds"),
        ("RECONCILE_CONCURRENCY", "0", "concurrency"),
        ("MAX_ERROR_BACKOFF_SECONDS", "2", "must not be below"),
    ] {
        let output = operator()
            .env(variable, value)
            .output()
            .expect("run operator");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{variable}={value}: {stderr}");
    }
}

#[test]
fn operator_without_cluster_config_fails_with_a_clear_message() {
    let output = operator()
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run operator");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cannot load a Kubernetes client configuration"),
        "{stdout}"
    );
}
