//! `kompi keygen`: a real key file, checked with OpenSSH's own ssh-keygen.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn kompi(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kompi")).current_dir(dir).args(args).output().unwrap()
}

/// The value of `sshKey.KEY` in a values file written by keygen.
fn field(text: &str, key: &str) -> String {
    let tree: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    tree["sshKey"][key].as_str().unwrap().to_string()
}

fn check_with_ssh_keygen(kind: &str, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = kompi(dir.path(), &["keygen", "--type", kind]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let path = dir.path().join("ssh-key.yaml");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let (private, public) = (field(&text, "id_rsa"), field(&text, "id_rsa_pub"));
    assert!(public.starts_with(prefix), "{public}");
    let key_file = dir.path().join("id");
    std::fs::write(&key_file, &private).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let derived = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key_file).output().expect("ssh-keygen (openssh-client) is installed");
    assert!(derived.status.success(), "{}", String::from_utf8_lossy(&derived.stderr));
    let derived = String::from_utf8(derived.stdout).unwrap();
    // ssh-keygen -y prints "type base64 [comment]"; compare type and key.
    let words = |s: &str| s.split_whitespace().take(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&derived), words(&public));
    let fingerprint = Command::new("ssh-keygen").arg("-l").arg("-f").arg(&key_file).output().unwrap();
    let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
    let printed = stdout.lines().find_map(|l| l.strip_prefix("fingerprint: ")).unwrap();
    assert!(fingerprint.contains(printed), "ssh-keygen -l: {fingerprint}, kompi: {printed}");
}

#[test]
fn ed25519_key_is_what_ssh_keygen_derives() {
    check_with_ssh_keygen("ed25519", "ssh-ed25519 ");
}

#[test]
fn rsa_key_is_what_ssh_keygen_derives() {
    check_with_ssh_keygen("rsa", "ssh-rsa ");
}

#[test]
fn refuses_to_overwrite_without_force_and_keeps_0600_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.yaml");
    std::fs::write(&path, "precious").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = kompi(dir.path(), &["keygen", "-o", "k.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    let out = kompi(dir.path(), &["keygen", "-o", "k.yaml", "--force"]);
    assert!(out.status.success());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().contains("id_rsa_pub"));
}

#[test]
fn the_written_file_is_accepted_by_template() {
    let dir = tempfile::tempdir().unwrap();
    assert!(kompi(dir.path(), &["keygen"]).status.success());
    let out = kompi(dir.path(), &["template", "c", "-f", "ssh-key.yaml", "--show-only", "Secret/c-ssh-key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_symlink_at_the_output_is_replaced_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("k.yaml")).unwrap();
    let out = kompi(dir.path(), &["keygen", "-o", "k.yaml", "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "--force wrote through the symlink");
    let meta = std::fs::symlink_metadata(dir.path().join("k.yaml")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Without --force even a dangling symlink counts as taken, and its target is not created.
    std::os::unix::fs::symlink(dir.path().join("would-be-created"), dir.path().join("dangling.yaml")).unwrap();
    let out = kompi(dir.path(), &["keygen", "-o", "dangling.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("would-be-created").exists());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.starts_with(".kompi")), "a temporary file was left: {names:?}");
}

#[test]
fn a_comment_that_would_break_authorized_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for comment in ["x\nssh-ed25519 AAAA attacker", "a\rb", "esc\x1b[2J"] {
        let out = kompi(dir.path(), &["keygen", "--comment", comment]);
        assert_eq!(out.status.code(), Some(2), "{comment:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("control character"));
        assert!(!dir.path().join("ssh-key.yaml").exists());
    }
    assert!(kompi(dir.path(), &["keygen", "--comment", "me@host with spaces"]).status.success());
}
