//! `kompi template`: the drop-in for `helm template chart --name NAME --namespace NS -f ...`.

use clap::{Args, ValueEnum};
use kompi_render::{Object, Target, render, to_json_list, to_yaml_stream};

use crate::exit::Exit;
use crate::values::ValuesArgs;

#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// Cluster name: pods are NAME-master and NAME-worker-<i>
    pub name: String,
    /// Namespace the objects are for
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Output format: a YAML stream, or a JSON v1 List
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Print only this object (KIND/NAME, e.g. StatefulSet/mpi-worker); may repeat
    #[arg(long, value_name = "KIND/NAME")]
    pub show_only: Vec<String>,
    /// Kubernetes version of the target server (e.g. 1.20): below 1.21 the PodDisruptionBudget is policy/v1beta1
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

pub fn run(args: &TemplateArgs) -> anyhow::Result<()> {
    let target = Target { kube_minor: args.kube_version.as_deref().map(parse_minor).transpose()? };
    let loaded = args.values.load(&args.name, &args.namespace, true)?;
    let objects = select(render(&loaded.spec), &args.show_only)?;
    let text = match args.output {
        Format::Yaml => to_yaml_stream(&objects, target),
        Format::Json => to_json_list(&objects, target),
    };
    print!("{text}");
    Ok(())
}

/// `1.20`, `v1.20.2` -> 20.
pub fn parse_minor(version: &str) -> Result<u32, Exit> {
    let bad = || Exit::invalid(format!("--kube-version {version:?}: expected MAJOR.MINOR, for example 1.20"));
    let mut parts = version.trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if major != 1 {
        return Err(bad());
    }
    Ok(minor)
}

fn select(objects: Vec<Object>, wanted: &[String]) -> Result<Vec<Object>, Exit> {
    if wanted.is_empty() {
        return Ok(objects);
    }
    let matches = |o: &Object, w: &str| o.id().eq_ignore_ascii_case(w);
    let missing: Vec<&String> = wanted.iter().filter(|w| !objects.iter().any(|o| matches(o, w))).collect();
    if !missing.is_empty() {
        let available: Vec<String> = objects.iter().map(Object::id).collect();
        return Err(Exit::invalid(format!(
            "--show-only {}: no such object; this cluster renders: {}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            available.join(", ")
        )));
    }
    Ok(objects.into_iter().filter(|o| wanted.iter().any(|w| matches(o, w))).collect())
}
