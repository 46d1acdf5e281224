//! The watch's client: its LIST is bounded (a stalled one fails and is retried), the watch
//! itself is not (it is a long poll).

mod support;

use std::time::Duration;

use echo_operator::crd::Echo;
use kube::api::{Api, ListParams, WatchParams};
use support::FakeApi;

const LIST_TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_stalled_list_fails_in_time_and_a_watch_is_left_alone() {
    let api = FakeApi::default();
    api.hang_on("GET", "/echoes");
    let echoes: Api<Echo> = Api::all(api.watch_client(LIST_TIMEOUT));

    let list_params = ListParams::default();
    let listing = tokio::time::timeout(Duration::from_secs(5), echoes.list(&list_params));
    let listed = listing
        .await
        .expect("the LIST is cut at its bound, not left hanging");
    assert!(listed.is_err(), "a stalled LIST is an error: {listed:?}");

    let watch_params = WatchParams::default();
    let watched = tokio::time::timeout(LIST_TIMEOUT * 3, echoes.watch(&watch_params, "0")).await;
    assert!(watched.is_err(), "a watch is a long poll: no bound cuts it");
}
