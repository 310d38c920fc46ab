//! nft text: parse, print round trip, IR conversion, packet walks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::nft_text(data);
});
