//! The committed CRD must be exactly what `crdgen` prints, and its schema must carry the
//! validation the issue asks for.

use serde_json::Value;

const COMMITTED: &str = include_str!("../crd/echo.yaml");

#[test]
fn committed_crd_matches_crdgen() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .output()
        .expect("run crdgen");
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        generated == COMMITTED,
        "crd/echo.yaml is stale: run `cargo run --bin crdgen > crd/echo.yaml` and commit it"
    );
}

fn schema() -> Value {
    let crd: Value = serde_yaml::from_str(COMMITTED).expect("CRD YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn spec_validation_lives_in_the_schema() {
    let spec = &schema()["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["message"]));
    let message = &spec["properties"]["message"];
    assert_eq!(message["minLength"], 1);
    assert_eq!(message["maxLength"], 1024);
    assert_eq!(
        message["x-kubernetes-validations"][0]["rule"],
        "self.trim().size() > 0"
    );
    let delay = &spec["properties"]["delayMs"];
    assert_eq!(
        (delay["minimum"].as_f64(), delay["maximum"].as_f64()),
        (Some(0.0), Some(10_000.0))
    );
    let fail_first = &spec["properties"]["failFirst"];
    assert_eq!(
        (
            fail_first["minimum"].as_f64(),
            fail_first["maximum"].as_f64()
        ),
        (Some(0.0), Some(10.0))
    );
}

/// Every `format` in the schema is one the API server knows; any other makes it warn on
/// every apply of the CRD (k8s.io/apiextensions-apiserver's supported formats).
#[test]
fn every_format_is_one_kubernetes_recognises() {
    fn formats(value: &Value, path: &str, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if let ("format", Value::String(format)) = (key.as_str(), child) {
                        found.push((path.to_owned(), format.clone()));
                    }
                    formats(child, &format!("{path}.{key}"), found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| formats(item, path, found)),
            _ => {}
        }
    }
    const KNOWN: &[&str] = &[
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "date",
        "date-time",
    ];
    let mut found = Vec::new();
    formats(&schema(), "", &mut found);
    assert!(!found.is_empty());
    let unknown: Vec<_> = found
        .iter()
        .filter(|(_, f)| !KNOWN.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "formats Kubernetes does not know: {unknown:?}"
    );
}

#[test]
fn names_subresource_and_columns() {
    let crd: Value = serde_yaml::from_str(COMMITTED).expect("CRD YAML");
    assert_eq!(crd["metadata"]["name"], "echoes.tracing.example.com");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["ec"])
    );
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Message", "Ready", "Trace", "Age"]);
    let status = &schema()["properties"]["status"]["properties"];
    for field in [
        "observedGeneration",
        "reply",
        "traceId",
        "lastReconciled",
        "conditions",
    ] {
        assert!(status[field].is_object(), "status.{field} missing");
    }
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
}
