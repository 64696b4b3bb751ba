//! The request's `httpRequest` fields as the logs, the error entries and
//! the request span carry them: method, URL with its credentials redacted,
//! user agent and the client's address.
//!
//! Kept apart from the request middleware because these are the parts that
//! read untrusted input (the query string, `User-Agent`,
//! `X-Forwarded-For`), and their rules are the service's protection against
//! it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use http::header::{HeaderName, USER_AGENT};
use http::HeaderMap;

use crate::telemetry::logs::error_reporting::HttpContext;

/// The request's [`HttpContext`] (no status yet); `hops` says which
/// `X-Forwarded-For` entry names the client.
pub(crate) fn http_context(request: &Request, hops: TrustedHops) -> HttpContext {
    let headers = request.headers();
    HttpContext {
        method: request.method().as_str().to_owned(),
        url: redacted_url(request.uri()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        remote_ip: client_ip(request, hops),
        response_status_code: None,
    }
}

/// The methods of OpenTelemetry's HTTP semantic conventions, as static
/// strings: the span attribute, span name and metric label take them without
/// an allocation. Any other method is for the caller to bound (a client can
/// make up as many as it likes).
pub(crate) fn known_method(method: &str) -> Option<&'static str> {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|known| *known == method)
}

/// Words that make a query parameter's name credential-like, found anywhere
/// in its normalized name (see [`is_credential_name`]): `access_token`,
/// `X-Amz-Signature`, `apiKey`, `client_secret`, `pass%77ord`. A name that
/// merely contains one (`monkey`, `zipcode`) is redacted too: a value lost
/// from a log line costs little, a leaked credential a lot.
const CREDENTIAL_WORDS: &[&[u8]] = &[
    b"token",
    b"key",
    b"password",
    b"passwd",
    b"passphrase",
    b"pwd",
    b"secret",
    b"signature",
    b"sig",
    b"auth",
    b"credential",
    b"session",
    b"code",
    b"jwt",
    b"bearer",
    b"cookie",
];

/// What replaces a credential's value.
const REDACTED: &str = "REDACTED";

/// The URL as logged: the query's credential values replaced by `REDACTED`.
/// `httpRequest.requestUrl` goes to Cloud Logging, readable by everyone with
/// log access; a token in a link must not go with it.
///
/// Parameters are separated by `&` or `;` (both are in use, and a server
/// that splits on either would read a token after a `;`); a parameter is a
/// credential when [`is_credential_name`] says so of its name.
pub(crate) fn redacted_url(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        // An HTTP/1.1 request's URL is its path alone: copied, not run
        // through `Display`.
        return match (uri.scheme(), uri.authority()) {
            (None, None) => uri.path().to_owned(),
            _ => uri.to_string(),
        };
    };
    let path = uri.path();
    let mut url = String::with_capacity(path.len() + 1 + query.len());
    url.push_str(path);
    url.push('?');
    for parameter in query.split_inclusive(['&', ';']) {
        let (pair, separator) = match parameter.as_bytes().last() {
            Some(b'&' | b';') => parameter.split_at(parameter.len() - 1),
            _ => (parameter, ""),
        };
        match pair.split_once('=') {
            Some((name, _)) if is_credential_name(name.as_bytes()) => {
                url.push_str(name);
                url.push('=');
                url.push_str(REDACTED);
            }
            _ => url.push_str(pair),
        }
        url.push_str(separator);
    }
    url
}

/// Whether a raw (still percent-encoded) parameter name is credential-like:
/// percent-decoded (`+` is a space, as in forms), ASCII-lowercased, with
/// the word separators `-`, `_`, `.` and space dropped, it contains one of
/// [`CREDENTIAL_WORDS`]. Decoded once, as the application reading the
/// parameter decodes it.
pub(crate) fn is_credential_name(raw: &[u8]) -> bool {
    // Names are short; a long one spills to the heap.
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let mut len = 0;
    for byte in percent_decoded(raw) {
        if matches!(byte, b'-' | b'_' | b'.' | b' ') {
            continue;
        }
        let byte = byte.to_ascii_lowercase();
        if len < stack.len() {
            stack[len] = byte;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&stack);
            }
            heap.push(byte);
        }
        len += 1;
    }
    let name = if heap.is_empty() {
        &stack[..len]
    } else {
        &heap[..]
    };
    CREDENTIAL_WORDS
        .iter()
        .any(|word| name.windows(word.len()).any(|window| window == *word))
}

