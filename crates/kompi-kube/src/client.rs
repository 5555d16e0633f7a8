//! Connecting like kubectl: --kubeconfig, KUBECONFIG, ~/.kube/config, --context, -n (default from the
//! context), or the in-cluster configuration inside a pod.

use std::path::PathBuf;

use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};

use crate::error::{ApiCall, KubeError, classify};

#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client, the namespace to work in, and what the server is.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub namespace: String,
    pub server: String,
    /// The server's minor version (1.<minor>), for APIs that moved (PodDisruptionBudget).
    pub minor: u32,
}

impl Connection {
    /// Maps a kube error of this server; `context` says what kompi was doing.
    pub fn error(&self, context: &str, e: kube::Error) -> KubeError {
        classify(&self.server, ApiCall::Other(context), e)
    }

    /// Maps a kube error of a server-side apply, where a conflict means another field manager.
    pub fn apply_error(&self, context: &str, e: kube::Error) -> KubeError {
        classify(&self.server, ApiCall::Apply(context), e)
    }

    /// What render must know of this server.
    pub fn target(&self) -> kompi_render::Target {
        kompi_render::Target { kube_minor: Some(self.minor) }
    }

    /// The API of one kind of a cluster's objects in this namespace, at the version this server serves.
    pub fn dynamic_api(&self, kind: kompi_render::Kind) -> Api<DynamicObject> {
        let api = kind.api_type(self.target());
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(api.group, api.version, api.kind));
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }
}

pub async fn connect(target: &Target) -> Result<Connection, KubeError> {
    let options = KubeConfigOptions { context: target.context.clone(), ..Default::default() };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options).await.map_err(|e| KubeError::Config(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| KubeError::Config(e.to_string()))?,
        (None, None) => Config::infer().await.map_err(|e| KubeError::Config(e.to_string()))?,
    };
    let server = config.cluster_url.to_string();
    let namespace = target.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    kompi_spec::dns1123_label(&namespace).map_err(|m| KubeError::Invalid(format!("--namespace: {m}")))?;
    let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
    let version = client.apiserver_version().await.map_err(|e| classify(&server, ApiCall::Other("asking the server for its version"), e))?;
    let minor = version.minor.trim_end_matches('+').parse().unwrap_or(u32::MAX);
    Ok(Connection { client, namespace, server, minor })
}
