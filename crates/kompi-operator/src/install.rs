//! `kompi operator install`: server-side apply of `kompi_job::manifests` (field manager `kompi`), then a
//! wait until the CRD is established and the operator's Deployment is available (its pod is Ready once
//! its watches have listed everything). An MPIJob CRD that is not kompi's (mpi-operator's) is never
//! overwritten: beside mpi-operator, kompi uses it as it is.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kompi_job::crd::{CRD_NAME, is_kompis};
use kompi_job::managed::Claim;
use kompi_job::manifests::{InstallOptions, NAME, manifests};
use kompi_kube::{Connection, KubeError};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The field manager of the CLI's own applies (the controller's is `kompi-operator`).
pub const FIELD_MANAGER: &str = "kompi";

#[derive(Debug, Default)]
pub struct InstallReport {
    pub applied: Vec<String>,
    /// Why an object was left as it is.
    pub kept: Vec<String>,
}

/// Applies the manifests and waits (up to `timeout`) until the operator runs.
pub async fn install(conn: &Connection, options: &InstallOptions, timeout: Duration, progress: &mut dyn FnMut(&str)) -> Result<InstallReport, KubeError> {
    let mut report = InstallReport::default();
    let crds: Api<CustomResourceDefinition> = Api::all(conn.client.clone());
    let existing = crds.get_opt(CRD_NAME).await.map_err(|e| conn.error("reading the MPIJob CRD", e))?;
    let foreign_crd = existing.as_ref().is_some_and(|crd| !is_kompis(crd));
    if foreign_crd && options.claim == Claim::Every {
        return Err(KubeError::Invalid(format!(
            "CustomResourceDefinition {CRD_NAME} exists and is not kompi's (mpi-operator's?): to run kompi beside mpi-operator, \
             install with --beside-mpi-operator (kompi then runs only the MPIJobs with spec.runPolicy.managedBy: kompi.io/operator); \
             to replace mpi-operator, uninstall it first"
        )));
    }
    if let Some(gang) = &options.gang {
        let name = gang.crd_name();
        if crds.get_opt(&name).await.map_err(|e| conn.error(&format!("reading CustomResourceDefinition {name}"), e))?.is_none() {
            return Err(KubeError::Invalid(format!(
                "--gang-scheduling {}: CustomResourceDefinition {name} is not installed: install {} first (kompi makes its PodGroups but never installs another project's CRD)",
                gang.flag(),
                gang.project()
            )));
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER);
    for object in manifests(options) {
        let id = object_id(&object);
        if foreign_crd && object["kind"] == "CustomResourceDefinition" {
            report.kept.push(format!("{id} (mpi-operator's, used as it is)"));
            continue;
        }
        apply(conn, &object, &params).await?;
        progress(&format!("applied {id}"));
        report.applied.push(id);
    }
    let deadline = Instant::now() + timeout;
    if !foreign_crd {
        progress("waiting for the MPIJob CRD to be established");
        until(deadline, timeout, "the MPIJob CRD to be established", || async {
            let crd = crds.get(CRD_NAME).await.map_err(|e| conn.error("reading the MPIJob CRD", e))?;
            let established = crd.status.and_then(|s| s.conditions).into_iter().flatten().any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        })
        .await?;
    }
    progress("waiting for the operator to be ready");
    let deployments: Api<Deployment> = Api::namespaced(conn.client.clone(), &options.namespace);
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &options.namespace);
    let mut reported = String::new();
    loop {
        let d = deployments.get(NAME).await.map_err(|e| conn.error("reading the operator's Deployment", e))?;
        let generation = d.metadata.generation.unwrap_or(0);
        let status = d.status.unwrap_or_default();
        let rolled_out = status.observed_generation.unwrap_or(0) >= generation
            && status.updated_replicas.unwrap_or(0) >= 1
            && status.available_replicas.unwrap_or(0) >= 1
            && status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0);
        if rolled_out {
            break;
        }
        let selector = format!("app.kubernetes.io/name={NAME}");
        let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(|e| conn.error("listing the operator's pods", e))?;
        if let Some(stuck) = list.items.iter().find_map(kompi_kube::pods::stuck) {
            if stuck.to_string() != reported {
                reported = stuck.to_string();
                progress(&format!("  {stuck}"));
            }
            if stuck.hopeless {
                return Err(KubeError::Failed(format!("the operator cannot start: {stuck}")));
            }
        }
        if Instant::now() >= deadline {
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: "waiting for the operator's Deployment to be available".into() });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(report)
}

fn object_id(object: &Value) -> String {
    format!("{}/{}", object["kind"].as_str().unwrap_or_default(), object["metadata"]["name"].as_str().unwrap_or_default())
}

async fn apply(conn: &Connection, object: &Value, params: &PatchParams) -> Result<(), KubeError> {
    let (group, version) = match object["apiVersion"].as_str().unwrap_or_default().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), object["apiVersion"].as_str().unwrap_or_default().to_string()),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, object["kind"].as_str().unwrap_or_default()));
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(conn.client.clone(), ns, &resource),
        None => Api::all_with(conn.client.clone(), &resource),
    };
    api.patch(name, params, &Patch::Apply(object)).await.map_err(|e| conn.error(&format!("applying {}", object_id(object)), e))?;
    Ok(())
}

/// Polls `check` twice a second until it yields, failing at the deadline.
async fn until<F, Fut>(deadline: Instant, timeout: Duration, what: &str, mut check: F) -> Result<(), KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<()>, KubeError>>,
{
    loop {
        if check().await?.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for {what}") });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
