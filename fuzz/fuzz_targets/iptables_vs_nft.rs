//! One generated ruleset read as iptables-save and as nft: probes and connection
//! sequences get the same fate from both readings.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::iptables_vs_nft(data);
});
