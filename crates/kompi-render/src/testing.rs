//! Specs for unit tests: kompi's defaults, a fresh key, and the given values.

use kompi_spec::sshkey::{KeyType, generate, values_yaml};
use kompi_spec::{ClusterSpec, Request, Source, load};
use ssh_key::rand_core::OsRng;

pub fn spec(values: &str) -> ClusterSpec {
    let key = values_yaml(&generate(KeyType::Ed25519, "test", &mut OsRng).unwrap());
    let sources = [
        Source::File { name: "ssh-key.yaml".into(), text: key },
        Source::File { name: "values.yaml".into(), text: values.into() },
    ];
    load(&Request { name: "mpi", namespace: "ns", sources: &sources, require_ssh_key: true }).unwrap().spec
}
