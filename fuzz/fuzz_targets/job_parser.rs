#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzz::job_parser(data));
