//! The minimizer (to come).
