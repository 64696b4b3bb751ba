//! The JSON pieces of a log line, written straight into a byte buffer: no
//! `serde_json::Value`, no `String` per key or value.
//!
//! Each piece writes exactly what the line format has always had (the format
//! `tracing-stackdriver` 0.10 defined and Cloud Logging parses): strings
//! escaped as `serde_json` escapes them, keys camel-cased as the `Inflector`
//! crate does, the time as `time`'s RFC 3339. The tests hold each piece to
//! the crate it replaces.
//!
//! Strings from outside (a user agent, a URL, an error's message) can be
//! of any length, and Cloud Logging drops an entry over 256 KiB whole: the
//! `_capped` writers keep a string to a number of bytes, escapes counted,
//! cutting it at a character and marking the cut with
//! `…[truncated N bytes]` (N counted in the original string).

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What `serde_json` writes for each byte: 0 for the byte itself, else the
/// escape character (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `value` escaped, without the surrounding quotes.
pub fn push_escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..index]);
        match escape {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ]),
            other => out.extend_from_slice(&[b'\\', other]),
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `value` as a JSON string.
pub fn push_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    push_escaped(out, value);
    out.push(b'"');
}

/// The longest truncation marker: `…` (3 bytes), `[truncated `, 20 digits,
/// ` bytes]`.
const MARKER_MAX: usize = 3 + 11 + 20 + 7;

/// Appends `value` as a JSON string whose content (between the quotes) is
/// at most `max` bytes, escapes included; cut and marked when longer. A
/// `max` below the marker's length keeps just the marker.
pub fn push_string_capped(out: &mut Vec<u8>, value: &str, max: usize) {
    out.push(b'"');
    let mut capped = Capped::new(out, max);
    capped.push(value);
    capped.finish();
    out.push(b'"');
}

/// What `value`'s `Debug` writes, as a JSON string capped as
/// [`push_string_capped`] caps, without formatting it into a `String`
/// first: a huge `Debug` is formatted to the end but not kept.
pub fn push_debug_string_capped(out: &mut Vec<u8>, value: &dyn fmt::Debug, max: usize) {
    out.push(b'"');
    let mut capped = Capped::new(out, max);
    let _ = fmt::write(&mut capped, format_args!("{value:?}"));
    capped.finish();
    out.push(b'"');
}

/// Escapes text into `out` until the escaped content reaches `max` bytes,
/// then only counts what it leaves out.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    max: usize,
    /// Bytes of the original text not written.
    dropped: usize,
}

impl<'a> Capped<'a> {
    fn new(out: &'a mut Vec<u8>, max: usize) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            max,
            dropped: 0,
        }
    }

    fn push(&mut self, text: &str) {
        if self.dropped > 0 {
            self.dropped += text.len();
            return;
        }
        let room = self.max - (self.out.len() - self.start);
        // No character escapes to more than 6 bytes: most text needs no count.
        if text.len().saturating_mul(6) <= room {
            push_escaped(self.out, text);
            return;
        }
        let mut used = 0;
        for (index, character) in text.char_indices() {
            let width = match character.len_utf8() {
                1 => escaped_width(character as u8),
                wide => wide,
            };
            if used + width > room {
                push_escaped(self.out, &text[..index]);
                self.dropped = text.len() - index;
                return;
            }
            used += width;
        }
        push_escaped(self.out, text);
    }

    /// When something was left out: takes whole characters (or escapes) off
    /// the end until the marker fits within `max`, and writes it.
    fn finish(self) {
        if self.dropped == 0 {
            return;
        }
        let written = &self.out[self.start..];
        let keep_at_most = self.max.saturating_sub(MARKER_MAX);
        let mut cut = 0;
        while cut < written.len() {
            let next = cut + token_len(written, cut);
            if next > keep_at_most {
                break;
            }
            cut = next;
        }
        let mut dropped = self.dropped;
        let mut at = cut;
        while at < written.len() {
            let len = token_len(written, at);
            // An escape stands for one byte of the original.
            dropped += if written[at] == b'\\' { 1 } else { len };
            at += len;
        }
        self.out.truncate(self.start + cut);
        self.out.extend_from_slice("…[truncated ".as_bytes());
        push_u64(self.out, dropped as u64);
        self.out.extend_from_slice(b" bytes]");
    }
}

impl fmt::Write for Capped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push(text);
        Ok(())
    }
}

/// How many bytes `byte` (ASCII) takes escaped.
fn escaped_width(byte: u8) -> usize {
    match ESCAPE[byte as usize] {
        0 => 1,
        b'u' => 6,
        _ => 2,
    }
}

