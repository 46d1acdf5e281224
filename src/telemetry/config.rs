//! The telemetry settings the program decides itself, from the standard `OTEL_*` variables.
//!
//! The OpenTelemetry SDK and the OTLP exporter read most variables on their own: the
//! sampler (`OTEL_TRACES_SAMPLER[_ARG]`, except the value of our own,
//! `parentbased_linked_traceidratio`), the batch processor (`OTEL_BSP_*`), the exporter's
//! headers, timeout and compression. What stays here is what they leave to the program:
//! whether to export at all and over which transport (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `_PROTOCOL`), `OTEL_SDK_DISABLED`, the CA bundle for TLS, the default service name, and
//! `OTEL_RESOURCE_ATTRIBUTES`, because the SDK 0.32's reader does not percent-decode values
//! as the specification requires.
//!
//! Parsing never fails: an invalid value is replaced by the specification's default and
//! reported as a warning, because telemetry must never stop the program it observes.

use std::io::IsTerminal;

use super::sampling::LINKED_TRACEIDRATIO;

/// How spans leave the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Where spans go; absent when no endpoint is configured (the program then only logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    pub protocol: Protocol,
    /// Full URL handed to the exporter (for HTTP it already ends in `/v1/traces`).
    pub endpoint: String,
    /// PEM file of certificate authorities to trust for an `https://` endpoint besides the
    /// system's (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`).
    pub certificate: Option<std::path::PathBuf>,
}

/// Which sampler the tracer provider gets.
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerChoice {
    /// The SDK's own reading of `OTEL_TRACES_SAMPLER[_ARG]` (`parentbased_always_on` unset).
    Sdk,
    /// `parentbased_linked_traceidratio` with this ratio (see `telemetry::sampling`).
    LinkedTraceIdRatio(f64),
}

/// Everything `telemetry::init` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    pub service_name: String,
    /// From `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded, `service.name` excluded.
    pub resource_attributes: Vec<(String, String)>,
    pub exporter: Option<ExporterConfig>,
    /// `OTEL_SDK_DISABLED=true`: no spans are recorded at all, logs still are.
    pub sdk_disabled: bool,
    pub sampler: SamplerChoice,
    /// `RUST_LOG` syntax for the log output (default `info`).
    pub log_filter: String,
    /// `LOG_FORMAT=json` gives one JSON object a line.
    pub json_logs: bool,
    /// Colour escapes in the text log: only when stdout is a terminal and `NO_COLOR` is
    /// unset. A pod's log is a file, where escapes are noise (and cost a write per field).
    pub ansi: bool,
    /// Problems found while reading the variables, logged once logging works.
    pub warnings: Vec<String>,
}

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env(default_service_name: &str) -> Self {
        Self {
            ansi: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            ..Self::from_lookup(default_service_name, |key| std::env::var(key).ok())
        }
    }

    /// Reads variables through `get`, so tests need not touch the process environment.
    /// Never colours the log: that depends on the terminal, not on a variable.
    pub fn from_lookup(default_service_name: &str, get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();

        let mut resource_attributes = get("OTEL_RESOURCE_ATTRIBUTES")
            .map(|raw| parse_resource_attributes(&raw, &mut warnings))
            .unwrap_or_default();
        let from_resource = resource_attributes
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| resource_attributes.remove(i).1);
        let service_name = get("OTEL_SERVICE_NAME")
            .or(from_resource)
            .unwrap_or_else(|| default_service_name.to_owned());

        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                warnings.push(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (use grpc or http/protobuf); using http/protobuf"
                ));
                Protocol::HttpProtobuf
            }
        };
        let endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // A signal-specific endpoint is used exactly as given.
            (Some(traces), _) => Some(traces),
            (None, Some(base)) if protocol == Protocol::HttpProtobuf => {
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            (None, base) => base,
        };
        let certificate = get("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            .or_else(|| get("OTEL_EXPORTER_OTLP_CERTIFICATE"))
            .map(std::path::PathBuf::from);
        let exporter = endpoint.map(|endpoint| ExporterConfig {
            protocol,
            endpoint,
            certificate,
        });

        let sdk_disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let sampler = match get("OTEL_TRACES_SAMPLER").as_deref() {
            Some(LINKED_TRACEIDRATIO) => SamplerChoice::LinkedTraceIdRatio(sampler_ratio(
                get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
                &mut warnings,
            )),
            _ => SamplerChoice::Sdk,
        };

        Self {
            service_name,
            resource_attributes,
            exporter,
            sdk_disabled,
            sampler,
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            json_logs: get("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            ansi: false,
            warnings,
        }
    }
}

