//! `kompi up`: server-side apply of every rendered object (field manager `kompi`), the ssh key Secret
//! made in memory when none is given, and in-place updates when the values change.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kompi_render::{Kind, Object, render};
use kompi_spec::sshkey::{KeyType, generate};
use kompi_spec::{ClusterSpec, SshKeyPair, contract};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::client::Connection;
use crate::error::KubeError;

pub const FIELD_MANAGER: &str = "kompi";
/// On the master pod: a digest of its rendered spec. Pods are mostly immutable, so a changed digest
/// means the master is recreated.
pub const SPEC_DIGEST_ANNOTATION: &str = "kompi.io/spec-digest";

/// What `up` did, object by object.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub applied: Vec<String>,
    pub kept: Vec<String>,
    pub recreated: Vec<String>,
    pub pruned: Vec<String>,
}

/// Why `up` stopped part way, with exactly what was and was not applied.
#[derive(Debug)]
pub struct PartialApply {
    pub report: ApplyReport,
    pub failed: String,
    pub not_applied: Vec<String>,
    pub error: KubeError,
}

impl PartialApply {
    pub fn kind(&self) -> kompi_spec::ErrorKind {
        self.error.kind()
    }
}

impl std::fmt::Display for PartialApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (while applying {})", self.error, self.failed)?;
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        write!(f, "\napplied: {}", list(&self.report.applied))?;
        write!(f, "\nnot applied: {}", list(&self.not_applied))
    }
}

/// Applies the cluster. When the spec carries no key, an existing key Secret is kept (its pods trust
/// it) or a fresh key is made; either way the private key never touches the local disk.
pub async fn up(conn: &Connection, spec: &ClusterSpec, force_conflicts: bool) -> Result<ApplyReport, Box<PartialApply>> {
    let fail_early = |error: KubeError| Box::new(PartialApply { report: ApplyReport::default(), failed: "the preflight checks".into(), not_applied: vec!["everything".into()], error });
    check_namespace(conn).await.map_err(fail_early)?;
    let mut spec = spec.clone();
    let mut report = ApplyReport::default();
    if spec.ssh_key.is_none() {
        let secrets: Api<Secret> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let name = spec.name.ssh_secret();
        match secrets.get_opt(&name).await.map_err(|e| fail_early(conn.error(&format!("reading Secret {name}"), e)))? {
            Some(_) => report.kept.push(format!("Secret/{name} (its key)")),
            None => {
                let key = generate(KeyType::Ed25519, &format!("kompi-{}", spec.name), &mut ssh_key::rand_core::OsRng)
                    .map_err(|e| fail_early(KubeError::Failed(format!("generating the ssh key: {e}"))))?;
                spec.ssh_key = Some(SshKeyPair { private_key: key.private_openssh, public_key: key.public_openssh });
            }
        }
    }
    let objects = render(&spec);
    let target = conn.target();
    let ids: Vec<String> = objects.iter().map(Object::id).collect();
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force_conflicts;
    for (i, object) in objects.iter().enumerate() {
        let mut json = object.to_json(target);
        let outcome = async {
            if let Object::Pod(_) = object {
                let digest = digest(&json["spec"]);
                json["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION] = Value::from(digest.clone());
                if replace_changed_master(conn, object.name(), &digest).await? {
                    report.recreated.push(object.id());
                }
            }
            apply_one(conn, object, &json, &params).await
        };
        if let Err(error) = outcome.await {
            return Err(Box::new(PartialApply { report, failed: object.id(), not_applied: ids[i + 1..].to_vec(), error }));
        }
        report.applied.push(object.id());
    }
    let pruned = prune(conn, &spec, &objects).await;
    match pruned {
        Ok(p) => report.pruned = p,
        Err(error) => return Err(Box::new(PartialApply { report, failed: "removing objects the values no longer ask for".into(), not_applied: vec![], error })),
    }
    Ok(report)
}

async fn check_namespace(conn: &Connection) -> Result<(), KubeError> {
    let namespaces: Api<Namespace> = Api::all(conn.client.clone());
    match namespaces.get_opt(&conn.namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(KubeError::NamespaceNotFound(conn.namespace.clone())),
        // Users allowed in a namespace may not read namespaces; the apply itself will tell.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(conn.error("reading the namespace", e)),
    }
}

async fn apply_one(conn: &Connection, object: &Object, json: &Value, params: &PatchParams) -> Result<(), KubeError> {
    let api = conn.dynamic_api(object.kind());
    let context = format!("applying {}", object.id());
    api.patch(object.name(), params, &Patch::Apply(json)).await.map_err(|e| conn.apply_error(&context, e))?;
    Ok(())
}

/// Deletes the master pod when its spec changed (and waits until it is gone); true if it did.
async fn replace_changed_master(conn: &Connection, name: &str, digest: &str) -> Result<bool, KubeError> {
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let Some(existing) = pods.get_opt(name).await.map_err(|e| conn.error(&format!("reading Pod {name}"), e))? else { return Ok(false) };
    let current = existing.metadata.annotations.as_ref().and_then(|a| a.get(SPEC_DIGEST_ANNOTATION));
    if current.map(String::as_str) == Some(digest) {
        return Ok(false);
    }
    pods.delete(name, &DeleteParams::default()).await.map_err(|e| conn.error(&format!("deleting Pod {name}"), e))?;
    crate::wait::until_gone(conn, name).await?;
    Ok(true)
}

/// Objects of this cluster that the values no longer render (a disabled gateway, say).
async fn prune(conn: &Connection, spec: &ClusterSpec, desired: &[Object]) -> Result<Vec<String>, KubeError> {
    let wanted: BTreeSet<String> = desired.iter().map(Object::id).collect();
    let mut pruned = Vec::new();
    let selector = contract::instance_selector(spec.name.as_str());
    for kind in Kind::ALL.into_iter().filter(|k| k.depends_on_values()) {
        let api = conn.dynamic_api(kind);
        let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|e| conn.error(&format!("listing {}s", kind.name()), e))?;
        for object in list {
            let name = object.metadata.name.clone().unwrap_or_default();
            let id = format!("{}/{name}", kind.name());
            if !wanted.contains(&id) {
                api.delete(&name, &DeleteParams::default()).await.map_err(|e| conn.error(&format!("deleting {id}"), e))?;
                pruned.push(id);
            }
        }
    }
    Ok(pruned)
}

/// A short stable digest (FNV-1a, 64 bits) of a JSON value's canonical text.
fn digest(value: &Value) -> String {
    let text = value.to_string();
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_follows_content() {
        assert_eq!(digest(&serde_json::json!({"a": 1})), digest(&serde_json::json!({"a": 1})));
        assert_ne!(digest(&serde_json::json!({"a": 1})), digest(&serde_json::json!({"a": 2})));
    }
}
