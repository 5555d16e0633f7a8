//! Fuzz harnesses: each takes arbitrary bytes, drives one of kompi's parsers or renderers with them,
//! and panics when an invariant breaks. `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz`);
//! `tests/replay.rs` replays the committed corpus and every crash found through them in the normal
//! test run, so a fixed crash stays fixed.

use std::collections::BTreeMap;

use clap::Parser;
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kompi_node::hostfile::HostfileArgs;
use kompi_node::init::InitArgs;
use kompi_render::hostfile::{entries_of_pods, hostfile, hosts, is_serving};
use kompi_render::launcher::{Launch, mpiexec};
use kompi_render::mca::{FILE_MARKER, MpiDefaults, home_files, name_for_open_mpi};
use kompi_render::{Object, Target, render, to_json_list, to_yaml_stream};
use kompi_spec::contract::{INJECTED_KOMPI_BIN, KOMPI_BIN};
use kompi_spec::{ClusterName, MpiImplementation, Request, Source, load, mca_parameter, pss};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;

/// The names of the harnesses, as `fuzz/fuzz_targets/<name>.rs` and the corpus directories call them.
pub const TARGETS: [(&str, fn(&[u8])); 4] = [("values", values), ("set", set), ("mca", mca), ("hostfile", hostfile_table)];

/// Values → objects. The bytes before the first NUL are a values file; each further NUL-separated
/// piece is a `--set` argument (`--set-string` when it starts with `s`). Whatever loads must render,
/// serialize, pass its command lines to `kompi init`/`kompi hostfile` unchanged, write one line per
/// MCA parameter, and, under `security.profile: restricted`, meet the restricted profile.
pub fn values(data: &[u8]) {
    let mut pieces = data.split(|b| *b == 0);
    let file = String::from_utf8_lossy(pieces.next().unwrap_or_default()).into_owned();
    let mut sources = vec![Source::File { name: "fuzz.yaml".into(), text: file }];
    for piece in pieces {
        let text = String::from_utf8_lossy(piece).into_owned();
        sources.push(match text.strip_prefix('s') {
            Some(rest) => Source::SetString(rest.to_string()),
            None => Source::Set(text),
        });
    }
    let Ok(loaded) = load(&Request { name: "fz", namespace: "ns", sources: &sources, require_ssh_key: false }) else { return };
    let spec = loaded.spec;
    let objects = render(&spec);
    let yaml = to_yaml_stream(&objects, Target::default());
    let reparsed = yaml.split("\n---\n").map(|d| d.trim_start_matches("---\n")).filter(|d| !d.trim().is_empty()).count();
    assert_eq!(reparsed, objects.len(), "the YAML stream does not hold one document per object");
    let _ = to_json_list(&objects, Target { kube_minor: Some(20) });

    let mca: Vec<(String, String)> = spec.mca_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (annotations, pod) in pods(&objects) {
        if spec.restricted {
            let violations = pss::restricted(annotations.as_ref(), &pod);
            assert!(violations.is_empty(), "a restricted cluster renders a pod that breaks the profile: {violations:?}");
        }
        let runs_kompi = |c: &&Container| matches!(c.command.as_deref(), Some([bin]) if bin == KOMPI_BIN || bin == INJECTED_KOMPI_BIN);
        for c in pod.containers.iter().filter(runs_kompi) {
            command_line_parses(c, &mca);
        }
    }
    mca_file_has_one_line_each(&mca);
}

/// The pods of the rendered objects (the master, the workers' template), with their annotations.
fn pods(objects: &[Object]) -> Vec<(Option<BTreeMap<String, String>>, PodSpec)> {
    let mut out = Vec::new();
    for object in objects {
        match object {
            Object::Pod(p) => out.push((p.metadata.annotations.clone(), p.spec.clone().unwrap_or_default())),
            Object::StatefulSet(s) => {
                let t = &s.spec.template;
                out.push((t.metadata.as_ref().and_then(|m| m.annotations.clone()), t.spec.clone().unwrap_or_default()));
            }
            _ => {}
        }
    }
    out
}

