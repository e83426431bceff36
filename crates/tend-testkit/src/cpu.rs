//! CPU time for benchmarks: this process's, and that of the PostgreSQL backends serving
//! a database on this machine, read from `/proc` (Linux only), so a figure per event or
//! per email can count the database server's work beside Tend's own.

use std::collections::HashMap;
use std::time::Duration;

/// User + system CPU time of every thread of this process so far.
pub fn process_cpu() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// User + system CPU time of the process whose `stat` file is at `path` (fields 14 and
/// 15, in USER_HZ ticks, which Linux fixes at 100 a second); zero when it cannot be read
/// (the process ended).
pub fn stat_cpu(path: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // The command name may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name, field 3 (state) is index 0, so utime and stime are 11 and 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time so far of each PostgreSQL backend serving a database, by process id.
pub struct BackendCpu(HashMap<i32, Duration>);

impl BackendCpu {
    /// Reads the backends of the database `url` names (other than the one asking) from
    /// `pg_stat_activity`, and each one's CPU time from `/proc`: the server must run on
    /// this machine. Its background writer, WAL writer and checkpointer are not counted.
    pub async fn read(url: &str) -> BackendCpu {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to PostgreSQL to list its backends");
        let driver = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("listing the database's backends");
        drop(client);
        let _ = driver.await;
        BackendCpu(
            rows.iter()
                .map(|row| {
                    let pid: i32 = row.get(0);
                    (pid, stat_cpu(&format!("/proc/{pid}/stat")))
                })
                .collect(),
        )
    }

    /// CPU time spent since `before` by the backends alive now (all of it for those
    /// started since). Backends that ended in between are missed; pools that keep their
    /// connections open for the whole measurement lose nothing.
    pub fn since(&self, before: &BackendCpu) -> Duration {
        self.0
            .iter()
            .map(|(pid, now)| now.saturating_sub(before.0.get(pid).copied().unwrap_or_default()))
            .sum()
    }
}
