//! The hostfile on disk: replaced atomically, only when its content changes, and the `.complete` marker
//! once it first lists every initial worker. What it lists is announced to the readiness gate.

use std::path::{Path, PathBuf};

use kompi_render::hostfile::{HostEntry, hostfile, hosts};
use kompi_spec::MpiImplementation;
use kompi_spec::contract::HOSTFILE_COMPLETE_MARKER;
use tokio::sync::watch;
use tracing::info;

use super::error::HostfileError;
use super::readiness::Listing;
use crate::atomic_file::write_atomically;

pub struct Publisher {
    path: PathBuf,
    marker: PathBuf,
    mpi: MpiImplementation,
    expected_workers: u32,
    /// What the file holds now (`None`: absent).
    current: Option<String>,
    complete: bool,
    /// Workers that exist but do not serve yet.
    starting: Vec<String>,
    listing: watch::Sender<Listing>,
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
            starting: Vec::new(),
            listing: watch::Sender::new(Listing { initial: expected_workers, ..Default::default() }),
        }
    }

    /// Follows what the hostfile lists, from its first write on.
    pub fn listings(&self) -> watch::Receiver<Listing> {
        self.listing.subscribe()
    }

    /// Writes the master-only hostfile if there is none yet (so mpiexec finds one from the start).
    pub fn start(&mut self, master_only: &[HostEntry]) -> Result<(), HostfileError> {
        if self.current.is_none() {
            self.write_if_changed(master_only)?;
        }
        self.note_workers(0)?;
        self.announce();
        Ok(())
    }

    /// Writes the hostfile of `entries`; `starting` are the workers that exist but are not listed yet.
    pub fn publish(&mut self, entries: &[HostEntry], starting: Vec<String>) -> Result<(), HostfileError> {
        self.write_if_changed(entries)?;
        self.note_workers(entries.len().saturating_sub(1))?;
        self.starting = starting;
        self.announce();
        Ok(())
    }

    /// Tells the readiness gate what the file lists now (the master is its first host).
    fn announce(&mut self) {
        let workers = self.current.as_deref().map(hosts).unwrap_or_default().into_iter().skip(1).map(str::to_string).collect();
        let listing = Listing { workers, starting: self.starting.clone(), complete: self.complete, initial: self.expected_workers };
        self.listing.send_if_modified(|l| {
            let changed = *l != listing;
            *l = listing;
            changed
        });
    }

    fn write_if_changed(&mut self, entries: &[HostEntry]) -> Result<(), HostfileError> {
        let text = hostfile(self.mpi, entries);
        if self.current.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        write_hostfile(&self.path, &text).map_err(|source| HostfileError::Write { path: self.path.clone(), source })?;
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

/// The one way a hostfile reaches the disk (the sidecar's and the local backend's): replaced atomically,
/// so mpiexec reads the old or the new list, never a mix; readable by everyone, as mpiexec may run as
/// another user than the writer.
pub fn write_hostfile(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomically(path, text.as_bytes(), 0o644)
}

/// Hosts added and removed between two hostfiles, for the log.
fn changes<'a>(before: &[&'a str], after: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let added = after.iter().filter(|h| !before.contains(h)).copied().collect();
    let removed = before.iter().filter(|h| !after.contains(h)).copied().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_added_and_removed_hosts() {
        assert_eq!(changes(&["m", "a", "b"], &["m", "b", "c"]), (vec!["c"], vec!["a"]));
        assert_eq!(changes(&["m"], &["m"]), (vec![], vec![]));
    }

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

        publisher.publish(&entries(&["w0"]), vec![]).unwrap();
        assert!(!marker.exists() && !publisher.is_complete());
        publisher.publish(&entries(&["w0", "w1"]), vec![]).unwrap();
        assert!(marker.exists() && publisher.is_complete());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\nw0 slots=1\nw1 slots=1\n");

        std::fs::write(&path, "edited behind our back\n").unwrap();
        let stamp = modified(&path);
        std::thread::sleep(std::time::Duration::from_millis(20));
        publisher.publish(&entries(&["w0", "w1"]), vec![]).unwrap();
        assert_eq!(modified(&path), stamp, "unchanged content is not rewritten");

        publisher.publish(&entries(&["w1"]), vec![]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c-master slots=1\nw1 slots=1\n");
        assert!(marker.exists(), "the marker stays after a scale-down");
    }

    #[test]
    fn the_readiness_gate_hears_what_the_file_lists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostfile");
        let mut publisher = Publisher::new(&path, MpiImplementation::OpenMpi, 2);
        let mut listings = publisher.listings();
        publisher.start(&entries(&[])).unwrap();
        assert_eq!(*listings.borrow_and_update(), Listing { workers: vec![], starting: vec![], complete: false, initial: 2 });
        publisher.publish(&entries(&["w0", "w1"]), vec![]).unwrap();
        assert!(listings.has_changed().unwrap());
        assert_eq!(*listings.borrow_and_update(), Listing { workers: vec!["w0".into(), "w1".into()], starting: vec![], complete: true, initial: 2 });
        publisher.publish(&entries(&["w0", "w1"]), vec![]).unwrap();
        assert!(!listings.has_changed().unwrap(), "an unchanged list is not announced again");
        publisher.publish(&entries(&["w1"]), vec!["c-worker-2".into()]).unwrap();
        assert_eq!(*listings.borrow_and_update(), Listing { workers: vec!["w1".into()], starting: vec!["c-worker-2".into()], complete: true, initial: 2 });

        // A restarted sidecar announces what the file it finds lists, complete as the marker says.
        let mut again = Publisher::new(&path, MpiImplementation::OpenMpi, 2);
        let listings = again.listings();
        again.start(&entries(&[])).unwrap();
        assert_eq!(*listings.borrow(), Listing { workers: vec!["w1".into()], starting: vec![], complete: true, initial: 2 });
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
