//! Diagnostics: an error or warning about user input, with the file, line and column it
//! concerns and what was expected there. The library returns them; only the binary prints.

use crate::values::Site;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub site: Site,
    pub message: String,
}

impl Diagnostic {
    pub fn error(site: Site, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            site,
            message: message.into(),
        }
    }

    pub fn warning(site: Site, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            site,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {tag}: {}", self.site, self.message)
    }
}
