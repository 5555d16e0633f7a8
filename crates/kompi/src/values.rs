//! The I/O edge of the spec: read `-f` files (or stdin for `-`) and order them with `--set` flags.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use kompi_spec::{Loaded, Request, Source};

use crate::exit::Exit;

/// The largest values file kompi reads (kube-openmpi's values are a few KiB; a key file is 4).
pub const MAX_VALUES_BYTES: u64 = 16 << 20;

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
            let text = if name == "-" { read_capped(std::io::stdin().lock(), None) } else { read_file(path) };
            match text {
                Ok(text) => sources.push(Source::File { name, text }),
                Err(e) => unreadable.push(format!("{name}: {e}")),
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

fn read_file(path: &std::path::Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the values file: {e}"))?;
    // A regular file's size is known before reading; a device or pipe is read up to the cap.
    let size = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    read_capped(file, size)
}

/// The text of a values source, refused before parsing (and before reading far) when larger than the cap.
fn read_capped(source: impl Read, size: Option<u64>) -> Result<String, String> {
    let too_large = |size: String| format!("{size} more than the {} MiB kompi reads as a values file; is it the right file?", MAX_VALUES_BYTES >> 20);
    if let Some(size) = size.filter(|s| *s > MAX_VALUES_BYTES) {
        return Err(too_large(format!("is {size} bytes,")));
    }
    let mut bytes = Vec::new();
    source.take(MAX_VALUES_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read the values file: {e}"))?;
    if bytes.len() as u64 > MAX_VALUES_BYTES {
        return Err(too_large("holds".into()));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read the values file: it is not UTF-8 text ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_larger_than_the_cap_are_refused_unread() {
        let big = std::io::repeat(b'a');
        assert_eq!(read_capped(big, None).unwrap_err(), "holds more than the 16 MiB kompi reads as a values file; is it the right file?");
        let declared = read_capped(std::io::empty(), Some(MAX_VALUES_BYTES + 1)).unwrap_err();
        assert!(declared.starts_with("is 16777217 bytes, more than the 16 MiB"), "{declared}");
        assert_eq!(read_capped(&b"a: 1\n"[..], Some(5)).unwrap(), "a: 1\n");
        assert!(read_capped(&[0xff, 0xfe][..], None).unwrap_err().contains("not UTF-8"));
    }
}
