//! `kompi template` and `kompi values` as a user runs them: real binary, real files, exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kompi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kompi")).args(args).output().unwrap()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kompi-render/tests/fixtures").join(name).display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn renders_kube_openmpi_values_as_a_yaml_stream() {
    let key = fixture("ssh-key.yaml");
    let out = kompi(&["template", "mpi", "-n", "hpc", "-f", &fixture("one-shot.yaml"), "-f", &key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("\n---\n").count() + 1, 7, "{text}");
    assert!(text.starts_with("---\napiVersion: v1\nkind: Secret\n"));
    assert!(text.contains("name: mpi-master\n"));
    assert!(text.contains("statefulsets/scale"));
}

#[test]
fn bad_values_exit_2_with_one_line_per_problem_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let values = write(dir.path(), "values.yaml", "mpiWorkers:\n  num: four\nmpiMaster:\n  oneshot:\n    enabled: true\n");
    let out = kompi(&["template", "mpi", "-f", values.to_str().unwrap(), "-f", &fixture("ssh-key.yaml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("values.yaml: mpiWorkers.num: expected a non-negative integer, got \"four\""), "{err}");
    assert!(lines[1].contains("values.yaml: mpiMaster.oneshot: unknown key") && lines[1].contains("did you mean \"oneShot\""), "{err}");
}

#[test]
fn a_missing_file_malformed_yaml_and_a_bad_name_are_input_errors() {
    let out = kompi(&["template", "mpi", "-f", "/nonexistent/values.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/values.yaml: cannot read the values file"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.yaml", "mpiWorkers: [1, 2\n");
    let out = kompi(&["template", "mpi", "-f", broken.to_str().unwrap(), "-f", &fixture("ssh-key.yaml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.yaml: (top level): malformed YAML"), "{}", stderr(&out));
    let out = kompi(&["template", "Bad_Name", "-f", &fixture("ssh-key.yaml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid cluster name"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn without_a_key_template_says_how_to_make_one() {
    let out = kompi(&["template", "mpi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("run `kompi keygen`"), "{}", stderr(&out));
}

#[test]
fn set_flags_override_files() {
    let out = kompi(&["template", "mpi", "-f", &fixture("ssh-key.yaml"), "--set", "mpiWorkers.num=7", "--show-only", "StatefulSet/mpi-worker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("replicas: 7\n"), "{text}");
    assert_eq!(text.matches("kind:").count(), 1, "{text}");
}

#[test]
fn show_only_names_what_exists_when_it_finds_nothing() {
    let out = kompi(&["template", "mpi", "-f", &fixture("ssh-key.yaml"), "--show-only", "Pod/nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Pod/mpi-master"), "{}", stderr(&out));
}

#[test]
fn json_output_is_a_v1_list() {
    let out = kompi(&["template", "mpi", "-f", &fixture("ssh-key.yaml"), "-o", "json", "--kube-version", "1.20", "-f", &fixture("gang-scheduling.yaml")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let pdb = list["items"].as_array().unwrap().iter().find(|o| o["kind"] == "PodDisruptionBudget").unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1beta1");
}

#[test]
fn values_prints_the_defaults() {
    let out = kompi(&["values"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, kompi_spec::DEFAULTS_YAML);
    assert!(text.contains("num: 4"));
}

#[test]
fn the_readme_lists_every_values_key() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("<!-- values-table").expect("README has the values table markers");
    let body = &readme[readme[start..].find('\n').unwrap() + start + 1..readme.find("<!-- end values-table -->").unwrap()];
    let out = kompi(&["values", "--markdown"]);
    assert_eq!(body, String::from_utf8(out.stdout).unwrap(), "README's values table is stale: paste `kompi values --markdown` between its markers");
}

#[test]
fn completions_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kompi(&["completion", shell]);
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["up", "run", "scale", "local", "template"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
}

#[test]
fn the_readme_lists_every_exit_status() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("<!-- exit-statuses").expect("README has the exit status markers");
    let block = &readme[start..readme.find("<!-- end exit-statuses -->").unwrap()];
    let body = block.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("a text block between the markers");
    let help = String::from_utf8(kompi(&["--help"]).stdout).unwrap();
    let table = &help[help.find("Exit status:").expect("--help lists the exit statuses")..];
    let table = &table[..table.find("\n\n").map_or(table.len(), |end| end + 1)];
    assert_eq!(body, table, "README's exit statuses are stale: paste the Exit status block of `kompi --help` between its markers");
}

#[test]
fn values_files_over_the_cap_are_refused_before_they_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::File::create(&big).unwrap().set_len((16 << 20) + 1).unwrap();
    let out = kompi(&["template", "mpi", "-f", big.to_str().unwrap(), "-f", &fixture("ssh-key.yaml")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("big.yaml: is 16777217 bytes, more than the 16 MiB"), "{}", stderr(&out));
    // An endless device: with the address space capped at 256 MiB, reading it whole would fail to
    // allocate (and abort) long before it ended; the cap stops at 16 MiB and says so.
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 262144 && exec \"$0\" template mpi -f /dev/zero", env!("CARGO_BIN_EXE_kompi")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim(), "error: /dev/zero: holds more than the 16 MiB kompi reads as a values file; is it the right file?");
}

#[test]
fn a_line_smuggled_into_an_mca_value_or_an_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (values, at) in [
        ("mpi:\n  mcaParams:\n    btl_tcp_if_include: \"eth0\\nplm_rsh_agent = /tmp/evil\"\n", "v.yaml: mpi.mcaParams.btl_tcp_if_include:"),
        ("image:\n  tag: \"1\\r\\nx\"\n", "v.yaml: image.tag:"),
        ("appCodesToSync:\n- name: a\n  gitRepo: r\n  gitBranch: \"main\\n--upload-pack=evil\"\n  mountPath: /a\n", "v.yaml: appCodesToSync[0].gitBranch:"),
    ] {
        let path = write(dir.path(), "v.yaml", values);
        let out = kompi(&["template", "mpi", "-f", path.to_str().unwrap(), "-f", &fixture("ssh-key.yaml")]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(at) && err.contains("control character"), "{err}");
    }
}
