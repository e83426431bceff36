//! Counts and histories for the reports and `/api/pace`.

use super::*;

pub(crate) fn pace_counts(conn: &Connection) -> Result<PaceCounts, StoreError> {
    let held = sql::fetch_all(
        conn,
        "SELECT reason, COUNT(*) AS n FROM touches \
         WHERE state = 'pending' AND reason IS NOT NULL GROUP BY reason ORDER BY reason",
        [],
        |row| Ok((get(row, "reason")?, count(row)?)),
    )?;
    let enrolled = sql::fetch_all(
        conn,
        "SELECT process_id, COUNT(*) AS n FROM enrollments WHERE state = 'active' \
         GROUP BY process_id ORDER BY process_id",
        [],
        |row| Ok((get(row, "process_id")?, count(row)?)),
    )?;
    // Paused by hand: they wait on purpose, so the deficit leaves them out.
    let paused = sql::fetch_all(
        conn,
        "SELECT process_id, COUNT(*) AS n FROM enrollments WHERE state = 'active' \
         AND paused_at IS NOT NULL GROUP BY process_id ORDER BY process_id",
        [],
        |row| Ok((get(row, "process_id")?, count(row)?)),
    )?;
    Ok(PaceCounts {
        held,
        enrolled,
        paused,
    })
}

// --- reports ---

pub(crate) fn funnel(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
) -> Result<FunnelCounts, StoreError> {
    // Both from the counters of migration 0020, kept by triggers on every write.
    let stages = sql::fetch_all(
        conn,
        "SELECT stage, contacts AS n FROM stage_counts WHERE contacts > 0",
        [],
        |row| Ok((get(row, "stage")?, count(row)?)),
    )?;
    // The whole hours of the period from their counters; the part hours at either end,
    // if any, from the history itself.
    let (from, to) = (millis(from), millis(to));
    let hours = tend_store::WholeHours::within(from, to);
    let moves = sql::fetch_all(
        conn,
        "SELECT from_stage, to_stage, SUM(n) AS n FROM ( \
           SELECT NULLIF(from_stage, '') AS from_stage, to_stage, moves AS n \
           FROM stage_moves_hourly WHERE hour >= ?3 AND hour < ?4 \
           UNION ALL \
           SELECT from_stage, to_stage, COUNT(*) AS n FROM stage_history \
           WHERE at >= ?1 AND at < ?2 GROUP BY from_stage, to_stage \
           UNION ALL \
           SELECT from_stage, to_stage, COUNT(*) AS n FROM stage_history \
           WHERE at >= ?5 AND at < ?6 GROUP BY from_stage, to_stage) \
         GROUP BY from_stage, to_stage HAVING SUM(n) > 0",
        params![
            from,
            hours.start_ms(),
            hours.first,
            hours.end,
            hours.end_ms(),
            to
        ],
        |row| Ok((get(row, "from_stage")?, get(row, "to_stage")?, count(row)?)),
    )?;
    Ok(FunnelCounts { stages, moves })
}

pub(crate) fn conversions(
    conn: &Connection,
    stage: &StageName,
) -> Result<Vec<Conversion>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT f.contact_id, f.at, (SELECT COUNT(*) FROM touches t \
           WHERE t.contact_id = f.contact_id AND t.admitted_at IS NOT NULL \
           AND t.admitted_at <= f.at) AS touches \
         FROM (SELECT contact_id, MIN(at) AS at FROM stage_history WHERE to_stage = ?1 \
           GROUP BY contact_id) f ORDER BY f.at",
        params![stage.as_str()],
        |row| {
            Ok(Conversion {
                contact: ContactId(get(row, "contact_id")?),
                at: timestamp(get(row, "at")?, "conversion at")?,
                touches: get::<i64>(row, "touches")?.max(0) as u64,
            })
        },
    )
}

pub(crate) fn conversion_histogram(
    conn: &Connection,
    stage: &StageName,
) -> Result<Vec<(u64, u64)>, StoreError> {
    // From `stage_firsts` (migration 0020), kept by triggers: one index range.
    sql::fetch_all(
        conn,
        "SELECT touches, COUNT(*) AS n FROM stage_firsts WHERE stage = ?1 \
         GROUP BY touches ORDER BY touches",
        params![stage.as_str()],
        |row| Ok((get::<i64>(row, "touches")?.max(0) as u64, count(row)?)),
    )
}

pub(crate) fn admitted_since(
    conn: &Connection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, Channel)>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT admitted_at, channel FROM touches WHERE admitted_at >= ?1 ORDER BY admitted_at",
        params![millis(since)],
        |row| {
            Ok((
                timestamp(get(row, "admitted_at")?, "admitted_at")?,
                parse_channel(&get::<String>(row, "channel")?)?,
            ))
        },
    )
}

pub(crate) fn work_log_since(
    conn: &Connection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, f64)>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT at, delta FROM work_log WHERE at >= ?1 ORDER BY at, id",
        params![millis(since)],
        |row| {
            Ok((
                timestamp(get(row, "at")?, "work_log at")?,
                get(row, "delta")?,
            ))
        },
    )
}

pub(crate) fn neglect(
    conn: &Connection,
    max_gaps: &[(i64, i64)],
    before: Option<Timestamp>,
    limit: u32,
) -> Result<Vec<NeglectRow>, StoreError> {
    if max_gaps.is_empty() {
        return Ok(Vec::new());
    }
    // Per process, the first `limit` of its range of `enrollments_neglect` (the gap is
    // the same for all of them, so the order of `quiet_since` is the deadlines'), then
    // merged: the work is `limit` rows per process, whatever the number enrolled.
    let one = "SELECT * FROM (SELECT e.id, e.contact_id, e.process_id, e.enrolled_at, \
         c.last_touch_at, c.name, c.email, e.quiet_since + ? AS deadline \
         FROM enrollments e JOIN contacts c ON c.id = e.contact_id \
         WHERE e.state = 'active' AND e.paused_at IS NULL AND e.process_id = ? \
         AND e.quiet_since < ? \
         ORDER BY e.quiet_since, e.id LIMIT ?)";
    let sql = format!(
        "{} ORDER BY deadline, id LIMIT ?",
        vec![one; max_gaps.len()].join(" UNION ALL ")
    );
    let before = before.map_or(i64::MAX, millis);
    let bounds: Vec<i64> = max_gaps
        .iter()
        .map(|(_, gap_ms)| before.saturating_sub(*gap_ms))
        .collect();
    let mut binds: Binds<'_> = Vec::with_capacity(max_gaps.len() * 4 + 1);
    for ((process, gap_ms), bound) in max_gaps.iter().zip(&bounds) {
        binds.extend([gap_ms as &dyn ToSql, process, bound, &limit]);
    }
    binds.push(&limit);
    sql::fetch_binds(conn, &sql, &binds, |row| {
        Ok(NeglectRow {
            contact_id: ContactId(get(row, "contact_id")?),
            name: get(row, "name")?,
            email: get(row, "email")?,
            process_id: get(row, "process_id")?,
            last_touch_at: opt_timestamp(get(row, "last_touch_at")?, "last_touch_at")?,
            enrolled_at: timestamp(get(row, "enrolled_at")?, "enrolled_at")?,
            deadline: timestamp(get(row, "deadline")?, "deadline")?,
        })
    })
}
