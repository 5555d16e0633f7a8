//! Secret NAME-ssh-key: the cluster key pair, as kube-openmpi's chart laid it out.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kompi_spec::{ClusterSpec, SshKeyPair};

use crate::labels::meta;

pub fn ssh_key_secret(spec: &ClusterSpec, key: &SshKeyPair) -> Secret {
    let public = format!("{}\n", key.public_key.trim_end());
    Secret {
        metadata: meta(spec, spec.name.ssh_secret(), None),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("id_rsa".to_string(), ByteString(key.private_key.clone().into_bytes())),
            ("id_rsa.pub".to_string(), ByteString(public.clone().into_bytes())),
            ("authorized_keys".to_string(), ByteString(public.into_bytes())),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    #[test]
    fn holds_the_three_files() {
        let s = spec("");
        let secret = ssh_key_secret(&s, s.ssh_key.as_ref().unwrap());
        let data = secret.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["authorized_keys", "id_rsa", "id_rsa.pub"]);
        assert_eq!(data["authorized_keys"], data["id_rsa.pub"]);
        assert!(String::from_utf8_lossy(&data["id_rsa"].0).contains("PRIVATE KEY"));
    }
}