#[derive(Parser)]
struct InitCli {
    #[command(flatten)]
    init: InitArgs,
}

#[derive(Parser)]
struct HostfileCli {
    #[command(flatten)]
    hostfile: HostfileArgs,
}

/// A rendered `kompi init` or `kompi hostfile` command line is what that command accepts.
fn command_line_parses(c: &Container, mca: &[(String, String)]) {
    let args = c.args.clone().unwrap_or_default();
    let argv = std::iter::once("kompi".to_string()).chain(args.iter().skip(1).cloned());
    match args.first().map(String::as_str) {
        Some("init") => {
            let parsed = InitCli::try_parse_from(argv).unwrap_or_else(|e| panic!("kompi init refuses its rendered arguments {args:?}: {e}"));
            assert_eq!(parsed.init.mca, mca, "the MCA parameters changed on their way through the command line");
        }
        Some("hostfile") => {
            HostfileCli::try_parse_from(argv).unwrap_or_else(|e| panic!("kompi hostfile refuses its rendered arguments {args:?}: {e}"));
        }
        other => panic!("container {} runs kompi {other:?}", c.name),
    }
}

/// Open MPI reads its mca-params.conf files one `name = value` a line: each parameter comes back under
/// the name the series reads (Open MPI 5 renames some launcher parameters and reads PRRTE's from
/// `~/.prte`), set only by the user's values, never also by a default of kompi's.
fn mca_file_has_one_line_each(mca: &[(String, String)]) {
    for major in [4, 5] {
        let files = home_files(&MpiDefaults { mpi: MpiImplementation::OpenMpi, open_mpi_major: major, interface: "eth0", hostfile: "/h", extra: mca });
        let mut read: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for file in &files {
            let text = &file.content;
            assert_eq!(text.lines().next().map(|l| l.starts_with(FILE_MARKER)), Some(true), "{text}");
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let (name, value) = line.split_once(" = ").unwrap_or_else(|| panic!("{line:?} is not `name = value` in\n{text}"));
                read.entry(name).or_default().push(value);
            }
        }
        for (name, value) in mca {
            let read_as = name_for_open_mpi(major, name);
            let from_user: Vec<&str> = mca.iter().filter(|(n, _)| name_for_open_mpi(major, n) == read_as).map(|(_, v)| v.as_str()).collect();
            assert_eq!(read.get(read_as), Some(&from_user), "Open MPI {major}: {name} = {value:?} is not what sets {read_as} in {files:#?}");
        }
    }
}

/// `--set`/`--set-string` arguments (the first byte picks which): whatever parses is a mapping the
/// values checks can walk.
pub fn set(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else { return };
    let arg = String::from_utf8_lossy(rest);
    if let Ok(tree) = kompi_spec::set::parse_set(&arg, kind & 1 == 1) {
        assert!(tree.is_object(), "--set {arg:?} parsed into {tree}");
        let _ = load(&Request { name: "fz", namespace: "ns", sources: &[Source::Set(arg.into_owned())], require_ssh_key: false });
    }
}

/// `--mca NAME=VALUE`: what is accepted is one line in mca-params.conf, the same pair for `kompi
/// init`, and three arguments of mpiexec.
pub fn mca(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = mca_parameter(&text);
    let init = InitCli::try_parse_from(["kompi", "--role=master", "--cluster=c", "--ssh-port=2022", "--mpi=openmpi", "--key-dir=/k", "--hostfile=/h", &format!("--mca={text}")]);
    assert_eq!(init.as_ref().ok().map(|c| c.init.mca.clone()), parsed.clone().ok().map(|p| vec![p]), "kompi init and the values disagree on --mca={text:?}");
    let Ok((name, value)) = parsed else { return };
    mca_file_has_one_line_each(&[(name.clone(), value.clone())]);
    let mca = [(name.clone(), value.clone())];
    let args = mpiexec(MpiImplementation::OpenMpi, "/h", &Launch { np: None, npernode: None, mca: &mca, command: &["true".into()] }).expect("Open MPI takes --mca");
    let at = args.iter().position(|a| a == "--mca").expect("--mca is passed on");
    assert_eq!(args[at + 1..at + 3], [name, value]);
}

