//! The cluster's ssh key pair: made in Rust (replacing kube-openmpi's gen-ssh-key.sh), written as a
//! values file, and checked when read back. Randomness is passed in, so this stays free of I/O.

use ssh_key::rand_core::CryptoRngCore;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    /// For images whose OpenSSH predates ed25519 (6.5).
    Rsa,
}

pub struct GeneratedKey {
    pub private_openssh: String,
    pub public_openssh: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

pub const RSA_BITS: usize = 3072;

pub fn generate(kind: KeyType, comment: &str, rng: &mut impl CryptoRngCore) -> Result<GeneratedKey, ssh_key::Error> {
    let mut key = match kind {
        KeyType::Ed25519 => PrivateKey::random(rng, Algorithm::Ed25519)?,
        KeyType::Rsa => PrivateKey::from(ssh_key::private::RsaKeypair::random(rng, RSA_BITS)?),
    };
    key.set_comment(comment);
    let public = key.public_key();
    Ok(GeneratedKey {
        private_openssh: key.to_openssh(LineEnding::LF)?.to_string(),
        public_openssh: public.to_openssh()?,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// The values file kube-openmpi's chart reads: `sshKey.id_rsa` and `sshKey.id_rsa_pub`.
pub fn values_yaml(key: &GeneratedKey) -> String {
    let mut out = String::from("# written by `kompi keygen`: the cluster's ssh key pair (keep it private)\nsshKey:\n");
    for (field, text) in [("id_rsa", &key.private_openssh), ("id_rsa_pub", &key.public_openssh)] {
        out.push_str(&format!("  {field}: |\n"));
        for line in text.trim_end().lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

const ENCRYPTED: &str = "id_rsa is protected by a passphrase, which ssh inside the cluster cannot enter; use a key without one (`kompi keygen`)";

/// Checks that `private` is an unencrypted private key and `public` is its public half.
pub fn check_pair(private: &str, public: &str) -> Result<(), String> {
    let public_key = PublicKey::from_openssh(public.trim())
        .map_err(|e| format!("id_rsa_pub is not an OpenSSH public key ({e}); regenerate both with `kompi keygen`"))?;
    if private.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = PrivateKey::from_openssh(private.trim())
            .map_err(|e| format!("id_rsa is not a valid OpenSSH private key ({e}); regenerate it with `kompi keygen`"))?;
        if key.is_encrypted() {
            return Err(ENCRYPTED.into());
        }
        if key.public_key().key_data() != public_key.key_data() {
            return Err("id_rsa_pub is not the public half of id_rsa; regenerate both with `kompi keygen`".into());
        }
        return Ok(());
    }
    // Older ssh-keygen wrote PEM; OpenSSH reads it, so accept it (its pairing cannot be checked
    // here) unless it is encrypted: `Proc-Type: 4,ENCRYPTED` (PKCS#1) or `ENCRYPTED PRIVATE KEY` (PKCS#8).
    if private.contains("-----BEGIN") && private.contains("PRIVATE KEY-----") {
        if private.contains("ENCRYPTED") {
            return Err(ENCRYPTED.into());
        }
        return Ok(());
    }
    Err("id_rsa is not a private key (expected -----BEGIN OPENSSH PRIVATE KEY-----); `kompi keygen` writes one".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::rand_core::OsRng;

    #[test]
    fn generated_pairs_check_out() {
        let k = generate(KeyType::Ed25519, "kompi@test", &mut OsRng).unwrap();
        assert!(k.public_openssh.starts_with("ssh-ed25519 "));
        assert!(k.public_openssh.ends_with(" kompi@test"));
        assert!(k.fingerprint.starts_with("SHA256:"));
        check_pair(&k.private_openssh, &k.public_openssh).unwrap();
        let other = generate(KeyType::Ed25519, "", &mut OsRng).unwrap();
        assert!(check_pair(&k.private_openssh, &other.public_openssh).unwrap_err().contains("not the public half"));
        assert!(check_pair("hello", &k.public_openssh).unwrap_err().contains("not a private key"));
        assert!(check_pair(&k.private_openssh, "ssh-ed25519 garbage").unwrap_err().contains("not an OpenSSH public key"));
    }

    #[test]
    fn encrypted_keys_are_refused_in_every_format() {
        // Made with ssh-keygen -N secret: OpenSSH's own format, PEM (-m PEM) and PKCS#8 (-m PKCS8).
        let keys = [
            (include_str!("testdata/encrypted-openssh"), include_str!("testdata/encrypted-openssh.pub")),
            (include_str!("testdata/encrypted-pem"), include_str!("testdata/encrypted-pem.pub")),
            (include_str!("testdata/encrypted-pkcs8"), include_str!("testdata/encrypted-pkcs8.pub")),
        ];
        for (private, public) in keys {
            assert_eq!(check_pair(private, public).unwrap_err(), ENCRYPTED, "{}", private.lines().next().unwrap());
        }
    }

    #[test]
    fn values_file_reads_back() {
        let k = generate(KeyType::Ed25519, "c", &mut OsRng).unwrap();
        let tree = crate::tree::parse_yaml(&values_yaml(&k)).unwrap();
        assert_eq!(tree["sshKey"]["id_rsa"].as_str().unwrap(), k.private_openssh);
        assert_eq!(tree["sshKey"]["id_rsa_pub"].as_str().unwrap().trim(), k.public_openssh);
    }
}
