use super::*;
use crate::cluster::{MpiImplementation, PodManagementPolicy};
use crate::sshkey::{KeyType, generate, values_yaml};
use ssh_key::rand_core::OsRng;

fn key_file() -> Source {
    let key = generate(KeyType::Ed25519, "test", &mut OsRng).unwrap();
    Source::File { name: "ssh-key.yaml".into(), text: values_yaml(&key) }
}

fn file(name: &str, text: &str) -> Source {
    Source::File { name: name.into(), text: text.into() }
}

fn load_with(sources: Vec<Source>) -> Result<Loaded, SpecError> {
    load(&Request { name: "mpi", namespace: "default", sources: &sources, require_ssh_key: true })
}

fn lines(err: SpecError) -> Vec<String> {
    err.0.iter().map(ToString::to_string).collect()
}

#[test]
fn defaults_match_kube_openmpi() {
    let spec = load_with(vec![key_file()]).unwrap().spec;
    assert_eq!(spec.workers.count, 4);
    assert_eq!(spec.workers.pod_management_policy, PodManagementPolicy::Parallel);
    assert_eq!(spec.ssh_port, 2022);
    assert_eq!(spec.image.reference, format!("kompi/runtime:{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(spec.image.pull_policy, PullPolicy::IfNotPresent);
    assert!(spec.master.follow_workers);
    assert!(spec.master.one_shot.is_none());
    assert!(!spec.network_policy && spec.ssh_gateway.is_none());
    assert_eq!((spec.master.pod.slots, spec.workers.pod.slots), (1, 1));
    assert_eq!(spec.mpi, MpiImplementation::OpenMpi);
    assert!(spec.app_codes.is_empty());
}

#[test]
fn files_merge_in_order_and_set_wins() {
    let spec = load_with(vec![
        key_file(),
        file("a.yaml", "mpiWorkers:\n  num: 2\n  slots: 3\nnetworkPolicy:\n  enabled: true\n"),
        file("b.yaml", "mpiWorkers:\n  num: 7\n"),
        Source::Set("mpiWorkers.num=5,sshGateway.enabled=true".into()),
    ])
    .unwrap()
    .spec;
    assert_eq!(spec.workers.count, 5);
    assert_eq!(spec.workers.pod.slots, 3);
    assert!(spec.network_policy);
    assert_eq!(spec.ssh_gateway, Some(30220));
}

#[test]
fn set_string_keeps_a_string_where_an_integer_is_needed() {
    let err = load_with(vec![key_file(), Source::SetString("mpiWorkers.num=3".into())]).unwrap_err();
    assert_eq!(
        lines(err),
        vec!["--set-string mpiWorkers.num=3: mpiWorkers.num: expected a non-negative integer, got \"3\" (write it without quotes)"]
    );
}

#[test]
fn missing_key_is_explained() {
    let err = load(&Request { name: "mpi", namespace: "ns", sources: &[], require_ssh_key: true }).unwrap_err();
    assert_eq!(lines(err), vec!["kompi defaults: sshKey: no ssh key: run `kompi keygen` and pass its ssh-key.yaml with -f"]);
    assert!(load(&Request { name: "mpi", namespace: "ns", sources: &[], require_ssh_key: false }).unwrap().spec.ssh_key.is_none());
}

#[test]
fn every_problem_at_once_with_its_file() {
    let err = load(&Request {
        name: "Bad_Name",
        namespace: "-ns",
        sources: &[key_file(), file("values.yaml", "mpiWorkers:\n  num: four\n  nmu: 3\n"), file("broken.yaml", "a: [1\n")],
        require_ssh_key: true,
    })
    .unwrap_err();
    let l = lines(err);
    assert_eq!(l.len(), 5, "{l:#?}");
    assert_eq!(l[0], "values.yaml: mpiWorkers.num: expected a non-negative integer, got \"four\"");
    assert!(l[1].starts_with("values.yaml: mpiWorkers.nmu: unknown key") && l[1].contains("did you mean \"num\""), "{}", l[1]);
    assert!(l[2].starts_with("broken.yaml: (top level): malformed YAML:"), "{}", l[2]);
    assert!(l[3].starts_with("argument NAME: (top level): invalid cluster name:"), "{}", l[3]);
    assert!(l[4].starts_with("argument --namespace: (top level): invalid namespace:"), "{}", l[4]);
}

#[test]
fn semantic_problems_name_the_file_that_set_the_value() {
    let err = load_with(vec![
        key_file(),
        file(
            "w.yaml",
            "mpiWorkers:\n  customScheduling:\n    enabled: true\n  resources:\n    limits:\n      cpu: two\n  volumes:\n  - name: cache\n    emptyDir: {}\n  volumeMounts:\n  - name: cahce\n    mountPath: /cache\n",
        ),
        file("m.yaml", "mpiMaster:\n  volumes:\n  - name: kompi-x\n    emptyDir: {}\n  securityContext:\n    runAsUser: 1000\nssh:\n  port: 22\n"),
    ])
    .unwrap_err();
    let l = lines(err);
    assert!(l.contains(&"m.yaml: ssh.port: port 22 needs root, but mpiMaster.securityContext.runAsUser is not 0; use a port of 1024 or more (the default is 2022)".to_string()), "{l:#?}");
    assert!(l.contains(&"kompi defaults: mpiWorkers.customScheduling.schedulerName: is required when customScheduling.enabled is true".to_string()), "{l:#?}");
    assert!(l.contains(&"w.yaml: mpiWorkers.resources.limits.cpu: \"two\" is not a Kubernetes quantity (for example 2, 500m, 1.5Gi)".to_string()), "{l:#?}");
    assert!(l.contains(&"w.yaml: mpiWorkers.volumeMounts[0].name: no volume named \"cahce\" in mpiWorkers.volumes (did you mean \"cache\"?)".to_string()), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("m.yaml: mpiMaster.volumes[0].name: \"kompi-x\"")), "{l:#?}");
    assert_eq!(l.len(), 5, "{l:#?}");
}

#[test]
fn slots_follow_gpus_then_cpus() {
    let spec = load_with(vec![
        key_file(),
        file("r.yaml", "mpiWorkers:\n  resources:\n    limits:\n      gpu: 2\n      cpu: 8\nmpiMaster:\n  resources:\n    requests:\n      cpu: 2500m\n"),
    ])
    .unwrap()
    .spec;
    assert_eq!(spec.workers.pod.slots, 2);
    assert_eq!(spec.master.pod.slots, 2);
    let gpu = &spec.workers.pod.resources.as_ref().unwrap().limits.as_ref().unwrap()[GPU_RESOURCE];
    assert_eq!(gpu.0, "2");
    assert_eq!(default_slots(None, true), 1);
}

#[test]
fn app_codes_are_checked() {
    let err = load_with(vec![
        key_file(),
        file("a.yaml", "appCodesToSync:\n- name: App\n  gitRepo: x\n  mountPath: rel\n- name: ok\n  mountPath: /ok\n- name: ok\n  gitRepo: https://h/y.git\n  mountPath: /y\n"),
    ])
    .unwrap_err();
    let l = lines(err);
    assert_eq!(l.len(), 4, "{l:#?}");
    assert!(l[0].starts_with("a.yaml: appCodesToSync[0].name:"));
    assert!(l[1].starts_with("a.yaml: appCodesToSync[0].mountPath: is required and must be an absolute path"));
    assert!(l[2].starts_with("a.yaml: appCodesToSync[1].gitRepo: is required"));
    assert!(l[3].starts_with("a.yaml: appCodesToSync[2].name: \"ok\" appears twice"));
    let ok = load_with(vec![
        key_file(),
        file("a.yaml", "appCodesToSync:\n- name: app\n  gitRepo: git@h:o/r.git\n  fetchWaitSecond: \"120\"\n  mountPath: /app\n  gitSecretName: creds\n"),
    ])
    .unwrap()
    .spec;
    assert_eq!(ok.app_codes[0].wait_seconds, 120);
    assert_eq!(ok.app_codes[0].git_branch, "master");
    assert_eq!(ok.app_codes[0].git_secret.as_deref(), Some("creds"));
}

#[test]
fn ignored_keys_warn_only_when_the_user_sets_them() {
    let quiet = load_with(vec![key_file()]).unwrap();
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
    let loud = load_with(vec![key_file(), file("v.yaml", "kubectlImage:\n  tag: 1.10\nmpiMaster:\n  autoUpdateHostfile:\n    updateEvery: 5\n")]).unwrap();
    assert_eq!(loud.warnings.len(), 2, "{:?}", loud.warnings);
    assert!(loud.warnings[0].starts_with("v.yaml: kubectlImage.tag is ignored"));
}

#[test]
fn null_resets_every_key_to_its_default() {
    let key = key_file();
    let defaults = load_with(vec![key.clone()]).unwrap().spec;
    for (path, _) in crate::schema::rows("", <Values as crate::schema::Section>::FIELDS) {
        // A list item has no default, and the key pair is checked as a pair.
        if path.contains("[]") || path.starts_with("sshKey.") {
            continue;
        }
        let loaded = load_with(vec![key.clone(), Source::Set(format!("{path}=null"))]).unwrap_or_else(|e| panic!("{path}=null: {e}"));
        assert_eq!(loaded.spec, defaults, "{path}=null");
    }
}

#[test]
fn one_shot() {
    let spec = load_with(vec![key_file(), Source::Set("mpiMaster.oneShot.enabled=true,mpiMaster.oneShot.autoScaleDownWorkers=false".into())])
        .unwrap()
        .spec;
    let one = spec.master.one_shot.unwrap();
    assert!(one.command.starts_with("mpiexec --allow-run-as-root"));
    assert!(!one.scale_down_workers);
    assert_eq!(one.wait_timeout_seconds, 600);
}

#[test]
fn a_mismatched_key_pair_is_refused() {
    let a = generate(KeyType::Ed25519, "a", &mut OsRng).unwrap();
    let b = generate(KeyType::Ed25519, "b", &mut OsRng).unwrap();
    let text = format!("sshKey:\n  id_rsa: |\n{}  id_rsa_pub: {}\n", a.private_openssh.lines().map(|l| format!("    {l}\n")).collect::<String>(), b.public_openssh);
    let l = lines(load_with(vec![file("k.yaml", &text)]).unwrap_err());
    assert_eq!(l, vec!["k.yaml: sshKey: id_rsa_pub is not the public half of id_rsa; regenerate both with `kompi keygen`"]);
}

#[test]
fn an_mca_value_cannot_smuggle_a_line_into_mca_params_conf() {
    let err = load_with(vec![key_file(), file("m.yaml", "mpi:\n  mcaParams:\n    btl_tcp_if_include: \"eth0\\nplm_rsh_agent = /tmp/evil\"\n    ok_one: 1\n")]).unwrap_err();
    assert_eq!(
        lines(err),
        ["m.yaml: mpi.mcaParams.btl_tcp_if_include: the value of btl_tcp_if_include contains the control character '\\n', which would break its line in mca-params.conf; remove it"]
    );
    let err = load_with(vec![key_file(), Source::Set("mpi.mcaParams.btl=tcp\rself".into())]).unwrap_err();
    assert!(lines(err)[0].contains("control character '\\r'"));
}

#[test]
fn sub_paths_stay_inside_their_volume() {
    let err = load_with(vec![
        key_file(),
        file(
            "s.yaml",
            "appCodesToSync:\n- name: a\n  gitRepo: r\n  mountPath: /a\n  subPath: ../../etc\n- name: b\n  gitRepo: r\n  mountPath: /b\n  subPath: /etc\n\
             mpiWorkers:\n  volumes:\n  - name: data\n    emptyDir: {}\n  volumeMounts:\n  - name: data\n    mountPath: /data\n    subPath: x/../../y\n",
        ),
    ])
    .unwrap_err();
    let l = lines(err);
    assert_eq!(l.len(), 3, "{l:#?}");
    assert!(l[0].starts_with("s.yaml: appCodesToSync[0].subPath: \"../../etc\" must not contain '..'"), "{l:#?}");
    assert!(l[1].starts_with("s.yaml: appCodesToSync[1].subPath: \"/etc\" must be relative"), "{l:#?}");
    assert!(l[2].starts_with("s.yaml: mpiWorkers.volumeMounts[0].subPath: \"x/../../y\" must not contain '..'"), "{l:#?}");
    let ok = load_with(vec![key_file(), file("s.yaml", "appCodesToSync:\n- name: a\n  gitRepo: r\n  mountPath: /a\n  subPath: examples/..x/y\n")]);
    assert!(ok.is_ok(), "a name that merely starts with dots is fine");
}

#[test]
fn git_sync_with_a_deploy_key_cannot_run_in_a_non_root_pod() {
    let app = "appCodesToSync:\n- name: priv\n  gitRepo: git@h:o/r.git\n  mountPath: /p\n  gitSecretName: creds\n";
    let err = load_with(vec![key_file(), file("g.yaml", &format!("{app}mpiWorkers:\n  securityContext:\n    runAsNonRoot: true\n    runAsUser: 1000\n"))]).unwrap_err();
    assert_eq!(
        lines(err),
        ["g.yaml: appCodesToSync[0].gitSecretName: git-sync needs root to read the deploy key of \"priv\", but mpiWorkers.securityContext.runAsNonRoot is true; use a public repository or drop that setting"]
    );
    let err = load_with(vec![key_file(), file("g.yaml", app), Source::Set("security.profile=restricted".into())]).unwrap_err();
    assert!(lines(err)[0].contains("but security.profile is restricted"));
    assert!(load_with(vec![key_file(), file("g.yaml", app)]).is_ok());
}

#[test]
fn the_restricted_profile_fills_in_non_root_settings_and_refuses_what_breaks_it() {
    let spec = load_with(vec![key_file(), Source::Set("security.profile=restricted".into())]).unwrap().spec;
    assert!(spec.restricted);
    for pod in [&spec.master.pod, &spec.workers.pod] {
        let sc = pod.security_context.as_ref().unwrap();
        assert_eq!((sc.run_as_non_root, sc.run_as_user, sc.run_as_group, sc.fs_group), (Some(true), Some(1000), Some(1000), Some(1000)));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let c = pod.container_security_context.as_ref().unwrap();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(!pod.runs_as_root());
    }
    let err = load_with(vec![
        key_file(),
        Source::Set("security.profile=restricted".into()),
        file(
            "r.yaml",
            "mpiMaster:\n  securityContext:\n    runAsUser: 0\n  containerSecurityContext:\n    privileged: true\n    capabilities:\n      add: [NET_ADMIN]\n\
             mpiWorkers:\n  volumes:\n  - name: host\n    hostPath:\n      path: /\n",
        ),
    ])
    .unwrap_err();
    let l = lines(err);
    assert_eq!(l.len(), 4, "{l:#?}");
    assert!(l[0].starts_with("r.yaml: mpiMaster.securityContext.runAsUser: must not be 0 (root) breaks"), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("r.yaml: mpiMaster.containerSecurityContext.privileged: must not be true")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("r.yaml: mpiMaster.containerSecurityContext.capabilities.add: \"NET_ADMIN\"")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("r.yaml: mpiWorkers.volumes[0].hostPath: hostPath volumes are not allowed")), "{l:#?}");
    // Without the profile the same values are the user's own business.
    let plain = load_with(vec![key_file(), Source::Set("mpiMaster.containerSecurityContext.privileged=true".into())]).unwrap().spec;
    assert_eq!(plain.master.pod.container_security_context.unwrap().privileged, Some(true));
}

