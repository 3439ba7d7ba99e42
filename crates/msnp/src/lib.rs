//! The MSN Messenger protocol, MSNP2–MSNP12, as pure functions over bytes.
//!
//! Nothing here performs I/O: the server feeds bytes in and writes the bytes
//! this crate renders. That keeps the protocol unit-testable against the
//! reference vectors and fuzzable without a runtime.

pub mod auth;
pub mod codec;
pub mod dialect;
pub mod error;
pub mod mime;
pub mod psm;
pub mod soap;
pub mod urlenc;
pub mod xml;