/// The bytes of `raw` with `%XX` decoded and `+` as a space; a `%` not
/// followed by two hex digits stays as it is.
fn percent_decoded(raw: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut index = 0;
    std::iter::from_fn(move || {
        let byte = *raw.get(index)?;
        index += 1;
        match byte {
            b'+' => Some(b' '),
            b'%' => {
                let high = raw.get(index).and_then(|b| (*b as char).to_digit(16));
                let low = raw.get(index + 1).and_then(|b| (*b as char).to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => {
                        index += 2;
                        Some((high * 16 + low) as u8)
                    }
                    _ => Some(b'%'),
                }
            }
            other => Some(other),
        }
    })
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// How many entries at the right end of `X-Forwarded-For` proxies this
/// service trusts wrote (`FORWARDED_FOR_TRUSTED_HOPS`); the request
/// middleware's state.
///
/// Each proxy appends the address it received the request from and keeps
/// whatever came before, which the client may have written. So only
/// entries counted from the right can be trusted: behind Cloud Run's own
/// front end the last one is the client's (1, the default); behind an
/// external Application Load Balancer, which appends
/// `<client-ip>,<load-balancer-ip>`, the second to last (2). 0 ignores the
/// header and logs the connection's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedHops(pub usize);

impl Default for TrustedHops {
    fn default() -> Self {
        Self(crate::config::DEFAULT_FORWARDED_FOR_TRUSTED_HOPS)
    }
}

/// `httpRequest.remoteIp`: the client's address as the nearest trusted
/// proxy saw it, else the connection's peer.
fn client_ip(request: &Request, hops: TrustedHops) -> Option<String> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    client_address(request.headers(), hops, peer).map(|address| address.to_string())
}

/// The `hops`-th entry from the right of `X-Forwarded-For` (all fields of
/// that name, in order, read as one list); the `peer` when `hops` is 0, the
/// list is shorter (the request did not come through every trusted proxy),
/// or that entry is not an IP address.
pub(crate) fn client_address(
    headers: &HeaderMap,
    hops: TrustedHops,
    peer: Option<IpAddr>,
) -> Option<IpAddr> {
    if hops.0 == 0 {
        return peer;
    }
    forwarded_entry(headers, hops.0)
        .and_then(|entry| entry.trim().parse().ok())
        .or(peer)
}

