//! The in-memory fake engine. (Being written.)
