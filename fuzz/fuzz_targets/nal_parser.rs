#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzz::nal_parser(data));
