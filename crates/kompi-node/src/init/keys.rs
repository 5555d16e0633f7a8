//! The cluster key (read from the mounted Secret, checked, copied 0600 into the private directory) and the
//! ephemeral host key (made fresh at every start).

use std::io;
use std::path::Path;

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, AuthorizedKeys, LineEnding, PrivateKey, PublicKey};

use super::error::InitError;
use super::layout::Layout;
use crate::atomic_file::write_atomically;

pub const PRIVATE_KEY_FILE: &str = "id_rsa";
pub const PUBLIC_KEY_FILE: &str = "id_rsa.pub";
pub const AUTHORIZED_KEYS_FILE: &str = "authorized_keys";

pub struct ClusterKey {
    pub private: String,
    pub public: String,
    pub authorized: String,
}

pub fn read(key_dir: &Path, uid: u32) -> Result<ClusterKey, InitError> {
    let read = |name: &str| read_key_file(&key_dir.join(name), uid);
    Ok(ClusterKey { private: read(PRIVATE_KEY_FILE)?, public: read(PUBLIC_KEY_FILE)?, authorized: read(AUTHORIZED_KEYS_FILE)? })
}

fn read_key_file(path: &Path, uid: u32) -> Result<String, InitError> {
    std::fs::read_to_string(path).map_err(|e| {
        let (reason, fix) = match e.kind() {
            io::ErrorKind::NotFound => (
                "no such file".to_string(),
                "mount the cluster's ssh key Secret (<cluster>-ssh-key, rendered by `kompi template`) at --key-dir".to_string(),
            ),
            io::ErrorKind::PermissionDenied => (
                format!("permission denied for uid {uid}"),
                format!("the Secret is mounted mode 0400 for root, so set the pod's securityContext.fsGroup to let uid {uid} read it"),
            ),
            io::ErrorKind::InvalidData => ("it is not text".to_string(), "regenerate the key with `kompi keygen`".to_string()),
            _ => (e.to_string(), "check the key volume mounted at --key-dir".to_string()),
        };
        InitError::KeyUnreadable { path: path.to_path_buf(), reason, fix }
    })
}

/// Checks the pair, and that authorized_keys lets the cluster's own key in (else the pods could not ssh to each other).
pub fn validate(key: &ClusterKey, key_dir: &Path) -> Result<(), InitError> {
    kompi_spec::sshkey::check_pair(&key.private, &key.public)
        .map_err(|problem| InitError::KeyRejected { dir: key_dir.to_path_buf(), problem })?;
    let authorized_rejected = |problem: String| InitError::AuthorizedKeysRejected { path: key_dir.join(AUTHORIZED_KEYS_FILE), problem };
    let public = PublicKey::from_openssh(key.public.trim())
        .map_err(|e| InitError::KeyRejected { dir: key_dir.to_path_buf(), problem: format!("id_rsa.pub: {e}") })?;
    let mut lists_cluster_key = false;
    for (line, entry) in AuthorizedKeys::new(&key.authorized).enumerate() {
        let entry = entry.map_err(|e| {
            authorized_rejected(format!("entry {} is not an OpenSSH public key ({e}); re-render the Secret with `kompi template`", line + 1))
        })?;
        lists_cluster_key |= entry.public_key().key_data() == public.key_data();
    }
    if !lists_cluster_key {
        return Err(authorized_rejected(
            "it does not list the cluster's public key (id_rsa.pub), so the pods could not ssh to each other; re-render the Secret with `kompi template`".into(),
        ));
    }
    Ok(())
}

/// Copies the cluster key into the private directory, mode 0600.
pub fn install(key: &ClusterKey, layout: &Layout) -> Result<(), InitError> {
    for (path, text) in [(&layout.identity, &key.private), (&layout.authorized_keys, &key.authorized)] {
        write_atomically(path, with_final_newline(text).as_bytes(), 0o600).map_err(|e| InitError::file("write", path, e))?;
    }
    Ok(())
}

/// A fresh ed25519 host key in OpenSSH format (pods come and go; clients do not pin host keys).
pub fn generate_host_key(comment: &str) -> Result<String, InitError> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(InitError::HostKey)?;
    key.set_comment(comment);
    Ok(key.to_openssh(LineEnding::LF).map_err(InitError::HostKey)?.to_string())
}

/// OpenSSH refuses a private key whose last line lacks its newline (Secrets edited by hand often do).
fn with_final_newline(text: &str) -> String {
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompi_spec::sshkey::{KeyType, generate};

    fn cluster_key() -> ClusterKey {
        let k = generate(KeyType::Ed25519, "test", &mut OsRng).unwrap();
        ClusterKey { authorized: k.public_openssh.clone(), private: k.private_openssh, public: k.public_openssh }
    }

    #[test]
    fn a_generated_secret_passes() {
        validate(&cluster_key(), Path::new("/k")).unwrap();
    }

    #[test]
    fn a_foreign_public_half_is_refused() {
        let mut key = cluster_key();
        key.public = cluster_key().public;
        let e = validate(&key, Path::new("/k")).unwrap_err().to_string();
        assert!(e.starts_with("the cluster key in /k is unusable") && e.contains("kompi keygen"), "{e}");
    }

    #[test]
    fn authorized_keys_must_parse_and_list_the_cluster_key() {
        let mut key = cluster_key();
        key.authorized = format!("# extra\n{}\n{}", cluster_key().public, key.public);
        validate(&key, Path::new("/k")).unwrap();
        key.authorized = cluster_key().public;
        let e = validate(&key, Path::new("/k")).unwrap_err().to_string();
        assert!(e.contains("/k/authorized_keys") && e.contains("does not list"), "{e}");
        key.authorized = "ssh-ed25519 garbage".into();
        let e = validate(&key, Path::new("/k")).unwrap_err().to_string();
        assert!(e.contains("entry 1 is not an OpenSSH public key"), "{e}");
    }

    #[test]
    fn unreadable_files_say_which_and_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 1000).err().unwrap().to_string();
        assert!(e.contains("id_rsa: no such file") && e.contains("--key-dir"), "{e}");
    }

    #[test]
    fn host_keys_are_fresh_ed25519_keys() {
        let a = generate_host_key("n").unwrap();
        let key = PrivateKey::from_openssh(&a).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_ne!(a, generate_host_key("n").unwrap());
    }

    #[test]
    fn installed_copies_are_private() {
        use std::os::unix::fs::MetadataExt;
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "n");
        std::fs::create_dir_all(&layout.private_dir).unwrap();
        let mut key = cluster_key();
        key.private = key.private.trim_end().to_string();
        install(&key, &layout).unwrap();
        for path in [&layout.identity, &layout.authorized_keys] {
            assert_eq!(std::fs::metadata(path).unwrap().mode() & 0o777, 0o600, "{}", path.display());
        }
        assert!(std::fs::read_to_string(&layout.identity).unwrap().ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
    }
}
