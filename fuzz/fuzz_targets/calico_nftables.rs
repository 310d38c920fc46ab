//! The reference engine vs Calico's nftables dataplane on a cluster the bytes generate.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::calico_divergence(data, fwsim::render::Flavor::CalicoNftables);
});
