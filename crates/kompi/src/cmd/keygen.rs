//! `kompi keygen`: the cluster's ssh key pair as a values file (replaces kube-openmpi's gen-ssh-key.sh).

use std::io::Write;
use std::path::{Path, PathBuf};

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
    if let Some(c) = args.comment.chars().find(|c| c.is_control()) {
        return Err(Exit::invalid(format!(
            "--comment {:?} contains the control character {c:?}; authorized_keys holds one key per line, so use plain text",
            args.comment
        ))
        .into());
    }
    let kind = match args.kind {
        KeyKind::Ed25519 => KeyType::Ed25519,
        KeyKind::Rsa => KeyType::Rsa,
    };
    let key = generate(kind, &args.comment, &mut OsRng).map_err(|e| anyhow::anyhow!("generating the key failed: {e}"))?;
    let path = &args.output;
    let cannot_write = |e: std::io::Error| Exit::new(kompi_spec::ErrorKind::Failed, format!("{}: cannot write: {e}", path.display()));
    // A new file beside the target (0600 from the start), then moved into place: whatever is at the
    // path, a symlink included, is replaced rather than written through.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".kompi-keygen-").tempfile_in(dir).map_err(cannot_write)?;
    temp.write_all(values_yaml(&key).as_bytes()).map_err(cannot_write)?;
    temp.as_file().sync_all().map_err(cannot_write)?;
    if args.force {
        temp.persist(path).map_err(|e| cannot_write(e.error))?;
    } else {
        temp.persist_noclobber(path).map_err(|e| match e.error.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Exit::invalid(format!("{}: already exists; pass --force to replace it (its old key stops working)", path.display()))
            }
            _ => cannot_write(e.error),
        })?;
    }
    println!("wrote {} ({} key, mode 0600)", path.display(), format!("{:?}", args.kind).to_lowercase());
    println!("fingerprint: {}", key.fingerprint);
    println!("use it with: kompi template NAME -n NAMESPACE -f values.yaml -f {}", path.display());
    Ok(())
}
