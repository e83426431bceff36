//! Where `tend serve` listens (`[http] listen`, or its `--listen` flag) against where
//! contacts reach it (`public_url`, which every unsubscribe link is built on): the
//! warnings `tend check` prints with their place and `tend serve` logs as it starts, so
//! both say the same thing about the same setup.

use crate::check::{Fields, Report};
use std::fmt;

/// Where `tend serve` listens when neither `[http] listen` nor `--listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// A `host:port` (or `[v6]:port`) the server binds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// A name or an IP address, without brackets.
    pub host: String,
    /// The port; 0 lets the system pick one.
    pub port: u16,
}

/// Why a listen address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddressError {
    /// No `:port` at the end.
    #[error("`{0}` has no port: write it as host:port, e.g. 127.0.0.1:7070")]
    NoPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("`{0}` is not a port (0 to 65535)")]
    BadPort(String),
    /// The host part is empty, holds spaces or slashes, or is an IPv6 address
    /// without brackets.
    #[error("`{0}` is not a host: write a name or an IP address, IPv6 in brackets ([::1]:7070)")]
    BadHost(String),
}

impl ListenAddress {
    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<ListenAddress, ListenAddressError> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| ListenAddressError::BadHost(text.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| ListenAddressError::NoPort(text.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(ListenAddressError::BadHost(host.to_owned()));
            }
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| ListenAddressError::NoPort(text.to_owned()))?;
            let fine = !host.is_empty()
                && !host
                    .chars()
                    .any(|c| c == ':' || c == '/' || c == '@' || c.is_whitespace());
            if !fine {
                return Err(ListenAddressError::BadHost(host.to_owned()));
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| ListenAddressError::BadPort(port.to_owned()))?;
        Ok(ListenAddress {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether this is every interface (`0.0.0.0`, `[::]`).
    fn is_wildcard(&self) -> bool {
        self.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Whether `host` is this machine seen only from itself.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Something about `public_url` a sender should fix before mailing real people; not an
/// error, since both are normal while trying Tend out on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicUrlWarning {
    /// An `http://` address: RFC 8058 one-click unsubscribe needs https, so
    /// `List-Unsubscribe-Post` is left out, and links travel unencrypted.
    NotHttps {
        /// `public_url`.
        url: String,
    },
    /// `public_url` names the machine `tend serve` listens on, but a port where it
    /// does not, or loopback while it listens on another interface only: unsubscribe
    /// links lead nowhere.
    NotWhereServerListens {
        /// `public_url`.
        url: String,
        /// Where the server listens.
        listen: String,
    },
}

impl PublicUrlWarning {
    /// Which key the warning is about, for pointing at it: `public_url` or `listen`.
    pub fn key(&self) -> &'static str {
        match self {
            PublicUrlWarning::NotHttps { .. } => "public_url",
            PublicUrlWarning::NotWhereServerListens { .. } => "listen",
        }
    }
}

impl fmt::Display for PublicUrlWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicUrlWarning::NotHttps { url } => write!(
                f,
                "public_url {url} is not https, so emails offer no one-click \
                 unsubscribe (List-Unsubscribe-Post, RFC 8058, needs an https link) and \
                 unsubscribe links travel unencrypted; put a TLS proxy in front of \
                 `tend serve` and set public_url to its https address"
            ),
            PublicUrlWarning::NotWhereServerListens { url, listen } => write!(
                f,
                "unsubscribe links point at public_url {url}, but `tend serve` \
                 listens on {listen}, so nothing answers them there; make public_url the \
                 address contacts reach this server at, or listen where it points"
            ),
        }
    }
}