/// The length of the escape or UTF-8 character at `at` of escaped text.
fn token_len(escaped: &[u8], at: usize) -> usize {
    match escaped[at] {
        b'\\' if escaped.get(at + 1) == Some(&b'u') => 6,
        b'\\' => 2,
        lead if lead < 0x80 => 1,
        lead if lead >= 0xf0 => 4,
        lead if lead >= 0xe0 => 3,
        _ => 2,
    }
}

pub fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

pub fn push_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `value` as `digits` lowercase hex digits, zero-padded.
pub fn push_hex(out: &mut Vec<u8>, value: u128, digits: u32) {
    for shift in (0..digits).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Camel-cased keys by their name's address and length.
type CamelCased = FxHashMap<(usize, usize), Box<[u8]>>;

/// [`push_camel_case`] of a field name, worked out once per name and
/// thread (it was 3 % of the service's CPU at the benchmark's load, for the
/// same dozen names on every line). Field names are the callsites'
/// `&'static str`s, so there are only as many as the code has, and their
/// address and length name them.
pub fn push_camel_case_cached(out: &mut Vec<u8>, key: &'static str) {
    thread_local! {
        static CAMEL_CASED: RefCell<CamelCased> = RefCell::default();
    }
    CAMEL_CASED.with(|cache| match cache.try_borrow_mut() {
        Ok(mut cache) => {
            let cased = cache
                .entry((key.as_ptr() as usize, key.len()))
                .or_insert_with(|| {
                    let mut cased = Vec::with_capacity(key.len());
                    push_camel_case(&mut cased, key);
                    cased.into_boxed_slice()
                });
            out.extend_from_slice(cased);
        }
        Err(_) => push_camel_case(out, key),
    });
}

/// Appends `key` camel-cased, as `Inflector`'s `to_camel_case` does it
/// (`http_request` -> `httpRequest`, `latency_ms` -> `latencyMs`, `a1b` ->
/// `a1B`): the same state machine, writing bytes instead of a `String`.
pub fn push_camel_case(out: &mut Vec<u8>, key: &str) {
    let key = key.trim_end_matches(|c: char| !c.is_alphanumeric());
    let mut new_word = false;
    let mut last_char = ' ';
    let mut found_real_char = false;
    let mut utf8 = [0u8; 4];
    let mut push = |out: &mut Vec<u8>, c: char| {
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    };
    for character in key.chars() {
        if !character.is_alphanumeric() && found_real_char {
            new_word = true;
        } else if !found_real_char && !character.is_alphanumeric() {
            continue;
        } else if character.is_numeric() {
            found_real_char = true;
            new_word = true;
            push(out, character);
        } else if new_word
            || (last_char.is_lowercase() && character.is_uppercase() && last_char != ' ')
        {
            found_real_char = true;
            new_word = false;
            push(out, character.to_ascii_uppercase());
        } else {
            found_real_char = true;
            last_char = character;
            push(out, character.to_ascii_lowercase());
        }
    }
}

/// Appends the current time as RFC 3339 in UTC, with as many fraction
/// digits as the nanoseconds need (none when zero), e.g.
/// `2026-11-24T23:10:16.46250919Z`: what `time`'s `Rfc3339` writes.
pub fn push_now(out: &mut Vec<u8>) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    push_timestamp(out, since_epoch.as_secs(), since_epoch.subsec_nanos());
}

pub fn push_timestamp(out: &mut Vec<u8>, seconds: u64, nanos: u32) {
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, value: u64| {
        out.push(b'0' + (value / 10) as u8);
        out.push(b'0' + (value % 10) as u8);
    };
    push_u64_padded(out, year as u64, 4);
    out.push(b'-');
    two(out, u64::from(month));
    out.push(b'-');
    two(out, u64::from(day));
    out.push(b'T');
    two(out, second_of_day / 3600);
    out.push(b':');
    two(out, second_of_day / 60 % 60);
    out.push(b':');
    two(out, second_of_day % 60);
    if nanos != 0 {
        out.push(b'.');
        let mut digits = 9;
        let mut value = nanos;
        while value % 10 == 0 {
            value /= 10;
            digits -= 1;
        }
        push_u64_padded(out, u64::from(value), digits);
    }
    out.push(b'Z');
}

