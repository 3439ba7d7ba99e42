//! The Matrix bridge: msngate as a Matrix application service.

pub mod registration;
