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

    #[test]
    fn debug_output_shows_the_keys_not_the_key() {
        let s = spec("");
        let private = s.ssh_key.as_ref().unwrap().private_key.clone();
        let shown = format!("{:?}", crate::render(&s));
        assert!(shown.contains("\"id_rsa\"") && shown.contains("mpi-ssh-key"), "{shown}");
        assert!(!shown.contains(private.lines().nth(1).unwrap()), "the private key is in the Debug output");
        assert!(!shown.contains("PRIVATE KEY"));
    }
}
