//! The hostfile on disk: replaced atomically, only when its content changes, and the `.complete` marker
//! (the master pod's readiness) once it first lists every initial worker.

use std::path::{Path, PathBuf};

use kompi_render::hostfile::{HostEntry, hostfile, hosts};
use kompi_spec::MpiImplementation;
use kompi_spec::contract::HOSTFILE_COMPLETE_MARKER;
use tracing::info;

use super::error::HostfileError;
use super::table::changes;
use crate::atomic_file::write_atomically;

pub struct Publisher {
    path: PathBuf,
    marker: PathBuf,
    mpi: MpiImplementation,
    expected_workers: u32,
    /// What the file holds now (`None`: absent).
    current: Option<String>,
    complete: bool,
}

impl Publisher {
    /// Takes over `path`; what a previous run of the sidecar wrote stays until the first list replaces it.
    pub fn new(path: &Path, mpi: MpiImplementation, expected_workers: u32) -> Self {
        let dir = path.parent().unwrap_or(Path::new("."));
        let marker_name = Path::new(HOSTFILE_COMPLETE_MARKER).file_name().unwrap_or_default();
        let marker = dir.join(marker_name);
        Publisher {
            path: path.to_path_buf(),
            complete: marker.exists(),
            marker,
            mpi,
            expected_workers,
            current: std::fs::read_to_string(path).ok(),
        }
    }

    /// Writes the master-only hostfile if there is none yet (so mpiexec finds one from the start).
    pub fn start(&mut self, master_only: &[HostEntry]) -> Result<(), HostfileError> {
        if self.current.is_none() {
            self.write_if_changed(master_only)?;
        }
        self.note_workers(0)
    }

    pub fn publish(&mut self, entries: &[HostEntry]) -> Result<(), HostfileError> {
        self.write_if_changed(entries)?;
        self.note_workers(entries.len().saturating_sub(1))
    }

    fn write_if_changed(&mut self, entries: &[HostEntry]) -> Result<(), HostfileError> {
        let text = hostfile(self.mpi, entries);
        if self.current.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        write_atomically(&self.path, text.as_bytes(), 0o644).map_err(|source| HostfileError::Write { path: self.path.clone(), source })?;
        let before = self.current.as_deref().map(hosts).unwrap_or_default();
        let (added, removed) = changes(&before, &hosts(&text));
        info!(hosts = entries.len(), added = ?added, removed = ?removed, path = %self.path.display(), "hostfile updated");
        self.current = Some(text);
        Ok(())
    }

    fn note_workers(&mut self, workers: usize) -> Result<(), HostfileError> {
        if !self.complete && workers >= self.expected_workers as usize {
            write_atomically(&self.marker, b"", 0o644).map_err(|source| HostfileError::Write { path: self.marker.clone(), source })?;
            self.complete = true;
            info!(workers, marker = %self.marker.display(), "the hostfile lists every initial worker");
        }
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(workers: &[&str]) -> Vec<HostEntry> {
        std::iter::once("c-master")
            .chain(workers.iter().copied())
            .map(|h| HostEntry { host: h.into(), slots: 1 })
            .collect()
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn writes_on_change_and_marks_completion_once() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostfile");
        let marker = dir.path().join(".complete");
        let mut publisher = Publisher::new(&path, MpiImplementation::OpenMpi, 2);
        publisher.start(&entries(&[])).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert!(!marker.exists());

        publisher.publish(&entries(&["w0"])).unwrap();
        assert!(!marker.exists() && !publisher.is_complete());
        publisher.publish(&entries(&["w0", "w1"])).unwrap();
        assert!(marker.exists() && publisher.is_complete());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\nw0 slots=1\nw1 slots=1\n");

        std::fs::write(&path, "edited behind our back\n").unwrap();
        let stamp = modified(&path);
        std::thread::sleep(std::time::Duration::from_millis(20));
        publisher.publish(&entries(&["w0", "w1"])).unwrap();
        assert_eq!(modified(&path), stamp, "unchanged content is not rewritten");

        publisher.publish(&entries(&["w1"])).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\nw1 slots=1\n");
        assert!(marker.exists(), "the marker stays after a scale-down");
    }

    #[test]
    fn a_restarted_sidecar_keeps_the_previous_hostfile_until_it_has_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostfile");
        std::fs::write(&path, "c-master slots=1\nw0 slots=1\n").unwrap();
        let mut publisher = Publisher::new(&path, MpiImplementation::OpenMpi, 1);
        publisher.start(&entries(&[])).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\nw0 slots=1\n");
    }

    #[test]
    fn no_workers_wanted_means_complete_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut publisher = Publisher::new(&dir.path().join("hostfile"), MpiImplementation::Mpich, 0);
        publisher.start(&entries(&[])).unwrap();
        assert!(dir.path().join(".complete").exists());
        assert_eq!(std::fs::read_to_string(dir.path().join("hostfile")).unwrap(), "c-master:1\n");
        let again = tempfile::tempdir().unwrap();
        std::fs::write(again.path().join("hostfile"), "c-master:1\n").unwrap();
        Publisher::new(&again.path().join("hostfile"), MpiImplementation::Mpich, 0).start(&entries(&[])).unwrap();
        assert!(again.path().join(".complete").exists(), "also when a previous run left the hostfile");
    }
}
