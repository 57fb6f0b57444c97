//! Why berth could not start a part of itself: a listener, the API token,
//! TLS, the engine connection, a manifest source.
//!
//! A start-up failure ends `berth serve` with one line that says what was
//! being done, in the terms the user gave (a flag, a file), and why. The
//! library returns this type; `anyhow` stays the binary's. The cause is the
//! error's `source`, so `error_chain::Chain` (or the binary's `{:#}`)
//! prints `--dns-listen: cannot listen on 127.0.0.1:53: Address in use`
//! with each part once.

use std::error::Error;

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Doing `doing` failed because of `source`.
    #[error("{doing}")]
    Failed {
        /// What was being done, e.g. `cannot listen on 127.0.0.1:53`.
        doing: String,
        /// Why it failed.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// What was asked cannot work: what is wrong and how to fix it.
    #[error("{0}")]
    Refused(String),
    /// The store failed (its errors name the state directory).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The database is gone while the engine still runs its objects.
    #[error(transparent)]
    LostStore(#[from] crate::controller::LostStore),
}

/// A result whose error is a [`StartError`].
pub type Result<T, E = StartError> = std::result::Result<T, E>;

/// Names what a failed step was doing: `bind(...).await.doing(|| "--dns-listen")?`.
pub trait Doing<T> {
    /// The error, if any, as a [`StartError::Failed`] doing `doing`.
    fn doing<S: Into<String>>(self, doing: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Error + Send + Sync + 'static> Doing<T> for std::result::Result<T, E> {
    fn doing<S: Into<String>>(self, doing: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| StartError::Failed { doing: doing().into(), source: Box::new(source) })
    }
}

/// `Err(StartError::Refused(..))` unless `holds`.
pub fn ensure(holds: bool, refused: impl FnOnce() -> String) -> Result<()> {
    match holds {
        true => Ok(()),
        false => Err(StartError::Refused(refused())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;

    #[test]
    fn what_was_being_done_comes_first_and_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address in use");
        let inner = Err::<(), _>(io).doing(|| "cannot listen on 127.0.0.1:53").unwrap_err();
        let outer = Err::<(), _>(inner).doing(|| "--dns-listen").unwrap_err();
        assert_eq!(Chain(&outer).to_string(), "--dns-listen: cannot listen on 127.0.0.1:53: Address in use");
        let refused = ensure(false, || "--dns-on-networks needs the DNS server".into()).unwrap_err();
        assert_eq!(Chain(&refused).to_string(), "--dns-on-networks needs the DNS server");
    }
}