/// `OTEL_TRACES_SAMPLER_ARG` for a ratio sampler: a number from 0 to 1; otherwise 1, as the
/// SDK does for its own ratio samplers.
fn sampler_ratio(arg: Option<&str>, warnings: &mut Vec<String>) -> f64 {
    match arg.map(str::parse::<f64>) {
        Some(Ok(ratio)) if (0.0..=1.0).contains(&ratio) => ratio,
        _ => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER_ARG={:?} is not a ratio from 0 to 1; sampling every trace",
                arg.unwrap_or_default()
            ));
            1.0
        }
    }
}

/// `key1=value1,key2=value2` with percent-encoded values, as the specification defines it.
fn parse_resource_attributes(raw: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    raw.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .filter_map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
                Some((key.trim().to_owned(), value.into_owned()))
            }
            _ => {
                warnings.push(format!(
                    "OTEL_RESOURCE_ATTRIBUTES: ignoring malformed entry {pair:?}"
                ));
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_linked_sampler_is_ours_the_others_are_the_sdks() {
        let linked = config(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_linked_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]);
        assert_eq!(linked.sampler, SamplerChoice::LinkedTraceIdRatio(0.1));
        assert!(linked.warnings.is_empty());
        let sdk = config(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]);
        assert_eq!(sdk.sampler, SamplerChoice::Sdk);
        for bad in ["", "ten percent", "1.5", "-0.1", "NaN"] {
            let c = config(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_linked_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", bad),
            ]);
            assert_eq!(c.sampler, SamplerChoice::LinkedTraceIdRatio(1.0), "{bad:?}");
            assert_eq!(c.warnings.len(), 1, "{bad:?}: {:?}", c.warnings);
        }
    }

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_lookup("echo-operator", |k| vars.get(k).cloned())
    }

    #[test]
    fn no_endpoint_means_no_exporter_and_defaults() {
        let c = config(&[]);
        assert_eq!(c.exporter, None);
        assert_eq!(c.service_name, "echo-operator");
        assert!(!c.sdk_disabled);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn the_signal_specific_certificate_wins() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca/all.pem"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "/etc/ca/traces.pem",
            ),
        ]);
        let exporter = c.exporter.expect("exporter");
        assert_eq!(
            exporter.certificate.as_deref(),
            Some(std::path::Path::new("/etc/ca/traces.pem"))
        );
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca/all.pem"),
        ]);
        assert_eq!(
            c.exporter.expect("exporter").certificate.as_deref(),
            Some(std::path::Path::new("/etc/ca/all.pem"))
        );
    }

    #[test]
    fn http_endpoint_gets_the_traces_path_and_grpc_does_not() {
        let http = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/")]);
        assert_eq!(
            http.exporter,
            Some(ExporterConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: "http://jaeger:4318/v1/traces".into(),
                certificate: None,
            })
        );
        let grpc = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert_eq!(
            grpc.exporter,
            Some(ExporterConfig {
                protocol: Protocol::Grpc,
                endpoint: "http://jaeger:4317".into(),
                certificate: None,
            })
        );
        let signal = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:9999/custom",
            ),
        ]);
        assert_eq!(
            signal.exporter.map(|e| e.endpoint).as_deref(),
            Some("http://collector:9999/custom")
        );
    }

    #[test]
    fn unsupported_protocol_warns_and_falls_back() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert_eq!(c.exporter.map(|e| e.protocol), Some(Protocol::HttpProtobuf));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn service_name_precedence() {
        let from_attrs = config(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,team=obs",
        )]);
        assert_eq!(from_attrs.service_name, "from-attrs");
        assert_eq!(
            from_attrs.resource_attributes,
            vec![("team".into(), "obs".into())]
        );
        let explicit = config(&[
            ("OTEL_SERVICE_NAME", "explicit"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ]);
        assert_eq!(explicit.service_name, "explicit");
    }

    #[test]
    fn resource_attributes_are_percent_decoded_and_malformed_entries_skipped() {
        let c = config(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "k8s.pod.name=op-1,note=a%20b%2Cc,broken,k8s.node.name=kind-control-plane",
        )]);
        assert_eq!(
            c.resource_attributes,
            vec![
                ("k8s.pod.name".into(), "op-1".into()),
                ("note".into(), "a b,c".into()),
                ("k8s.node.name".into(), "kind-control-plane".into()),
            ]
        );
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn sdk_disabled() {
        assert!(config(&[("OTEL_SDK_DISABLED", "TRUE")]).sdk_disabled);
        assert!(!config(&[("OTEL_SDK_DISABLED", "false")]).sdk_disabled);
    }
}
