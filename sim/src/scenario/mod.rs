//! Scenarios: discovery in files and folders, loading and checking (cluster, policies,
//! expectations), and evaluation on each dataplane.
//!
//! Contract: [`discover`] never fails as a whole: every file or document that cannot be
//! read becomes a diagnostic and the rest go on. [`load`] turns one scenario document into
//! a checked [`Scenario`] or a list of diagnostics naming file, line and column.
//! [`evaluate`] cannot fail.

mod dataplane;
mod discover;
mod evaluate;
mod load;
mod model;

pub use dataplane::Dataplane;
pub use discover::{discover, discover_text, Discovered, ScenarioDoc};
pub use evaluate::{evaluate, observed_cell, Divergence, MatrixReport, ResultRow, ScenarioResult};
pub use load::{header as header_of_doc, load, packet_from_args, ScenarioHeader};
pub use model::{Body, Expect, ExpectKind, MatrixCell, PacketExpect, PacketVerdict, Scenario};
