//! Scenario YAML: read, load, evaluate.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fwsim::fuzzing::scenario_yaml(data);
});
