//! The campaign driver (to come).
