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
fn a_search_is_quoted_prefixes_of_its_words_and_nothing_else() {
    let words = search_words("Ann.Smith@ex\"AMPLE* OR x");
    assert_eq!(words, ["ann", "smith", "ex", "ample", "or", "x"]);
    assert_eq!(
        fts_query(&words),
        "\"ann\"* \"smith\"* \"ex\"* \"ample\"* \"or\"* \"x\"*"
    );
    assert!(search_words("@ -- %").is_empty());
}
