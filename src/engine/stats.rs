//! A container's resource use, as the engines' stats APIs report it: the
//! totals since it started (CPU time, bytes moved) and the memory in use
//! now. Rates are the scraper's business (Prometheus' `rate()`).

/// One sample of a container's resource use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContainerStats {
    /// CPU time used, user and system, in seconds.
    pub cpu_seconds: f64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// The memory limit, in bytes (the host's memory without one).
    pub memory_limit_bytes: u64,
    /// Bytes received on every network.
    pub network_receive_bytes: u64,
    /// Bytes sent on every network.
    pub network_transmit_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
}
