//! What an API write gets back, read no further than the object's name.
//!
//! The API server answers a patch or a create with the whole object, `managedFields`
//! included, and kube's typed methods parse all of it. The operator reads none of it: parsing
//! the answers to its finalizer patch, status apply and Event took about 95 of a reconcile's
//! 722 heap allocations (`make profile-allocations`, docs/performance.md). `Api<Written<K>>`
//! reaches `K`'s URLs with kube's own methods (errors, retries of the client stack and the API
//! request's span unchanged) and skips the answer's content without building it.

use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::{Deserialize, Deserializer, Serialize};

use crate::operator::stand_in::stands_in_for;

/// `K` as far as a write's answer goes: its `metadata.name`, nothing else.
#[derive(Clone, Debug)]
pub struct Written<K> {
    metadata: ObjectMeta,
    resource: PhantomData<fn() -> K>,
}

impl<K> Written<K> {
    /// The written object's name, as the API server answered it.
    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }
}

stands_in_for!(Written {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
});

impl<'de, K> Deserialize<'de> for Written<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde skips the fields these structs do not name, without building them.
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            metadata: Names,
        }
        #[derive(Default, Deserialize)]
        struct Names {
            name: Option<String>,
        }
        let answer = Answer::deserialize(deserializer)?;
        Ok(Self {
            metadata: ObjectMeta {
                name: answer.metadata.name,
                ..ObjectMeta::default()
            },
            resource: PhantomData,
        })
    }
}

/// Creates `object` at `api`'s URL and reads back its name: `Api::create` sends and parses
/// the same type, so it cannot send a `K` and skip the answer.
pub async fn create<K>(
    client: &Client,
    api: &Api<Written<K>>,
    params: &PostParams,
    object: &K,
) -> Result<Written<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
    let mut request = kube::core::Request::new(api.resource_url())
        .create(params, body)
        .map_err(kube::Error::BuildRequest)?;
    // kube's own methods name the request so; its client stack reads it.
    request.extensions_mut().insert("create");
    client.request(request).await
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::events::v1::Event;

    use super::*;
    use crate::crd::Echo;

    #[test]
    fn an_answer_is_read_for_its_name_only_and_managed_fields_are_not_built() {
        let answer = serde_json::json!({
            "apiVersion": "tracing.example.com/v1alpha1",
            "kind": "Echo",
            "metadata": {
                "name": "a",
                "namespace": "ns",
                "managedFields": [{ "manager": "echo-operator", "fieldsV1": { "f:status": {} } }],
            },
            "spec": { "message": "hello" },
            "status": { "reply": "hello" },
        });
        let written: Written<Echo> = serde_json::from_value(answer).expect("an object parses");
        assert_eq!(written.name(), Some("a"));
        assert_eq!(
            written.meta(),
            &ObjectMeta {
                name: Some("a".into()),
                ..ObjectMeta::default()
            }
        );
    }

    #[test]
    fn an_answer_that_is_not_json_is_an_error_and_one_without_metadata_has_no_name() {
        assert!(serde_json::from_str::<Written<Echo>>("not json").is_err());
        let bare: Written<Echo> = serde_json::from_str("{}").expect("an empty object parses");
        assert_eq!(bare.name(), None);
    }

    #[test]
    fn written_reaches_the_urls_of_the_resource_it_stands_for() {
        assert_eq!(
            Written::<Echo>::url_path(&(), Some("ns")),
            Echo::url_path(&(), Some("ns"))
        );
        assert_eq!(
            Written::<Event>::url_path(&(), Some("ns")),
            "/apis/events.k8s.io/v1/namespaces/ns/events"
        );
        assert_eq!(Written::<Echo>::kind(&()), "Echo");
        assert_eq!(Written::<Event>::api_version(&()), "events.k8s.io/v1");
    }
}
