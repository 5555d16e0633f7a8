//! The static kompi (scripts/static-kompi.sh), the one kompi's image carries and injects into users' images:
//! no dynamic dependency, and it starts in root filesystems of other Debian releases than the one it was
//! built on: a bullseye user's image (glibc 2.31, older than the build's) and kompi's bookworm image.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// mpi-operator's base image (Debian bullseye, openssh-server, user mpiuser) with Open MPI, as the e2e
/// test's user image is built: one cached root filesystem for both.
const BULLSEYE_USER_IMAGE: &[&str] = &["--suite", "bullseye", "--user", "mpiuser", "openmpi-bin", "openssh-server"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where scripts/static-kompi.sh builds it, and whether it is there.
fn static_kompi() -> Result<PathBuf, String> {
    let out = Command::new("bash").arg(repo().join("scripts/static-kompi.sh")).arg("--path").output().map_err(|e| e.to_string())?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        Err(format!("no static kompi at {}: run scripts/static-kompi.sh", path.display()))
    }
}

fn root_and_static_kompi() -> Result<(), String> {
    harness::root()?;
    static_kompi()?;
    which("mmdebstrap").map_err(|e| format!("{e}: install it (testbed/testbed.sh build does)"))
}

fn which(program: &str) -> Result<(), String> {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().map_err(|e| e.to_string())?;
    if found.status.success() { Ok(()) } else { Err(format!("no {program}")) }
}

fn testbed(args: &[&str]) -> PathBuf {
    let out = Command::new(repo().join("testbed/testbed.sh")).args(args).output().unwrap();
    assert!(out.status.success(), "testbed.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A root filesystem unpacked from TAR with the static kompi at /kompi.
fn unpacked_with_kompi(tar: &Path) -> tempfile::TempDir {
    let root = tempfile::Builder::new().prefix("kompi-static-").tempdir().unwrap();
    let status = Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(root.path()).status().unwrap();
    assert!(status.success(), "unpacking {}", tar.display());
    std::fs::copy(static_kompi().unwrap(), root.path().join("kompi")).unwrap();
    root
}

fn chroot(root: &Path, args: &[&str]) -> Output {
    Command::new("chroot").arg(root).arg("/kompi").args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").output().unwrap()
}

fn starts_in(root: &Path) {
    let version = chroot(root, &["--version"]);
    assert!(version.status.success(), "kompi --version: {}", String::from_utf8_lossy(&version.stderr));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("kompi "), "{}", String::from_utf8_lossy(&version.stdout));
    let help = chroot(root, &["init", "--help"]);
    assert!(help.status.success(), "kompi init --help: {}", String::from_utf8_lossy(&help.stderr));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--sshd"), "{}", String::from_utf8_lossy(&help.stdout));
}

fn the_static_kompi_has_no_dynamic_dependency() {
    let out = Command::new("ldd").arg(static_kompi().unwrap()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("not a dynamic executable") || said.contains("statically linked"), "ldd: {said}");
}

fn the_static_kompi_starts_in_a_bullseye_user_image() {
    let root = unpacked_with_kompi(&testbed(&[&["rootfs"], BULLSEYE_USER_IMAGE].concat()));
    let libc = std::fs::read_link(root.path().join("lib/x86_64-linux-gnu/libc.so.6")).unwrap_or_default();
    assert_eq!(libc, Path::new("libc-2.31.so"), "bullseye's glibc is 2.31, older than the one kompi was built with");
    starts_in(root.path());
}

fn the_static_kompi_starts_in_kompis_bookworm_image() {
    starts_in(unpacked_with_kompi(&testbed(&["kompi-rootfs"])).path());
}

fn main() {
    harness::main(harness::tests![
        root_and_static_kompi => [the_static_kompi_has_no_dynamic_dependency, the_static_kompi_starts_in_a_bullseye_user_image, the_static_kompi_starts_in_kompis_bookworm_image],
    ]);
}
