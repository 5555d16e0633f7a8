//! The I/O edge of the spec: read `-f` files (or stdin for `-`) and order them with `--set` flags.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use kompi_spec::{Loaded, Request, Source};

use crate::exit::Exit;

#[derive(Args, Debug, Clone, Default)]
pub struct ValuesArgs {
    /// Values file in kube-openmpi's format (`-` reads stdin). Repeat it: later files win, mappings merge
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set values on the command line (`a.b=c,x[0].y=z`; Helm's syntax), after the files
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Like --set, but every value stays a string
    #[arg(long = "set-string", value_name = "KEY=VALUE")]
    pub set_string: Vec<String>,
}

impl ValuesArgs {
    /// The sources in Helm's order: files, then --set, then --set-string.
    pub fn sources(&self) -> Result<Vec<Source>, Exit> {
        let mut sources = Vec::new();
        let mut unreadable = Vec::new();
        for path in &self.files {
            let name = path.display().to_string();
            let text = if name == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map(|_| text)
            } else {
                std::fs::read_to_string(path)
            };
            match text {
                Ok(text) => sources.push(Source::File { name, text }),
                Err(e) => unreadable.push(format!("{name}: cannot read the values file: {e}")),
            }
        }
        if !unreadable.is_empty() {
            return Err(Exit::invalid(unreadable.join("\n")));
        }
        sources.extend(self.set.iter().cloned().map(Source::Set));
        sources.extend(self.set_string.iter().cloned().map(Source::SetString));
        Ok(sources)
    }

    /// Reads, merges and validates; warnings go to stderr.
    pub fn load(&self, name: &str, namespace: &str, require_ssh_key: bool) -> anyhow::Result<Loaded> {
        let sources = self.sources()?;
        let loaded = kompi_spec::load(&Request { name, namespace, sources: &sources, require_ssh_key })?;
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(loaded)
    }
}
