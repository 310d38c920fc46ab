//! ipset save text: parse, print round trip, set building, membership tests.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::ipset_save(data);
});
