//! The fuzz harnesses in the normal test run, without libFuzzer: every input of the committed corpus
//! (`fuzz/corpus/<target>/`, with the hand-written `fuzz/seeds/<target>/`) and every crash the fuzzer
//! found (`fuzz/artifacts/<target>/`) replayed, so a fixed crash stays fixed; then a short, fixed-seed
//! mutation run over the seeds, so a change that breaks an invariant is caught on stable too.

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs `data` through `harness`; on a panic, keeps the input in a temporary file and says where.
fn passes(target: &str, harness: fn(&[u8]), data: &[u8], origin: &str) -> Result<(), String> {
    if std::panic::catch_unwind(|| harness(data)).is_ok() {
        return Ok(());
    }
    let kept = std::env::temp_dir().join(format!("kompi-fuzz-{target}-{:016x}", fnv(data)));
    let _ = std::fs::write(&kept, data);
    Err(format!("{target}: {origin} (input kept in {}; copy it to fuzz/artifacts/{target}/ once fixed)", kept.display()))
}

#[test]
fn the_corpus_and_every_crash_found_pass_their_harness() {
    let mut failed = Vec::new();
    let mut counts = [0usize; 3];
    for (target, harness) in kompi_fuzz::TARGETS {
        for (i, kind) in ["seeds", "corpus", "artifacts"].into_iter().enumerate() {
            for path in inputs(kind, target) {
                counts[i] += 1;
                let data = std::fs::read(&path).unwrap();
                if let Err(e) = passes(target, harness, &data, &path.display().to_string()) {
                    failed.push(e);
                }
            }
        }
    }
    assert!(failed.is_empty(), "{} input(s) fail their harness:\n{}", failed.len(), failed.join("\n"));
    assert!(counts[0] > 0, "the seeds are missing (fuzz/seeds/<target>/)");
    eprintln!("replayed {} seed(s), {} corpus input(s), {} crash input(s)", counts[0], counts[1], counts[2]);
}

/// Mutations per target; `KOMPI_FUZZ_MUTATIONS` raises it for a longer run on stable.
const MUTATIONS: usize = 400;

#[test]
fn mutated_seeds_pass_every_harness() {
    let per_target = std::env::var("KOMPI_FUZZ_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(MUTATIONS);
    let mut rng = XorShift(0x6b6f_6d70_6921_0010);
    let mut failed = Vec::new();
    for (target, harness) in kompi_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = ["seeds", "corpus"].iter().flat_map(|k| inputs(k, target)).map(|p| std::fs::read(p).unwrap()).collect();
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for round in 0..per_target {
            let data = mutate(&mut rng, &seeds);
            if let Err(e) = passes(target, harness, &data, &format!("mutation {round}")) {
                failed.push(e);
            }
        }
    }
    assert!(failed.is_empty(), "{} mutated input(s) fail their harness:\n{}", failed.len(), failed.join("\n"));
}

/// A seed with a few of libFuzzer's kinds of change: bit flips, interesting bytes, inserted and
/// deleted runs, and splices of another seed.
fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied()).for_each(drop);
            }
            4 => data.splice(at..at, std::iter::repeat_n(b"\n  ab: 1"[rng.below(8)], 1 + rng.below(8))).for_each(drop),
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

/// Bytes that mean something to YAML, `--set`, MCA lines or a hostfile.
const INTERESTING: &[u8] = b"\0\n\r\x1b\"':-[]{}=,.\\ 0~#&*!|>%@`";

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
