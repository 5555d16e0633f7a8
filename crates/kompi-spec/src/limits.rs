//! Every bound kompi enforces, in one place: the values model, the builder and the command line read
//! them here, so a limit cannot differ between `kompi up -f`, `--set` and `kompi scale`.

use std::ops::RangeInclusive;

use crate::contract::{SYNC_SECRET_SUFFIX, SYNC_VOLUME_PREFIX};

/// The most workers a cluster may have: `mpiWorkers.num`, `kompi scale --workers`, `kompi local up --workers`.
pub const MAX_WORKERS: u32 = 1000;
/// The most slots one hostfile line may give a pod (`slots`, and the default taken from CPUs or GPUs).
pub const MAX_SLOTS: u32 = 4096;
/// The longest the one-shot master waits for its workers: one day.
pub const MAX_WAIT_SECONDS: u32 = 86_400;
/// A DNS label (RFC 1123), which every Kubernetes object and volume name must be, has at most this many characters.
pub const DNS_LABEL_MAX: usize = 63;
/// The longest cluster name: `NAME-worker-` plus the 10-character revision hash the StatefulSet
/// controller appends must stay a DNS label.
pub const MAX_CLUSTER_NAME: usize = DNS_LABEL_MAX - "-worker-".len() - 10;
/// The longest `appCodesToSync[].name`: its volume `kompi-sync-<name>-secret` must stay a DNS label.
pub const MAX_APP_CODE_NAME: usize = DNS_LABEL_MAX - SYNC_VOLUME_PREFIX.len() - SYNC_SECRET_SUFFIX.len();
/// The highest list index `--set` accepts (`a[10000]=x` already makes a list of 10001 items).
pub const MAX_SET_INDEX: usize = 10_000;
/// Ports below this one need root to listen on.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;
/// Kubernetes' default NodePort range; a port outside it is allowed but warned about.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_bounds() {
        assert_eq!(MAX_CLUSTER_NAME, 45);
        assert_eq!(MAX_APP_CODE_NAME, 45);
    }
}
