//! Sources: where desired state comes from.
//!
//! A source turns its inputs into store writes and owns the objects it
//! wrote. Each manifest file is its own source (`file:<path>`): applying a
//! file writes its objects and deletes those it declared before and no
//! longer does, in one transaction; removing the file deletes exactly its
//! objects. An invalid file changes nothing: the objects of its last good
//! version stay, and its errors are recorded on its source record.
//!
//! - [`dir`]: watched directories (notify).
//! - [`apply`]: the one way any source writes a set of objects.

pub mod apply;
pub mod dir;

pub use apply::{apply_set, pruned, Applied, SetOptions};
