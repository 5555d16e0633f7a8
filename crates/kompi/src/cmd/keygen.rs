//! `kompi keygen`: the cluster's ssh key pair as a values file (replaces kube-openmpi's gen-ssh-key.sh).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kompi_spec::sshkey::{KeyType, generate, values_yaml};
use ssh_key::rand_core::OsRng;

use crate::exit::Exit;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Key type; rsa only for images whose OpenSSH is older than 6.5
    #[arg(long = "type", value_enum, default_value_t = KeyKind::Ed25519)]
    pub kind: KeyKind,
    /// The values file to write (mode 0600)
    #[arg(short, long, default_value = "ssh-key.yaml")]
    pub output: PathBuf,
    /// Replace the file if it exists
    #[arg(long)]
    pub force: bool,
    /// Comment of the public key
    #[arg(long, default_value = "kompi")]
    pub comment: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyKind {
    Ed25519,
    Rsa,
}

pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let kind = match args.kind {
        KeyKind::Ed25519 => KeyType::Ed25519,
        KeyKind::Rsa => KeyType::Rsa,
    };
    let key = generate(kind, &args.comment, &mut OsRng).map_err(|e| anyhow::anyhow!("generating the key failed: {e}"))?;
    let path = &args.output;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Exit::invalid(format!("{}: already exists; pass --force to replace it (its old key stops working)", path.display()))
        }
        _ => Exit::new(kompi_spec::ErrorKind::Failed, format!("{}: cannot write: {e}", path.display())),
    })?;
    // An existing file keeps its mode when truncated; the key must not stay readable by others.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(values_yaml(&key).as_bytes())?;
    file.sync_all()?;
    println!("wrote {} ({} key, mode 0600)", path.display(), format!("{:?}", args.kind).to_lowercase());
    println!("fingerprint: {}", key.fingerprint);
    println!("use it with: kompi template NAME -n NAMESPACE -f values.yaml -f {}", path.display());
    Ok(())
}
