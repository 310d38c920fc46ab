//! The reference engine's fast pod-to-pod path vs its full evaluation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::reference_fast(data);
});
