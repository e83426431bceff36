//! A process file, checked against a valid config and template.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::check(common::CONFIG, text, common::TEMPLATE);
    }
});