/// The warnings about `public_url` when the server listens on `listen`. A listen
/// address that does not parse gives no mismatch warning (it is an error elsewhere).
pub fn public_url_warnings(public_url: &str, listen: &str) -> Vec<PublicUrlWarning> {
    let mut warnings = Vec::new();
    let url = public_url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !scheme.eq_ignore_ascii_case("https") {
        warnings.push(PublicUrlWarning::NotHttps {
            url: url.to_owned(),
        });
    }
    let Ok(listen) = ListenAddress::parse(listen) else {
        return warnings;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((host, port)) = host_and_port(authority, scheme) else {
        return warnings;
    };
    let listen_loopback = is_loopback(&listen.host);
    let elsewhere = if is_loopback(&host) {
        // Links to this machine reach the server only on a loopback or every interface,
        // and only on the port it listens on.
        !(listen_loopback || listen.is_wildcard()) || port != listen.port
    } else {
        // Another name may well reach it through a proxy or DNS; only the very address
        // it listens on, on another port, certainly does not.
        host == listen.host && port != listen.port
    };
    // Port 0 is "any free port", as tests ask; nothing can be said about it.
    if elsewhere && listen.port != 0 {
        warnings.push(PublicUrlWarning::NotWhereServerListens {
            url: url.to_owned(),
            listen: listen.to_string(),
        });
    }
    warnings
}

/// Records [`public_url_warnings`] for a valid config: the https one at `public_url`,
/// the mismatch at `[http] listen` when it is written, else at `public_url`.
pub(super) fn warn_about_public_url(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    listen_at: Option<usize>,
    config: &super::Config,
) {
    let public_url_at = top.get("public_url").map(|item| item.span().start);
    for warning in public_url_warnings(&config.public_url, &config.http.listen) {
        let at = match warning.key() {
            "listen" => listen_at.or(public_url_at),
            _ => public_url_at,
        };
        report.warn(at.unwrap_or(0), &warning);
    }
}

/// The lower-cased host and the port (explicit, else the scheme's) of an authority.
fn host_and_port(authority: &str, scheme: &str) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None if scheme.eq_ignore_ascii_case("https") => 443,
        None => 80,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_host_and_port() {
        let at = ListenAddress::parse("127.0.0.1:7070").unwrap();
        assert_eq!((at.host.as_str(), at.port), ("127.0.0.1", 7070));
        let at = ListenAddress::parse("[::1]:8080").unwrap();
        assert_eq!((at.host.as_str(), at.port), ("::1", 8080));
        assert_eq!(at.to_string(), "[::1]:8080");
        assert_eq!(
            ListenAddress::parse("localhost:0").unwrap().to_string(),
            "localhost:0"
        );
        assert!(matches!(
            ListenAddress::parse("127.0.0.1"),
            Err(ListenAddressError::NoPort(_))
        ));
        assert!(matches!(
            ListenAddress::parse("127.0.0.1:99999"),
            Err(ListenAddressError::BadPort(_))
        ));
        assert!(matches!(
            ListenAddress::parse(":7070"),
            Err(ListenAddressError::BadHost(_))
        ));
        assert!(matches!(
            ListenAddress::parse("::1:7070"),
            Err(ListenAddressError::BadHost(_))
        ));
    }

    fn kinds(url: &str, listen: &str) -> Vec<&'static str> {
        public_url_warnings(url, listen)
            .iter()
            .map(|w| match w {
                PublicUrlWarning::NotHttps { .. } => "not https",
                PublicUrlWarning::NotWhereServerListens { .. } => "elsewhere",
            })
            .collect()
    }

    #[test]
    fn http_public_urls_are_warned_about() {
        assert_eq!(
            kinds("http://127.0.0.1:7070", "127.0.0.1:7070"),
            ["not https"]
        );
        assert_eq!(
            kinds("http://tend.example.com", "127.0.0.1:7070"),
            ["not https"]
        );
        assert!(kinds("https://tend.example.com", "127.0.0.1:7070").is_empty());
        assert!(kinds("HTTPS://tend.example.com/", "0.0.0.0:7070").is_empty());
    }

    #[test]
    fn a_public_url_on_this_machine_must_match_where_the_server_listens() {
        // --listen moved the server to another port: the links lead nowhere.
        assert_eq!(
            kinds("http://127.0.0.1:7070", "127.0.0.1:8080"),
            ["not https", "elsewhere"]
        );
        assert_eq!(
            kinds("https://localhost", "[::1]:7070"),
            ["elsewhere"],
            "https on 443 is not 7070"
        );
        assert_eq!(
            kinds("http://localhost:7070", "10.0.0.5:7070"),
            ["not https", "elsewhere"]
        );
        assert_eq!(
            kinds("http://localhost:7070", "0.0.0.0:7070"),
            ["not https"]
        );
        assert_eq!(kinds("http://127.0.0.1:7070", "[::1]:7070"), ["not https"]);
    }

    #[test]
    fn another_host_may_be_a_proxy_but_the_listen_address_itself_must_match() {
        assert!(kinds("https://tend.example.com", "10.0.0.5:7070").is_empty());
        assert!(kinds("https://tend.example.com", "0.0.0.0:7070").is_empty());
        assert_eq!(
            kinds("https://10.0.0.5:8443", "10.0.0.5:7070"),
            ["elsewhere"]
        );
        assert!(kinds("https://10.0.0.5:7070", "10.0.0.5:7070").is_empty());
    }

    #[test]
    fn port_zero_and_unparsable_addresses_say_nothing_about_the_match() {
        assert_eq!(kinds("http://127.0.0.1:7070", "127.0.0.1:0"), ["not https"]);
        assert_eq!(kinds("http://127.0.0.1:7070", "nonsense"), ["not https"]);
    }

    #[test]
    fn messages_name_the_rfc_and_both_addresses() {
        let text: Vec<String> = public_url_warnings("http://127.0.0.1:7070", "127.0.0.1:8080")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(text[0].contains("RFC 8058"), "{text:?}");
        assert!(text[0].contains("List-Unsubscribe-Post"), "{text:?}");
        assert!(
            text[1].contains("http://127.0.0.1:7070") && text[1].contains("127.0.0.1:8080"),
            "{text:?}"
        );
    }

    fn warnings_of(config: &str) -> Vec<String> {
        let sources = crate::check::ProjectSources {
            config: crate::check::SourceFile::new("tend.toml", config),
            processes: Vec::new(),
            templates: Vec::new(),
        };
        crate::check::check_project(&sources)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn check_places_each_warning_at_the_key_it_is_about() {
        let warnings = warnings_of(
            "public_url = \"http://127.0.0.1:7070\"\n[business]\nname = \"X\"\n\
             [http]\nlisten = \"127.0.0.1:8080\"\n",
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "tend.toml:1:14: warning: public_url http://127.0.0.1:7070 is not https"
            ),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("tend.toml:5:10: warning: unsubscribe links point at"),
            "{warnings:?}"
        );
        // Without `listen` the mismatch (default 127.0.0.1:7070) points at public_url.
        let warnings =
            warnings_of("public_url = \"https://localhost:8443\"\n[business]\nname = \"X\"\n");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("tend.toml:1:14: warning: unsubscribe links"),
            "{warnings:?}"
        );
        // Without either, the default http://127.0.0.1:7070 is warned about at 1:1.
        let warnings = warnings_of("[business]\nname = \"X\"\n");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("tend.toml:1:1: warning: public_url"),
            "{warnings:?}"
        );
        // An https address behind a proxy is fine.
        assert!(
            warnings_of(
                "public_url = \"https://tend.example.com\"\n[business]\nname = \"X\"\n\
                 [http]\nlisten = \"0.0.0.0:7070\"\n"
            )
            .is_empty()
        );
    }
}