fn forwarded_entry(headers: &HeaderMap, from_right: usize) -> Option<&str> {
    let mut remaining = from_right;
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for entry in value.to_str().ok()?.rsplit(',') {
            remaining -= 1;
            if remaining == 0 {
                return Some(entry);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn credentials_in_the_query_are_redacted_and_the_rest_kept() {
        let url = |text: &str| redacted_url(&text.parse().unwrap());
        assert_eq!(
            url("/api/books/1?access_token=abc&page=2&X-Amz-Signature=s&apiKey=k&q=key"),
            "/api/books/1?access_token=REDACTED&page=2&X-Amz-Signature=REDACTED&apiKey=REDACTED&q=key"
        );
        assert_eq!(url("/api/books?page=2&flag"), "/api/books?page=2&flag");
        assert_eq!(url("/healthz"), "/healthz");
    }

    #[test]
    fn encoded_and_semicolon_separated_credentials_are_redacted_too() {
        let url = |text: &str| redacted_url(&text.parse().unwrap());
        assert_eq!(url("/a?pass%77ord=hunter2"), "/a?pass%77ord=REDACTED");
        assert_eq!(url("/a?%54OKEN=t1&page=2"), "/a?%54OKEN=REDACTED&page=2");
        assert_eq!(
            url("/a?page=2;access_token=t2;x=1"),
            "/a?page=2;access_token=REDACTED;x=1"
        );
        assert_eq!(
            url("/a?Api-Key=k&pass_word=p"),
            "/a?Api-Key=REDACTED&pass_word=REDACTED"
        );
        assert_eq!(url("/a?client+secret=s"), "/a?client+secret=REDACTED");
        // Decoded once, as the application decodes it: `%2574` is `%74`.
        assert_eq!(url("/a?%2574oken=v"), "/a?%2574oken=v");
        // A stray `%` is just a byte.
        assert_eq!(url("/a?%zz=1&%=2&t%=3"), "/a?%zz=1&%=2&t%=3");
    }

    /// Every way to spell `word` that decodes to it: each byte as itself or
    /// percent-encoded (either hex case), each letter in either case, with
    /// separators the rule ignores in between.
    fn spelled(word: &'static str) -> impl Strategy<Value = String> {
        let bytes: Vec<_> = word
            .bytes()
            .map(|byte| {
                (0..4u8, prop::sample::select(vec!["", "", "-", "_", "."])).prop_map(
                    move |(how, separator)| {
                        let letter = match how {
                            0 => (byte as char).to_string(),
                            1 => (byte as char).to_ascii_uppercase().to_string(),
                            2 => format!("%{byte:02X}"),
                            _ => format!("%{byte:02x}"),
                        };
                        format!("{letter}{separator}")
                    },
                )
            })
            .collect();
        bytes.prop_map(|parts| parts.concat())
    }

    fn credential_word() -> impl Strategy<Value = &'static str> {
        prop::sample::select(
            CREDENTIAL_WORDS
                .iter()
                .map(|word| std::str::from_utf8(word).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 1, 1));

    fn client(values: &[&str], hops: usize) -> Option<IpAddr> {
        client_address(&forwarded(values), TrustedHops(hops), Some(PEER))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn behind_cloud_run_the_client_is_the_entry_its_front_end_appended() {
        assert_eq!(TrustedHops::default(), TrustedHops(1));
        assert_eq!(client(&["203.0.113.9"], 1), ip("203.0.113.9"));
        // What the client wrote itself comes first and is not believed.
        assert_eq!(client(&["1.2.3.4, 203.0.113.9"], 1), ip("203.0.113.9"));
        assert_eq!(client(&["1.2.3.4", "203.0.113.9"], 1), ip("203.0.113.9"));
        assert_eq!(client(&["1.2.3.4,2001:db8::7"], 1), ip("2001:db8::7"));
    }

    #[test]
    fn behind_a_load_balancer_the_client_is_second_to_last() {
        let header = ["1.2.3.4, 203.0.113.9, 34.120.0.1"];
        assert_eq!(client(&header, 2), ip("203.0.113.9"));
        assert_eq!(client(&["203.0.113.9,34.120.0.1"], 2), ip("203.0.113.9"));
    }

    #[test]
    fn missing_short_or_garbage_headers_give_the_peer() {
        assert_eq!(client(&[], 1), Some(PEER));
        assert_eq!(client(&["203.0.113.9"], 2), Some(PEER));
        assert_eq!(client(&["<script>, 999.1.1.1"], 1), Some(PEER));
        assert_eq!(client(&["203.0.113.9, "], 1), Some(PEER));
        assert_eq!(client(&["203.0.113.9"], 0), Some(PEER));
        let mut obs_text = HeaderMap::new();
        obs_text.insert(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\xe9, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            client_address(&obs_text, TrustedHops(1), Some(PEER)),
            Some(PEER)
        );
    }

    proptest! {
        #[test]
        fn a_credential_value_never_reaches_the_log(
            word in credential_word().prop_flat_map(spelled),
            prefix in "[a-zA-Z0-9_]{0,6}",
            suffix in "[a-zA-Z0-9_]{0,6}",
            before in "[a-z]{1,4}=[a-z0-9]{0,4}",
            after in "[a-z]{1,4}=[a-z0-9]{0,4}",
            first in prop::sample::select(vec!['&', ';']),
            second in prop::sample::select(vec!['&', ';']),
        ) {
            let secret = "S3CR3TVALUE";
            let text = format!("/p?{before}{first}{prefix}{word}{suffix}={secret}{second}{after}");
            let logged = redacted_url(&text.parse().unwrap());
            prop_assert!(!logged.contains(secret), "{} -> {}", text, logged);
            prop_assert!(logged.contains(&format!("{prefix}{word}{suffix}=REDACTED")), "{}", logged);
        }

        #[test]
        fn a_url_without_a_query_is_written_as_its_display(
            path in "(/[a-zA-Z0-9%._~-]{0,8}){1,4}",
            form in 0..3usize,
        ) {
            let text = match form {
                0 => path,
                1 => format!("http://example.com:8080{path}"),
                _ => "example.com:443".to_owned(),
            };
            let uri: axum::http::Uri = text.parse().unwrap();
            prop_assert_eq!(redacted_url(&uri), uri.to_string());
        }

        #[test]
        fn other_parameters_are_kept_byte_for_byte(
            query in "([0-9xyz]{1,5}=[a-zA-Z0-9%]{0,8}[&;]){0,5}[0-9xyz]{0,5}",
        ) {
            let text = format!("/p?{query}");
            prop_assert_eq!(redacted_url(&text.parse().unwrap()), text);
        }

        #[test]
        fn whatever_the_client_writes_the_appended_address_wins(
            supplied in "[ -~]{0,40}",
            octets in any::<[u8; 4]>(),
        ) {
            let appended = IpAddr::from(octets);
            let header = format!("{supplied}, {appended}");
            prop_assert_eq!(client(&[&header], 1), Some(appended));
        }

        #[test]
        fn any_name_is_classified_without_panicking(name in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = is_credential_name(&name);
        }
    }
}
