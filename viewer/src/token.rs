//! The access token: drawn from the kernel's random source, carried by the printed URL
//! (`?token=`) and then by a cookie the page's first response sets, compared in constant
//! time.

use axum::http::{header, HeaderMap, Uri};

/// A viewer's token.
#[derive(Clone)]
pub(crate) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed by accident (a log line, a panic message).
        f.write_str("Token(..)")
    }
}

impl Token {
    /// 128 random bits as 32 hex digits.
    pub(crate) fn random() -> std::io::Result<Token> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            filled += rustix::rand::getrandom(
                &mut bytes[filled..],
                rustix::rand::GetRandomFlags::empty(),
            )?;
        }
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A caller's token (already checked by [`ViewOptions`](crate::ViewOptions)).
    pub(crate) fn given(t: &str) -> Token {
        Token(t.to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, in time independent of where they differ.
    fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }

    /// Whether a request carries the token, in its query (`token=`) or its cookie `cookie`.
    pub(crate) fn admits(&self, uri: &Uri, headers: &HeaderMap, cookie: &str) -> bool {
        let in_query = uri.query().is_some_and(|q| {
            q.split('&')
                .filter_map(|kv| kv.strip_prefix("token="))
                .any(|t| self.matches(t))
        });
        let in_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().strip_prefix(cookie)?.strip_prefix('='))
            .any(|t| self.matches(t));
        in_query || in_cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_is_admitted_from_the_query_or_the_cookie_and_nothing_else() {
        let t = Token::given("0123456789abcdef0123456789abcdef");
        let none = HeaderMap::new();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(t.admits(&uri("/?token=0123456789abcdef0123456789abcdef"), &none, "c"));
        assert!(t.admits(
            &uri("/?a=1&token=0123456789abcdef0123456789abcdef"),
            &none,
            "c"
        ));
        assert!(!t.admits(&uri("/"), &none, "c"));
        assert!(!t.admits(&uri("/?token=0123456789abcdef0123456789abcde"), &none, "c"));
        assert!(!t.admits(&uri("/?token="), &none, "c"));
        let mut cookies = HeaderMap::new();
        cookies.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; c=0123456789abcdef0123456789abcdef"),
        );
        assert!(t.admits(&uri("/ws"), &cookies, "c"));
        assert!(!t.admits(&uri("/ws"), &cookies, "other"));
    }

    #[test]
    fn random_tokens_differ_and_are_32_hex_digits() {
        let (a, b) = (Token::random().unwrap(), Token::random().unwrap());
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(format!("{a:?}"), "Token(..)");
    }
}
