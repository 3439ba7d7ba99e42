//! The MSN Messenger and Windows Live Messenger protocol, MSNP2–MSNP18, as
//! pure functions over bytes.
//!
//! Nothing here performs I/O: the server feeds bytes in and writes the bytes
//! this crate renders. That keeps the protocol unit-testable against the
//! reference vectors and fuzzable without a runtime.
//!
//! * [`dialect`]: which dialect does what (MSNP2–MSNP18), and `VER`
//!   negotiation.
//! * [`codec`]: framing, with the payload commands of each dialect and a
//!   [`codec::StreamDecoder`] that resumes where it stopped.
//! * [`auth`]: the MD5 login and the `CHL`/`QRY` challenges (all product
//!   ids up to WLM 2009); [`sso`]: the MSNP15+ MBI key response;
//!   [`oim`]: the offline-message lock key.
//! * [`adl`]: the `<ml>` documents of `ADL`/`RML`/`FQY` (MSNP13+);
//!   [`abch`]: the address-book, sharing and storage SOAP documents;
//!   [`cid`]: the 64-bit contact id and its wire forms; [`endpoint`]: P16+
//!   machine GUIDs and `email;{guid}` handles.
//! * [`mime`], [`psm`], [`urlenc`], [`xml`], [`error`]: payloads, personal
//!   messages, encodings and error replies shared by all dialects.

pub mod abch;
pub mod adl;
pub mod auth;
pub mod cid;
pub mod codec;
pub mod dialect;
pub mod endpoint;
pub mod error;
pub mod mime;
pub mod oim;
pub mod psm;
pub mod soap;
pub mod sso;
pub mod urlenc;
pub mod xml;
