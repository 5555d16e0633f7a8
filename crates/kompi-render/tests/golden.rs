//! Golden tests of the full render: kube-openmpi-style values files in `fixtures/`, the exact YAML
//! stream in `golden/`. Review changes to golden files like code; regenerate them with
//! `KOMPI_UPDATE_GOLDEN=1 cargo test -p kompi-render --test golden`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kompi_render::{Kind, Object, Target, render, to_yaml_stream};
use kompi_spec::{ClusterSpec, Request, Source, load};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

fn source(path: &Path) -> Source {
    Source::File { name: path.file_name().unwrap().to_string_lossy().into(), text: std::fs::read_to_string(path).unwrap() }
}

fn spec_of(fixture: &Path) -> ClusterSpec {
    let sources = [source(&dir("fixtures").join("ssh-key.yaml")), source(fixture)];
    load(&Request { name: "mpi", namespace: "hpc", sources: &sources, require_ssh_key: true })
        .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()))
        .spec
}

fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "ssh-key.yaml")
        .collect();
    out.sort();
    assert!(out.len() >= 10, "fixtures are missing: {out:?}");
    out
}

#[test]
fn renders_match_the_golden_files() {
    let update = std::env::var_os("KOMPI_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for fixture in fixtures() {
        let rendered = to_yaml_stream(&render(&spec_of(&fixture)), Target::default());
        let golden = dir("golden").join(fixture.file_name().unwrap());
        if update {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if rendered != expected {
            let line = rendered.lines().zip(expected.lines()).position(|(a, b)| a != b).unwrap_or(0) + 1;
            stale.push(format!("{} differs from the render first at line {line}", golden.display()));
        }
    }
    assert!(stale.is_empty(), "{}\n(review, then regenerate with KOMPI_UPDATE_GOLDEN=1)", stale.join("\n"));
}

/// Parses a multi-document YAML stream the way kubectl would see it.
fn documents(stream: &str) -> Vec<Value> {
    stream
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect()
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), doc, "{} does not survive its own type", doc["kind"]);
}

#[test]
fn every_object_deserializes_into_its_type() {
    for fixture in fixtures() {
        let spec = spec_of(&fixture);
        let objects = render(&spec);
        let docs = documents(&to_yaml_stream(&objects, Target::default()));
        assert_eq!(docs.len(), objects.len());
        for (doc, object) in docs.iter().zip(&objects) {
            assert_eq!(doc, &object.to_json(Target::default()), "{}: YAML output differs from the object", object.id());
            match doc["kind"].as_str().unwrap() {
                "Secret" => round_trip::<Secret>(doc),
                "Service" => round_trip::<Service>(doc),
                "ServiceAccount" => round_trip::<ServiceAccount>(doc),
                "Role" => round_trip::<Role>(doc),
                "RoleBinding" => round_trip::<RoleBinding>(doc),
                "StatefulSet" => round_trip::<StatefulSet>(doc),
                "Pod" => round_trip::<Pod>(doc),
                "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(doc),
                "NetworkPolicy" => round_trip::<NetworkPolicy>(doc),
                other => panic!("unexpected kind {other}"),
            }
        }
    }
}

#[test]
fn every_feature_appears_where_expected() {
    let ids = |name: &str| render(&spec_of(&dir("fixtures").join(name))).iter().map(Object::id).collect::<Vec<_>>();
    let defaults = ids("defaults.yaml");
    assert_eq!(
        defaults,
        ["Secret/mpi-ssh-key", "ServiceAccount/mpi", "Role/mpi", "RoleBinding/mpi", "Service/mpi", "StatefulSet/mpi-worker", "Pod/mpi-master"]
    );
    assert!(ids("gang-scheduling.yaml").contains(&"PodDisruptionBudget/mpi-worker-pdb".to_string()));
    assert!(ids("ssh-gateway.yaml").contains(&"Service/mpi-ssh-gateway".to_string()));
    let np = ids("network-policy.yaml");
    assert!(np.contains(&"NetworkPolicy/mpi-allow-internal".to_string()) && np.contains(&"NetworkPolicy/mpi-allow-from-external".to_string()));
}

#[test]
fn old_servers_get_the_beta_disruption_budget() {
    let objects = render(&spec_of(&dir("fixtures").join("gang-scheduling.yaml")));
    let pdb = objects.iter().find(|o| o.kind() == Kind::PodDisruptionBudget).unwrap();
    assert_eq!(pdb.to_json(Target { kube_minor: Some(20) })["apiVersion"], "policy/v1beta1");
    assert_eq!(pdb.to_json(Target { kube_minor: Some(21) })["apiVersion"], "policy/v1");
}

/// The pods of a render: the master and the workers' template, with their annotations.
fn pods(objects: &[Object]) -> Vec<(String, Option<std::collections::BTreeMap<String, String>>, k8s_openapi::api::core::v1::PodSpec)> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some((o.id(), p.metadata.annotations.clone(), p.spec.clone().unwrap())),
            Object::StatefulSet(s) => {
                let t = &s.spec.template;
                Some((o.id(), t.metadata.as_ref().and_then(|m| m.annotations.clone()), t.spec.clone().unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_fixture_under_the_restricted_profile_renders_pods_that_meet_it() {
    let key = source(&dir("fixtures").join("ssh-key.yaml"));
    for fixture in fixtures() {
        let sources = [key.clone(), source(&fixture), Source::Set("security.profile=restricted".into())];
        let loaded = load(&Request { name: "mpi", namespace: "hpc", sources: &sources, require_ssh_key: true });
        let spec = match loaded {
            Ok(l) => l.spec,
            // A deploy key needs root: the one setting the profile refuses, with its key named.
            Err(e) => {
                assert!(e.to_string().contains("gitSecretName: git-sync needs root"), "{}: {e}", fixture.display());
                continue;
            }
        };
        let pods = pods(&render(&spec));
        assert_eq!(pods.len(), 2);
        for (id, annotations, pod) in pods {
            let violations = kompi_spec::pss::restricted(annotations.as_ref(), &pod);
            assert!(violations.is_empty(), "{} {id}: {violations:#?}", fixture.display());
        }
    }
}

#[test]
fn pods_of_the_default_profile_fail_the_restricted_check() {
    // The checker must be able to fail: kompi's default pods run as root with the runtime's capabilities.
    for (id, annotations, pod) in pods(&render(&spec_of(&dir("fixtures").join("defaults.yaml")))) {
        let fields: Vec<String> = kompi_spec::pss::restricted(annotations.as_ref(), &pod).into_iter().map(|v| v.field).collect();
        let container = if id == "Pod/mpi-master" { "mpi-master" } else { "mpi-worker" };
        for expected in ["allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile.type", "capabilities.drop"] {
            assert!(fields.contains(&format!("containers[{container}].securityContext.{expected}")), "{id}: {fields:?}");
        }
        assert!(!fields.iter().any(|f| f.starts_with("containers[hostfile]")), "the sidecar meets the profile anyway: {fields:?}");
    }
}
