//! The exec stream's framing: Kubernetes' `v5.channel.k8s.io` WebSocket
//! subprotocol, which `kubectl exec` speaks to kube-apiserver. Each binary
//! message is one channel byte, then data:
//!
//! | channel | direction | data |
//! |---|---|---|
//! | 0 stdin | client → berth | bytes for the command's stdin |
//! | 1 stdout | berth → client | the command's output (all of it with a TTY) |
//! | 2 stderr | berth → client | its errors (without a TTY) |
//! | 3 status | berth → client | a `meta/v1 Status`: success, or the exit code |
//! | 4 resize | client → berth | `{"Width": cols, "Height": rows}` |
//! | 255 close | client → berth | `[255, 0]`: end of stdin |
//!
//! Reusing Kubernetes' framing rather than inventing one keeps the browser
//! terminal, `berth exec` and any client written against Kubernetes'
//! documentation on one shape.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The subprotocol name.
pub const PROTOCOL: &str = "v5.channel.k8s.io";

/// Channel numbers.
pub const STDIN: u8 = 0;
/// Standard output.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;
/// The command's outcome.
pub const STATUS: u8 = 3;
/// A terminal resize.
pub const RESIZE: u8 = 4;
/// The close of a stream (stdin) by the client.
pub const CLOSE: u8 = 255;

/// A resize message's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// One message: its channel byte, then `data`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(data.len() + 1);
    framed.push(channel);
    framed.extend_from_slice(data);
    framed
}

/// The status message of a command that exited with `code` (`None`: the
/// engine did not say), as kube-apiserver words it.
pub fn exit_status(code: Option<i64>) -> Vec<u8> {
    let status = match code {
        Some(0) => json!({ "metadata": {}, "status": "Success" }),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
        }),
        None => json!({
            "metadata": {},
            "status": "Failure",
            "message": "the engine did not report the command's exit code",
            "reason": "InternalError",
        }),
    };
    frame(STATUS, status.to_string().as_bytes())
}

/// The status message of a session that failed: `message` says why.
pub fn failure_status(message: &str) -> Vec<u8> {
    let status = json!({ "metadata": {}, "status": "Failure", "message": message, "reason": "InternalError" });
    frame(STATUS, status.to_string().as_bytes())
}

/// The exit code a status message reports: `Ok(0)` for success, the code of
/// a `NonZeroExitCode`, `Err(message)` for any other failure.
pub fn exit_code_of(status: &[u8]) -> Result<i64, String> {
    let status: serde_json::Value =
        serde_json::from_slice(status).map_err(|e| format!("the status message does not decode: {e}"))?;
    if status["status"] == "Success" {
        return Ok(0);
    }
    let code = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|cause| cause["reason"] == "ExitCode")
        .and_then(|cause| cause["message"].as_str()?.parse().ok());
    match (status["reason"].as_str(), code) {
        (Some("NonZeroExitCode"), Some(code)) => Ok(code),
        _ => Err(status["message"].as_str().unwrap_or("the command failed").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_exit_codes() {
        assert_eq!(exit_code_of(&exit_status(Some(0))[1..]), Ok(0));
        assert_eq!(exit_code_of(&exit_status(Some(5))[1..]), Ok(5));
        assert!(exit_code_of(&exit_status(None)[1..]).is_err());
        assert_eq!(exit_code_of(&failure_status("the engine went away")[1..]), Err("the engine went away".into()));
        assert_eq!(exit_status(Some(0))[0], STATUS);
    }

    #[test]
    fn resize_is_kubernetes_shaped() {
        let resize: Resize = serde_json::from_str(r#"{"Width":80,"Height":24}"#).unwrap();
        assert_eq!(resize, Resize { width: 80, height: 24 });
        assert!(serde_json::from_str::<Resize>(r#"{"Width":80,"Height":24,"x":1}"#).is_err());
    }
}
