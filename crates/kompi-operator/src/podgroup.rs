//! The jobs' PodGroups, when the operator gang-schedules (`--gang-scheduling`): one watch of the chosen
//! scheduler's PodGroups (those the operator made, by its label) fills the store reconciles read and
//! triggers the owning job's reconcile; a reconcile creates or applies the job's group before any of its
//! pods, and deletes it when `kompi_job::plan` says so. A PodGroup that is not the job's is never
//! changed or deleted.

use futures::Stream;
use kompi_job::contract::FIELD_MANAGER;
use kompi_job::gang::{GangScheduler, KIND};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tracing::{debug, info};

use crate::controller::{not_ours, owned_by};
use crate::error::OperatorError;

pub struct PodGroups {
    client: Client,
    resource: ApiResource,
    store: Store<DynamicObject>,
}

impl PodGroups {
    /// The store, and the watch that fills it (to be run by the controller, which it triggers).
    pub fn watch(
        client: Client,
        gang: &GangScheduler,
        owned: watcher::Config,
    ) -> (PodGroups, impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static) {
        let resource = gang.api_resource();
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let events = watcher(api, owned).default_backoff().reflect(writer).touched_objects();
        (PodGroups { client, resource, store }, events)
    }

    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.store.wait_until_ready().await
    }

    /// Fails, naming what to install, when the scheduler's PodGroup CRD is missing.
    pub async fn check_installed(client: &Client, gang: &GangScheduler) -> Result<(), OperatorError> {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &gang.api_resource());
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(OperatorError::Stopped(format!(
                "--gang-scheduling {}: the PodGroup CRD ({}) is not installed: install {} first",
                gang.flag(),
                gang.crd_name(),
                gang.project()
            ))),
            Err(e) => Err(OperatorError::api(format!("listing {}", gang.crd_name()), e)),
        }
    }

    fn api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.resource)
    }

    fn cached(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<DynamicObject>> {
        self.store.get(&ObjectRef::new_with(name, self.resource.clone()).within(namespace))
    }

    /// Makes `desired` exist as the job's: created when absent, applied when a field kompi sets differs
    /// (fields a scheduler's admission adds, such as Volcano's default queue, are left alone).
    pub async fn ensure(&self, desired: &DynamicObject, uid: &str) -> Result<(), OperatorError> {
        let name = desired.name_any();
        let namespace = desired.namespace().unwrap_or_default();
        let api = self.api(&namespace);
        match self.cached(&namespace, &name) {
            Some(existing) if owned_by(&*existing, uid) => {
                if !sets_all(&existing.data["spec"], &desired.data["spec"]) {
                    let params = PatchParams::apply(FIELD_MANAGER).force();
                    api.patch(&name, &params, &Patch::Apply(desired)).await.map_err(|e| OperatorError::api(format!("applying {KIND} {name}"), e))?;
                    debug!(name, "applied the PodGroup");
                }
                Ok(())
            }
            Some(existing) => Err(not_ours(KIND, &*existing)),
            None => {
                let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                match api.create(&params, desired).await {
                    Ok(_) => {
                        info!(name, "created the PodGroup");
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let existing = api.get(&name).await.map_err(|e| OperatorError::api(format!("reading {KIND} {name}"), e))?;
                        if owned_by(&existing, uid) { Ok(()) } else { Err(not_ours(KIND, &existing)) }
                    }
                    Err(e) => Err(OperatorError::api(format!("creating {KIND} {name}"), e)),
                }
            }
        }
    }

    /// Deletes the job's PodGroup, if there is one and it is the job's (its uid the precondition).
    pub async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<(), OperatorError> {
        let Some(existing) = self.cached(namespace, name).filter(|g| owned_by(&**g, uid)) else {
            return Ok(());
        };
        let params = DeleteParams { preconditions: Some(Preconditions { uid: existing.uid(), ..Default::default() }), ..Default::default() };
        match self.api(namespace).delete(name, &params).await {
            Ok(_) => {
                info!(name, "deleted the PodGroup");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(OperatorError::api(format!("deleting {KIND} {name}"), e)),
        }
    }
}

/// Whether every field of `desired` is in `existing` with the same value.
fn sets_all(existing: &Value, desired: &Value) -> bool {
    match (existing, desired) {
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(k, v)| have.get(k).is_some_and(|h| sets_all(h, v))),
        _ => existing == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_added_by_others_need_no_apply_changed_ones_do() {
        let desired = json!({"minMember": 3, "minResources": {"cpu": "3"}});
        assert!(sets_all(&json!({"minMember": 3, "minResources": {"cpu": "3"}, "queue": "default"}), &desired));
        assert!(!sets_all(&json!({"minMember": 2, "minResources": {"cpu": "3"}}), &desired));
        assert!(!sets_all(&json!({"minMember": 3}), &desired));
        assert!(!sets_all(&Value::Null, &desired));
    }
}
