//! Checks of command-line values that clap runs while parsing, so a bad value is a usage
//! error like any other: one `error:` line naming the argument, exit code 2.

use jiff::civil::Date;
use std::path::PathBuf;

/// A `--config` value: an existing file (normally `tend.toml`).
pub fn config_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_file() {
        return Ok(path);
    }
    if path.is_dir() {
        let inside = path.join("tend.toml");
        return Err(format!(
            "{text} is a folder; give the file, e.g. --config {}",
            inside.display()
        ));
    }
    let dir = crate::project::project_dir(&path);
    Err(format!(
        "no such file; create a starter project with `tend init {}`, or point --config at \
         your tend.toml",
        dir.display()
    ))
}

/// `tend check`'s positional folder: one holding a `tend.toml`. Returns that file.
pub fn project_folder(text: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(text);
    if !dir.is_dir() {
        return Err(if dir.is_file() {
            format!("{text} is a file; give its folder, or use --config {text}")
        } else {
            "no such folder".to_owned()
        });
    }
    let config = dir.join("tend.toml");
    if config.is_file() {
        Ok(config)
    } else {
        Err(format!(
            "no tend.toml in it; create a starter project with `tend init {text}`"
        ))
    }
}

/// A file the command reads (a scenario, a CSV, a snapshot): it must exist.
pub fn input_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_file() {
        Ok(path)
    } else if path.is_dir() {
        Err("a folder, not a file".to_owned())
    } else {
        Err("no such file".to_owned())
    }
}

/// A `--listen` value: `host:port`, `[v6]:port`; checked the way `[http] listen` is.
pub fn listen_address(text: &str) -> Result<String, String> {
    tend_core::config::ListenAddress::parse(text)
        .map(|_| text.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// A `--to` database: a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn postgres_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if tend_store_postgres::is_postgres_url(text) {
        Ok(text.to_owned())
    } else {
        Err("must be a PostgreSQL URL: postgres://USER@HOST:PORT/DATABASE".to_owned())
    }
}

/// A non-empty name (`--name`), trimmed.
pub fn name(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(trimmed.to_owned())
    }
}

/// An address a person logs in with.
pub fn email(text: &str) -> Result<String, String> {
    tend_core::Email::parse(text.trim())
        .map(|email| email.as_str().to_lowercase())
        .map_err(|e| e.to_string())
}

/// A day named on the command line, resolved in the business's time zone once the
/// configuration is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// `today`.
    Today,
    /// `tomorrow`.
    Tomorrow,
    /// `YYYY-MM-DD`.
    On(Date),
}

impl Day {
    /// The date this names, given today's.
    pub fn resolve(self, today: Date) -> Option<Date> {
        match self {
            Day::Today => Some(today),
            Day::Tomorrow => today.tomorrow().ok(),
            Day::On(date) => Some(date),
        }
    }
}

/// A `--date` value: `today`, `tomorrow` or `YYYY-MM-DD`.
pub fn day(text: &str) -> Result<Day, String> {
    let trimmed = text.trim();
    match trimmed.to_ascii_lowercase().as_str() {
        "today" => return Ok(Day::Today),
        "tomorrow" => return Ok(Day::Tomorrow),
        _ => {}
    }
    let well_formed = trimmed.len() == 10
        && trimmed.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    match trimmed.parse::<Date>() {
        Ok(date) if well_formed => Ok(Day::On(date)),
        Ok(_) => Err("not a day: use today, tomorrow or YYYY-MM-DD".to_owned()),
        Err(_) if well_formed => Err("no such day in the calendar".to_owned()),
        Err(_) => Err("not a day: use today, tomorrow or YYYY-MM-DD".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_today_tomorrow_or_a_calendar_date() {
        let today = jiff::civil::date(2026, 12, 31);
        assert_eq!(day("today").unwrap().resolve(today), Some(today));
        assert_eq!(
            day("Tomorrow").unwrap().resolve(today),
            Some(jiff::civil::date(2027, 1, 1))
        );
        assert_eq!(
            day("2026-03-09").unwrap(),
            Day::On(jiff::civil::date(2026, 3, 9))
        );
        assert!(day("2026-02-30").unwrap_err().contains("no such day"));
        assert!(day("yesterday").unwrap_err().contains("YYYY-MM-DD"));
        assert!(day("2026-3-9").unwrap_err().contains("YYYY-MM-DD"));
        assert!(day("").unwrap_err().contains("YYYY-MM-DD"));
    }

    #[test]
    fn names_and_addresses_are_checked() {
        assert_eq!(name("  site "), Ok("site".to_owned()));
        assert!(name("  ").is_err());
        assert_eq!(email(" Ann@Example.com "), Ok("ann@example.com".to_owned()));
        assert!(email("ann").is_err());
    }
}
