//! The OpenMetrics text both programs serve at /metrics, and the exemplars in it that lead
//! from a metric to a trace.

/// GETs `url`, asserts the OpenMetrics content type and returns the text.
pub async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("GET /metrics");
    assert_eq!(
        response.headers()["content-type"],
        echo_operator::metrics::CONTENT_TYPE
    );
    response.text().await.expect("body")
}

/// Asserts that a line starting with `bucket` (a histogram bucket and its opening brace)
/// ends its labels with `labels` and names `trace_id` as its exemplar.
pub fn assert_exemplar(text: &str, bucket: &str, labels: &str, trace_id: &str) {
    let exemplar = format!("# {{trace_id=\"{trace_id}\"}}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(bucket) && l.contains(labels) && l.contains(&exemplar)),
        "a {bucket}{labels} bucket with the exemplar {exemplar}:\n{text}"
    );
}
