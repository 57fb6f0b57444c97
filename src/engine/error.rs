//! Errors of engine operations, in terms the reconcilers can act on.

/// Result of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// The object (`container web-0`).
        what: String,
    },
    /// The object exists already, or is in use.
    #[error("{what}: conflict: {message}")]
    Conflict {
        /// The object.
        what: String,
        /// The engine's words.
        message: String,
    },
    /// The engine cannot be reached.
    #[error("engine unreachable at {endpoint}")]
    Unavailable {
        /// Socket or URL.
        endpoint: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine refused or failed the operation.
    #[error("{operation} failed: {message}")]
    Failed {
        /// Operation, e.g. `create container web-0`.
        operation: String,
        /// The engine's words.
        message: String,
    },
    /// An injected failure (fake engine).
    #[error("injected failure in {operation}")]
    Injected {
        /// Operation.
        operation: String,
    },
}

impl EngineError {
    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound { .. })
    }

    /// `Ok` when the object was already gone: for removals, where "not
    /// found" means the work is done.
    pub fn ignore_not_found(self) -> Result<()> {
        if self.is_not_found() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Whether the object already existed or is in use.
    pub fn is_conflict(&self) -> bool {
        matches!(self, EngineError::Conflict { .. })
    }
}
