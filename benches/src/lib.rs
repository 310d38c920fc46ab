//! Criterion benchmarks of fwsim; see benches/.
