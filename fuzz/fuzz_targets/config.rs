//! `tend.toml` as `tend check` and `tend serve` read it.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::check(text, common::PROCESS, common::TEMPLATE);
    }
});
