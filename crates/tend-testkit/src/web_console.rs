//! A person using the console of an in-process [`Server`] over plain HTTP: logged in
//! with a session cookie, reading pages (checked for the console's page policy and
//! weight) and posting forms with the CSRF token of the last page read.

use crate::web::Server;
use reqwest::{Response, StatusCode};
use tend_store::Role;

/// The password every [`ConsoleUser`] logs in with.
pub const PASSWORD: &str = "correct horse battery";

/// Adds a person who may log in with [`PASSWORD`].
pub async fn add_user(server: &Server, email: &str, role: Role) {
    let hash = tend_web::console::hash_password(PASSWORD).unwrap();
    server
        .engine
        .store()
        .upsert_user(email, role, &hash, jiff::Timestamp::now())
        .await
        .unwrap();
}

/// A logged-in browser: its session cookie and the CSRF token of the last page read.
pub struct ConsoleUser<'a> {
    server: &'a Server,
    cookie: String,
    csrf: String,
}

fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

fn csrf_in(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + 19;
    page.get(at..at + 64).map(str::to_owned)
}

/// Posts the login form as a browser does: fetches it for its CSRF token and cookie,
/// then sends `email` and `password` with them. The answer as it comes.
pub async fn login_attempt(server: &Server, email: &str, password: &str) -> Response {
    login_attempt_at(&server.client, &server.base, email, password).await
}

/// Fetches the login form of the server at `base` (`http://127.0.0.1:PORT`, this
/// server or another node) and posts it with `email` and `password`; returns the answer.
pub async fn login_attempt_at(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> Response {
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let login_cookie = set_cookie(&form, "tend_login_csrf").expect("the login form's cookie");
    let token = csrf_in(&form.text().await.unwrap()).expect("the login form's csrf");
    client
        .post(format!("{base}/login"))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", token.as_str()),
                ("email", email),
                ("password", password),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
}

/// Whether `response` sets the cookie `name`.
pub fn sets_cookie(response: &Response, name: &str) -> bool {
    set_cookie(response, name).is_some()
}

impl<'a> ConsoleUser<'a> {
    /// Logs `email` in through the login form with [`PASSWORD`]; panics unless it
    /// lands on Today with an `HttpOnly`, `SameSite=Strict` session cookie that
    /// expires.
    pub async fn login(server: &'a Server, email: &str) -> ConsoleUser<'a> {
        let response = login_attempt(server, email, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "logging in {email}"
        );
        assert_eq!(response.headers()["location"], "/today");
        let header = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("tend_session="))
            .expect("a session cookie")
            .to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
            assert!(header.contains(attribute), "{header}");
        }
        let cookie = set_cookie(&response, "tend_session").expect("a session cookie");
        let mut user = ConsoleUser {
            server,
            cookie,
            csrf: String::new(),
        };
        user.page("/today").await;
        user
    }

    /// The session cookie as a `Cookie` header sends it (`tend_session=…`), for
    /// requests made by hand.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// `GET path` with the session, as it answers.
    pub async fn get(&self, path: &str) -> Response {
        self.server
            .client
            .get(format!("{}{path}", self.server.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page that must answer 200 under the console's policy (no script, nothing
    /// from another origin, under 100 KB); remembers its CSRF token.
    pub async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        let status = response.status();
        if status != StatusCode::OK {
            panic!("GET {path}: {status}: {}", response.text().await.unwrap());
        }
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        let body = response.text().await.unwrap();
        assert!(body.len() < 100_000, "{path} weighs {} bytes", body.len());
        assert!(
            !body.contains("href=\"http") && !body.contains("src="),
            "{path} loads from another origin"
        );
        if let Some(csrf) = csrf_in(&body) {
            self.csrf = csrf;
        }
        body
    }

    /// Posts a form with the last page's CSRF token and `fields`.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.server
            .client
            .post(format!("{}{path}", self.server.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// Posts `file` as a browser posts a file form: `multipart/form-data` with the last
    /// page's CSRF token first (unless `with_csrf` is false), then the file as `file`.
    pub async fn upload(
        &self,
        path: &str,
        file_name: &str,
        file: &[u8],
        with_csrf: bool,
    ) -> Response {
        const BOUNDARY: &str = "----TendTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        if with_csrf {
            let csrf = &self.csrf;
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        self.server
            .client
            .post(format!("{}{path}", self.server.base))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }
}
