//! The statements that list contacts a page at a time, filtered by stage and by the
//! words of a search.

use crate::sql::contact_columns;

/// `contacts` listing statement for the filters present, so each shape can use its index
/// (`stage, id` or the primary key) instead of a generic `?n IS NULL OR …`. Parameters:
/// the cursor, then the stage and the search when present, then the limit. A search
/// walks the full-text index in id order (FTS5 takes the `rowid >` bound and the
/// order), so a page reads its own rows and not every match.
pub(crate) fn list_sql(by_stage: bool, by_text: bool) -> String {
    let mut n = 1;
    let mut sql = if by_text {
        String::from(
            "SELECT c.id, c.email, c.user_id, c.name, c.timezone, c.stage, c.attributes, \
             c.created_at, c.updated_at, c.suppressed_at, c.last_touch_at \
             FROM contacts_search s CROSS JOIN contacts c ON c.id = s.rowid \
             WHERE s.rowid > ?1",
        )
    } else {
        String::from(concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contacts c WHERE c.id > ?1"
        ))
    };
    if by_stage {
        n += 1;
        sql.push_str(&format!(" AND c.stage = ?{n}"));
    }
    if by_text {
        n += 1;
        sql.push_str(&format!(
            " AND s.contacts_search MATCH ?{n} ORDER BY s.rowid LIMIT ?{}",
            n + 1
        ));
    } else {
        sql.push_str(&format!(" ORDER BY c.id LIMIT ?{}", n + 1));
    }
    sql
}

/// An FTS5 query for the words of a search: each word a quoted prefix (`"smi"*`), all
/// of them required. The words are letters and digits only, so nothing in them is
/// FTS5 syntax.
pub(crate) fn fts_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}
