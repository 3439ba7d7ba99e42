//! Passport HTTP (being written).
