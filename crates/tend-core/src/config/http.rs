//! `[http]`: where the server listens, and how long and how many for its connections.

use super::Duration;
use super::listen::{DEFAULT_LISTEN, ListenAddress};
use crate::check::{Fields, Report};

/// `[http]`: where the server listens and the bounds every HTTP connection lives within.
#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    /// Where `tend serve` listens (`host:port`) unless `--listen` says otherwise.
    pub listen: String,
    /// How long a client may take to send a request's headers, counted from when its
    /// connection opened or its previous response ended; so also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the listen queue.
    pub max_connections: u32,
    /// After SIGTERM or Ctrl-C, how long requests in progress may take to finish before
    /// the connections still open are dropped.
    pub shutdown_grace: Duration,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: DEFAULT_LISTEN.to_owned(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Reads `[http]`; also returns where `listen` is written, for warnings about it.
pub(super) fn read_http(report: &mut Report<'_>, top: &Fields<'_, '_>) -> (Http, Option<usize>) {
    let mut http = Http::default();
    let Some(fields) = top.get("http").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[http]",
            &[
                "listen",
                "header_timeout",
                "body_timeout",
                "max_connections",
                "shutdown_grace",
            ],
        )
    }) else {
        return (http, None);
    };
    if let Some(n) = fields.count(report, "max_connections") {
        if *n.get_ref() == 0 {
            report.error(n.span().start, "`max_connections` must be at least 1");
        }
        http.max_connections = *n.get_ref();
    }
    for (key, slot) in [
        ("header_timeout", &mut http.header_timeout),
        ("body_timeout", &mut http.body_timeout),
        ("shutdown_grace", &mut http.shutdown_grace),
    ] {
        if let Some(d) = fields.parsed(report, key, Duration::parse) {
            if *d.get_ref() == Duration::ZERO {
                report.error(d.span().start, format!("`{key}` must be longer than zero"));
            }
            *slot = d.into_inner();
        }
    }
    let mut listen_at = None;
    if let Some(listen) = fields.parsed(report, "listen", ListenAddress::parse) {
        listen_at = Some(listen.span().start);
        http.listen = listen.into_inner().to_string();
    }
    (http, listen_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn http_limits_are_read_with_their_defaults_and_bad_values_are_placed() {
        let c = Config::parse(
            "tend.toml",
            "[business]\nname = \"X\"\n[http]\nheader_timeout = \"5s\"\nmax_connections = 64\n",
        )
        .unwrap();
        assert_eq!(c.http.header_timeout, Duration::from_secs(5));
        assert_eq!(c.http.max_connections, 64);
        assert_eq!(c.http.body_timeout, Http::default().body_timeout);
        assert_eq!(c.http.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.http.listen, "127.0.0.1:7070");

        let text = "[business]\nname = \"X\"\n[http]\nmax_connections = 0\nshutdown_grace = \"0s\"\nidle = \"1m\"\nlisten = \"7070\"\n";
        let errors: Vec<String> = Config::parse("tend.toml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with("tend.toml:6:1:") && errors[0].contains("idle"),
            "{errors:?}"
        );
        assert_eq!(
            errors[1],
            "tend.toml:4:19: `max_connections` must be at least 1"
        );
        assert_eq!(
            errors[2],
            "tend.toml:5:18: `shutdown_grace` must be longer than zero"
        );
        assert_eq!(
            errors[3],
            "tend.toml:7:10: `listen`: `7070` has no port: write it as host:port, e.g. 127.0.0.1:7070"
        );
    }
}