fn push_u64_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value);
    for _ in text.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(text.as_bytes());
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// What `time` writes for that instant.
    fn rfc3339(seconds: u64, nanos: u32) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(seconds) * 1_000_000_000 + i128::from(nanos),
        )
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
    }

    #[test]
    fn camel_case_of_the_keys_the_service_logs() {
        for (key, camel) in [
            ("latency_ms", "latencyMs"),
            ("error_type", "errorType"),
            ("request_method", "requestMethod"),
            ("message", "message"),
            ("log.target", "logTarget"),
            ("a1b", "a1B"),
            ("_x_", "x"),
        ] {
            assert_eq!(text(|out| push_camel_case(out, key)), camel, "{key}");
            // Cached: the first call works it out, the second reads it back.
            assert_eq!(text(|out| push_camel_case_cached(out, key)), camel);
            assert_eq!(text(|out| push_camel_case_cached(out, key)), camel);
        }
    }

    #[test]
    fn control_characters_are_escaped_as_serde_json_does() {
        let value = "a\"b\\c\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f}é/";
        assert_eq!(
            text(|out| push_string(out, value)),
            serde_json::to_string(value).unwrap()
        );
    }

    #[test]
    fn timestamps_trim_the_fraction_as_time_does() {
        for (seconds, nanos) in [
            (0, 0),
            (1_795_000_000, 462_509_190),
            (1_795_000_000, 500_000_000),
        ] {
            let expected = rfc3339(seconds, nanos);
            assert_eq!(text(|out| push_timestamp(out, seconds, nanos)), expected);
        }
    }

    /// The string a capped writer wrote, parsed back from its JSON.
    fn capped(value: &str, max: usize) -> String {
        let json = text(|out| push_string_capped(out, value, max));
        assert!(json.len() <= max + 2, "{} > {max} + 2", json.len());
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn a_string_within_the_cap_is_written_whole() {
        assert_eq!(capped("abc", 3), "abc");
        assert_eq!(capped("a\"\u{1}", 9), "a\"\u{1}");
        assert_eq!(
            capped(&"x".repeat(16 * 1024), 16 * 1024),
            "x".repeat(16 * 1024)
        );
    }

    #[test]
    fn a_long_string_is_cut_at_a_character_and_says_how_much_is_missing() {
        let value = format!("Mozilla/{}", "é".repeat(1024 * 1024));
        let logged = capped(&value, 100);
        let kept = logged.split('…').next().unwrap();
        assert!(value.starts_with(kept), "{logged}");
        let missing = value.len() - kept.len();
        assert!(
            logged.ends_with(&format!("…[truncated {missing} bytes]")),
            "{logged}"
        );
        // Escapes count at their escaped width and are never split.
        let controls = "\u{1}".repeat(1000);
        let logged = capped(&controls, 100);
        assert!(logged.starts_with(&"\u{1}".repeat(9)), "{logged:?}");
        assert!(logged.ends_with("…[truncated 991 bytes]"), "{logged:?}");
    }

    #[test]
    fn a_huge_debug_value_is_capped_too() {
        let value = vec![7u8; 1024 * 1024];
        let json = text(|out| push_debug_string_capped(out, &value, 1000));
        assert!(json.len() <= 1002);
        let logged: String = serde_json::from_str(&json).unwrap();
        assert!(logged.starts_with("[7, 7, "), "{logged}");
        let full = format!("{value:?}");
        let kept = logged.split('…').next().unwrap();
        assert!(logged.ends_with(&format!("…[truncated {} bytes]", full.len() - kept.len())));
    }

    proptest! {
        #[test]
        fn any_string_escapes_as_serde_json_does(value in any::<String>()) {
            prop_assert_eq!(text(|out| push_string(out, &value)), serde_json::to_string(&value).unwrap());
        }

        #[test]
        fn any_capped_string_is_valid_json_within_the_cap_and_a_prefix_of_the_original(
            value in any::<String>(),
            max in 0usize..200,
        ) {
            let json = text(|out| push_string_capped(out, &value, max.max(MARKER_MAX)));
            prop_assert!(json.len() <= max.max(MARKER_MAX) + 2);
            let logged: String = serde_json::from_str(&json).unwrap();
            match logged.split_once("…[truncated ") {
                Some((kept, _)) if logged != value => prop_assert!(value.starts_with(kept)),
                _ => prop_assert_eq!(&logged, &value),
            }
        }

        #[test]
        fn any_key_camel_cases_as_inflector_does(key in "[a-zA-Z0-9_. -]{0,16}|\\PC{0,8}") {
            prop_assert_eq!(text(|out| push_camel_case(out, &key)), inflector::cases::camelcase::to_camel_case(&key));
        }

        #[test]
        fn any_time_formats_as_time_does(seconds in 0u64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let expected = rfc3339(seconds, nanos);
            prop_assert_eq!(text(|out| push_timestamp(out, seconds, nanos)), expected);
        }
    }
}
