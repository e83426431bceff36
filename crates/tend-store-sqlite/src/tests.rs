use super::migrations::MIGRATIONS;
use super::*;

#[test]
fn every_migration_file_is_embedded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let embedded: Vec<String> = MIGRATIONS
        .iter()
        .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
        .collect();
    assert_eq!(files, embedded);
}

#[test]
fn like_patterns_match_wildcards_literally() {
    assert_eq!(like_pattern("Ann_a%"), "%ann\\_a\\%%");
    assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
}
