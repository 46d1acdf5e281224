//! The telemetry of the test process: one OTLP receiver, and the operator's tracing set up
//! to export to it. `tracing` allows one global subscriber, so every test in a binary
//! shares them and tells its spans apart by trace id; and one sampler, the SDK's default
//! unless the binary's tests call [`use_sampler`] first.

use std::sync::OnceLock;

use echo_operator::telemetry::{
    self, ExporterConfig, Protocol, SamplerChoice, Telemetry, TelemetryConfig,
};

use super::otlp::Receiver;

struct Shared {
    receiver: Receiver,
    telemetry: Telemetry,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        echo_operator::tls::install_crypto_provider();
        let receiver = Receiver::start();
        let config = TelemetryConfig {
            service_name: "echo-operator".into(),
            resource_attributes: vec![("k8s.namespace.name".into(), "test".into())],
            exporter: Some(ExporterConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: format!("{}/v1/traces", receiver.endpoint()),
                certificate: None,
            }),
            sdk_disabled: false,
            sampler: SAMPLER.get().cloned().unwrap_or(SamplerChoice::Sdk),
            log_filter: "warn".into(),
            json_logs: false,
            ansi: false,
            warnings: Vec::new(),
        };
        // Built off any async runtime: the blocking HTTP exporter must not live inside one.
        let telemetry = std::thread::spawn(move || telemetry::init(&config))
            .join()
            .expect("telemetry thread")
            .expect("telemetry init");
        Shared {
            receiver,
            telemetry,
        }
    })
}

static SAMPLER: OnceLock<SamplerChoice> = OnceLock::new();

/// Makes the operator's code in this test binary sample with `choice`: call it before
/// anything else in every test of the binary, always with the same choice.
pub fn use_sampler(choice: SamplerChoice) {
    let _ = SAMPLER.set(choice.clone());
    assert_eq!(SAMPLER.get(), Some(&choice), "one sampler per test binary");
    let _ = shared();
}

/// The receiver every process of the test exports to.
pub fn receiver() -> &'static Receiver {
    &shared().receiver
}

/// Sends the spans the operator's code in this process has ended to the receiver.
pub fn flush_operator_spans() {
    shared().telemetry.force_flush();
}

pub fn telemetry() -> &'static Telemetry {
    &shared().telemetry
}
