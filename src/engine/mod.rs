//! Engines: tmp
