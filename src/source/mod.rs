//! Sources: where desired state comes from.
//!
//! A source turns its inputs into store writes and owns the objects it
//! wrote. Each manifest file is its own source (`file:<path>`): applying a
//! file writes its objects and deletes those it declared before and no
//! longer does, in one transaction; removing the file deletes exactly its
//! objects. An invalid file changes nothing: the objects of its last good
//! version stay, and its errors are recorded on its source record.
//!
//! A git source (`git:<repo>#<branch>:<path>`) is one source for the whole
//! directory it follows: each commit is applied, or rejected, as one set.
//!
//! - [`dir`]: watched directories (notify).
//! - [`git`]: git repositories (gix), polled and woken by webhooks.
//! - [`apply`]: the one way any source writes a set of objects.

pub mod apply;
pub mod dir;
pub mod git;

pub use apply::{apply_set, check_set, pruned, Applied, SetOptions};
