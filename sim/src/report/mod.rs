//! Reports of a run: human text, one JSON object, JUnit XML.
//!
//! Contract: reports only read a [`crate::run::RunReport`]; they never evaluate anything.

pub mod human;
pub mod json;
pub mod junit;
pub mod trace;