#[test]
fn debug_output_never_shows_the_private_key() {
    let key = generate(KeyType::Ed25519, "test", &mut OsRng).unwrap();
    let body = key.private_openssh.lines().nth(1).unwrap().to_string();
    let sources = vec![
        Source::File { name: "ssh-key.yaml".into(), text: values_yaml(&key) },
        Source::Set(format!("sshKey.id_rsa={}", key.private_openssh)),
    ];
    let loaded = load_with(sources.clone()).unwrap();
    let layer = crate::tree::Layer { origin: Origin::File("k".into()), tree: parse_yaml(&values_yaml(&key)).unwrap() };
    let defaults = crate::tree::Layer { origin: Origin::Defaults, tree: parse_yaml(DEFAULTS_YAML).unwrap() };
    let merged = Merged::new(&defaults, std::slice::from_ref(&layer));
    for shown in [format!("{sources:?}"), format!("{loaded:?}"), format!("{layer:?}"), format!("{merged:?}")] {
        assert!(!shown.contains(&body), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
    assert!(format!("{merged:?}").contains(key.public_openssh.split_whitespace().nth(1).unwrap()), "the public half stays visible");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn arb_yaml_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 ./_-]{0,12}".prop_map(serde_json::Value::from),
        ];
        let keys = prop_oneof![
            Just("mpiWorkers".to_string()), Just("mpiMaster".to_string()), Just("num".to_string()),
            Just("resources".to_string()), Just("limits".to_string()), Just("volumes".to_string()),
            Just("appCodesToSync".to_string()), Just("securityContext".to_string()), Just("name".to_string()),
            Just("sshKey".to_string()), Just("image".to_string()), "[a-zA-Z]{1,8}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = load_with(vec![file("fuzz.yaml", &text)]);
        }

        #[test]
        fn arbitrary_trees_never_panic(tree in arb_yaml_value()) {
            let text = serde_json::to_string(&tree).unwrap(); // JSON is YAML
            let _ = load_with(vec![key_file_cached(), file("fuzz.yaml", &text)]);
        }

        #[test]
        fn arbitrary_set_flags_never_panic(arg in "[a-zA-Z.\\[\\]0-9=,{}\\\\]{0,40}") {
            let _ = load_with(vec![Source::Set(arg)]);
        }
    }

    fn key_file_cached() -> Source {
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text = KEY.get_or_init(|| values_yaml(&generate(KeyType::Ed25519, "fuzz", &mut OsRng).unwrap()));
        file("ssh-key.yaml", text)
    }
}