/// The hostfile sidecar's view of the worker pods (kube-runtime's reflector store) under a sequence
/// of watch events decoded from the bytes: after every settled event (not inside a relist, as the
/// sidecar publishes), the hostfile lists the master first, then every serving worker of the store
/// once, by ordinal, under its canonical name, nothing else, and reads back as the same hosts.
pub fn hostfile_table(data: &[u8]) {
    let cluster = ClusterName::new("fz").expect("a valid name");
    let (store, mut writer) = reflector::store::<Pod>();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let pod = decode_pod(&cluster, op, &mut bytes);
        let event = match op % 5 {
            0 => Event::Apply(pod),
            1 => Event::Delete(pod),
            2 => Event::Init,
            3 => Event::InitApply(pod),
            _ => Event::InitDone,
        };
        writer.apply_watcher_event(&event);
        if matches!(event, Event::Init | Event::InitApply(_)) {
            continue;
        }
        let pods = store.state();
        let entries = entries_of_pods(&cluster, 1 + u32::from(op >> 6), 1, pods.iter().map(|p| p.as_ref()));
        assert_eq!(entries.first().map(|e| e.host.as_str()), Some("fz-master"));
        let mut last = None;
        for e in &entries[1..] {
            let pod = e.host.strip_suffix(".fz").unwrap_or_else(|| panic!("{:?} is not a worker's host name", e.host));
            let ordinal = cluster.worker_ordinal(pod).unwrap_or_else(|| panic!("{pod:?} is not a worker"));
            assert_eq!(pod, cluster.worker_pod(ordinal), "a worker is listed under a name that is not its own");
            assert!(last < Some(ordinal), "workers out of order or twice: {entries:?}");
            last = Some(ordinal);
        }
        let mut serving: Vec<(u32, String)> = pods
            .iter()
            .filter(|p| is_serving(p))
            .filter_map(|p| p.metadata.name.as_deref())
            .filter_map(|n| Some((cluster.worker_ordinal(n)?, cluster.worker_host(n))))
            .collect();
        serving.sort();
        serving.dedup_by_key(|(ordinal, _)| *ordinal);
        let listed: Vec<&str> = entries[1..].iter().map(|e| e.host.as_str()).collect();
        assert_eq!(listed, serving.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>(), "the hostfile does not list exactly the serving workers");
        for mpi in [MpiImplementation::OpenMpi, MpiImplementation::Mpich] {
            let text = hostfile(mpi, &entries);
            let listed: Vec<&str> = entries.iter().map(|e| e.host.as_str()).collect();
            assert_eq!(hosts(&text), listed, "the hostfile does not read back as its hosts:\n{text}");
        }
    }
}

/// A pod from the next bytes: mostly the cluster's workers, sometimes names that only look like one.
fn decode_pod(cluster: &ClusterName, op: u8, bytes: &mut impl Iterator<Item = u8>) -> Pod {
    let pick = bytes.next().unwrap_or(0);
    let name = if pick < 192 {
        cluster.worker_pod(u32::from(pick % 24))
    } else {
        let suffix: String = bytes.take(usize::from(pick % 4) + 1).map(|b| char::from(b' ' + b % 95)).collect();
        format!("fz-worker-{suffix}")
    };
    let flags = bytes.next().unwrap_or(0);
    Pod {
        metadata: ObjectMeta {
            // The API server names every pod; the reflector keys its store by name.
            name: Some(name),
            namespace: Some("ns".into()),
            deletion_timestamp: (flags & 2 != 0).then(|| Time(Default::default())),
            ..Default::default()
        },
        status: (flags & 4 == 0).then(|| PodStatus {
            conditions: Some(vec![PodCondition { type_: "Ready".into(), status: if flags & 1 == 1 || op & 0x20 != 0 { "True" } else { "False" }.into(), ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
