//! The statements that list contacts a page at a time on PostgreSQL: by stage, by the
//! words of a search (the GIN index of migration 0012), or both.

use crate::sql::contact_columns;

/// The words of a contact, accents folded, as migration 0012 indexes them.
const SEARCH_DOCUMENT: &str = "to_tsvector('simple', tend_fold(translate(coalesce(email, ''), '@.+_-', '     ') || ' ' || coalesce(name, '')))";

/// `contacts` listing statement for the filters present, so each shape can use its index
/// (a search, the GIN index of migration 0012). Parameters: the cursor, then the stage
/// and the search when present, then the limit.
pub(crate) fn list_sql(by_stage: bool, by_text: bool) -> String {
    let mut sql = String::from(concat!(
        "SELECT ",
        contact_columns!(),
        " FROM contacts WHERE id > $1"
    ));
    let mut n = 1;
    if by_stage {
        n += 1;
        sql.push_str(&format!(" AND stage = ${n}"));
    }
    if by_text {
        n += 1;
        sql.push_str(&format!(
            " AND {SEARCH_DOCUMENT} @@ to_tsquery('simple', tend_fold(${n}))"
        ));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
    sql
}

/// A tsquery for the words of a search: each word a prefix (`smi:*`), all of them
/// required. The words are letters and digits only, so nothing in them is tsquery
/// syntax.
pub(crate) fn ts_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("{w}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}
