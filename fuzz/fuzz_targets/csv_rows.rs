//! A CSV file as `tend import contacts` reads it: header, rows, every validation.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tend_store::import_rows::{MAX_FIELD_BYTES, RowReader};

static PROJECT: LazyLock<tend_core::check::Project> = LazyLock::new(common::project);

fuzz_target!(|data: &[u8]| {
    let Ok(mut rows) = RowReader::new(data) else {
        return;
    };
    let mut last_line = 0;
    while let Some((line, row)) = rows.next_row(&PROJECT.config) {
        // Lines only move forward, and never past the file's last line.
        assert!(line >= last_line, "line {line} after {last_line}");
        assert!(line as usize <= data.split(|&b| b == b'\n').count().max(1) + 1);
        last_line = line;
        if let Ok(row) = row {
            assert!(row.name.as_ref().is_none_or(|n| n.len() <= MAX_FIELD_BYTES));
        }
    }
});
