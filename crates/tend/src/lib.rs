//! What the `tend` command shares with its fuzz targets: the parts that read
//! untrusted files without touching a store.

pub mod import_rows;
