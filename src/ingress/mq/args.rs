//! The `berth serve` flags of the POSIX message-queue transport.

use clap::Args;

use super::frame::check_queue_name;

/// POSIX message-queue flags of `berth serve`.
#[derive(Debug, Args)]
pub struct MqArgs {
    /// Take requests from this POSIX message queue (/NAME), created if
    /// absent. Off unless given.
    #[arg(long, value_name = "/NAME")]
    pub mq: Option<String>,
    /// Mode of the queue berth creates: who may send requests (octal).
    #[arg(long, value_name = "OCTAL", default_value = "0600", value_parser = parse_mode, requires = "mq")]
    pub mq_mode: u32,
    /// Message size of the queue berth creates; larger requests come in
    /// chunks. Default: the system's (fs.mqueue.msgsize_default).
    #[arg(long, value_name = "SIZE", value_parser = crate::ingress::mqtt::parse_size, requires = "mq")]
    pub mq_msgsize: Option<u32>,
    /// How many messages the queue berth creates holds. Default: the
    /// system's (fs.mqueue.msg_default).
    #[arg(long, value_name = "N", requires = "mq")]
    pub mq_maxmsg: Option<u32>,
}

/// The queue to listen on.
#[derive(Clone, Debug)]
pub(crate) struct MqConfig {
    pub name: String,
    pub mode: u32,
    /// (msgsize, maxmsg) to create it with: the flags', else the system's
    /// defaults (always given: without them mq_open would take no mode).
    pub attr: (usize, usize),
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("`{text}` is not a mode; give octal, e.g. 0600 or 0660"))
}

fn system_default(name: &str, fallback: usize) -> usize {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(fallback)
}

impl MqArgs {
    /// The queue the flags name, or `None` when the transport is off.
    pub(crate) fn config(&self) -> Result<Option<MqConfig>, String> {
        let Some(name) = &self.mq else { return Ok(None) };
        check_queue_name(name).map_err(|e| format!("--mq: {e}"))?;
        let attr = (
            self.mq_msgsize.map_or_else(|| system_default("msgsize_default", 8192), |s| s as usize),
            self.mq_maxmsg.map_or_else(|| system_default("msg_default", 10), |n| n as usize),
        );
        Ok(Some(MqConfig { name: name.clone(), mode: self.mq_mode, attr }))
    }
}
