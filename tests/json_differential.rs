//! The JSON decoder on sonic-rs against the serde_json decoder it replaced, on
//! every DLQ test record and on 1,000,000 seeded random inputs (mutated demo
//! transactions, random objects built from the schema's fields with every JSON
//! number, string and escape form, token soups, raw bytes):
//! - `Decoder::decode` (sonic-rs, serde_json deciding what sonic-rs rejects) gives
//!   the serde_json decoder's verdict on every input: the same record bit for bit,
//!   or the same reason and detail; and reports the same unknown field names;
//! - sonic-rs alone accepts exactly what serde_json accepts, with the same record,
//!   except texts of more than `MAX_OPENERS` arrays and objects (not given to
//!   sonic-rs, whose parser recurses without a depth limit), lone surrogates and
//!   non-finite numbers in values serde_json skips without checking them (all of
//!   which sonic-rs rejects), and a negative zero, which it reads as +0 where
//!   serde_json reads -0.0 (`decode` leaves each of these to serde_json).

#[path = "support/dlq_cases.rs"]
mod dlq_cases;

use rand::{Rng, SeedableRng};
use vigil::decode::json::{Parser, MAX_OPENERS};
use vigil::decode::{Decoded, Decoder};
use vigil::spec::{Expectation, FieldType, JobBuilder};
use vigil::types::Rejection;

/// Bit-for-bit equality of two decoded records (NaN marks an absent number).
fn same(a: &Decoded, b: &Decoded) -> bool {
    let bits = |d: &Decoded| d.numeric.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    a.key == b.key && a.event_id == b.event_id && a.time_ms == b.time_ms && bits(a) == bits(b) && a.strings == b.strings
}

fn same_verdict(a: &Result<Decoded, Rejection>, b: &Result<Decoded, Rejection>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => same(a, b),
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Whether the text holds a negative number equal to zero outside strings.
fn negative_zero(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let (mut in_str, mut esc) = (false, false);
    for (i, c) in text.char_indices() {
        match (in_str, esc, c) {
            (true, true, _) => esc = false,
            (true, false, '\\') => esc = true,
            (true, false, '"') => in_str = false,
            (true, ..) => {}
            (false, _, '"') => in_str = true,
            (false, _, '-') => {
                let end = text[i + 1..].find(|c: char| !matches!(c, '0'..='9' | '.' | 'e' | 'E' | '+' | '-')).map_or(text.len(), |n| i + 1 + n);
                if text[i..end].parse::<f64>().is_ok_and(|v| v == 0.0) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Arrays and objects the text opens, strings included: more than
/// `MAX_OPENERS` and sonic-rs is not asked.
fn openers(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count()
}

#[derive(Default)]
struct Tally {
    inputs: u64,
    accepted: u64,
    /// sonic-rs alone rejected, serde_json accepted: more arrays and objects than
    /// sonic-rs is given
    deep: u64,
    /// sonic-rs alone read a negative zero as +0, serde_json as -0.0
    negative_zero: u64,
    /// sonic-rs alone rejected a lone surrogate or a non-finite number in a
    /// value serde_json skips without checking them
    skipped_checked: u64,
}

/// Decodes `bytes` three ways and holds them to the contract in the module doc.
fn check(decoder: &Decoder, bytes: &[u8], tally: &mut Tally) {
    let mut names_ref = Vec::new();
    let reference = decoder.check_size(Some(bytes)).and_then(|b| decoder.decode_json_with(Parser::SerdeJson, b, &mut |n| names_ref.push(n.to_owned())));
    let mut names = Vec::new();
    let got = decoder.decode(Some(bytes), &mut |n| names.push(n.to_owned()));
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]);
    assert!(same_verdict(&got, &reference), "{text}\nsonic-rs path: {got:?}\nserde_json:    {reference:?}");
    assert_eq!(names, names_ref, "unknown names of {text}");
    let alone = decoder.check_size(Some(bytes)).and_then(|b| decoder.decode_json_with(Parser::Sonic, b, &mut |_| {}));
    match (&alone, &reference) {
        (Ok(_), _) if !same_verdict(&alone, &reference) => {
            // the one value the two read apart, left to serde_json by `decode`
            assert!(negative_zero(bytes), "sonic-rs accepts {text}: {alone:?}\nserde_json: {reference:?}");
            tally.negative_zero += 1;
        }
        (Ok(_), _) => {}
        (Err(_), Ok(_)) => {
            let detail = &alone.as_ref().unwrap_err().detail;
            if openers(bytes) > MAX_OPENERS {
                tally.deep += 1;
            } else if ["Invalid surrogate Unicode code point", "Invalid unicode code point", "Float number must be finite"]
                .iter()
                .any(|m| detail.starts_with(m))
            {
                tally.skipped_checked += 1;
            } else {
                panic!("sonic-rs alone rejects {text}: {alone:?}\nserde_json: {reference:?}");
            }
        }
        (Err(_), Err(_)) => {}
    }
    tally.inputs += 1;
    tally.accepted += reference.is_ok() as u64;
}

#[test]
fn every_dlq_record_gets_the_serde_json_verdict() {
    let job = dlq_cases::job();
    let decoder = Decoder::new(&job);
    let mut tally = Tally::default();
    for (_, payload) in dlq_cases::cases() {
        check(&decoder, payload.as_deref().unwrap_or_default(), &mut tally);
    }
    assert!(tally.inputs >= 40 && tally.accepted >= 10, "{} inputs, {} accepted", tally.inputs, tally.accepted);
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "-0.0",
    "1e5",
    "1E+5",
    "1e-400",
    "1e400",
    "-1e999",
    "1.7976931348623157e308",
    "5e-324",
    "2.2250738585072011e-308",
    "9007199254740993",
    "-9223372036854775808",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "0.1",
    "0.30000000000000004",
    "123456789012345678901234567890e-20",
    "01",
    "-",
    "1.",
    ".5",
    "1e",
    "+1",
    "0x10",
    "1_000",
    "NaN",
    "-Infinity",
    "1.5e2",
    "4.35",
    "1767225600000",
    "1767225600000.9",
    "-1767225600000.5",
];
/// String pieces: the first `VALID` are valid JSON string content, the rest not.
const PIECES: &[&str] = &[
    "a",
    "Z",
    "card",
    " ",
    "é",
    "😀",
    "\\n",
    "\\t",
    "\\\"",
    "\\\\",
    "\\/",
    "\\b",
    "\\f",
    "\\r",
    "\\u00e9",
    "\\u0000",
    "\\uD83D\\uDE00",
    "\\ud83d\\ude00",
    "\u{7f}",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:01:00.5+02:00",
    "yesterday",
    "\\ud800",
    "\\udc00",
    "\\ud800x",
    "\\u12",
    "\\uzzzz",
    "\\x",
    "\u{1}",
    "\u{1f}",
];
const VALID: usize = 22;
const NAMES: &[&str] =
    &["event_id", "card_id", "ts", "amount", "merchant", "mcc", "country", "device", "channel", "promo", "extra", "c\\u0061rd_id", "ts\\u0000", "", "amount "];
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    " ",
    "\n",
    "null",
    "true",
    "false",
    "nul",
    "1",
    "-0",
    "1e999",
    "2.5",
    "\"card_id\"",
    "\"ts\"",
    "\"amount\"",
    "\"x\"",
    "\\",
    "\\u",
    "é",
];

/// A JSON string, valid where `valid` (else valid about half the time).
fn random_string(rng: &mut impl Rng, valid: bool) -> String {
    let mut s = String::from("\"");
    let pieces = if valid { &PIECES[..VALID] } else { PIECES };
    for _ in 0..rng.gen_range(0..6) {
        s.push_str(pieces[rng.gen_range(0..pieces.len())]);
    }
    s.push('"');
    s
}

fn random_number(rng: &mut impl Rng) -> String {
    match rng.gen_range(0..3) {
        0 => NUMBERS[rng.gen_range(0..NUMBERS.len())].to_owned(),
        1 => {
            let digits: String = (0..rng.gen_range(1..24)).map(|_| char::from(b'0' + rng.gen_range(0..10))).collect();
            let sign = if rng.gen_bool(0.3) { "-" } else { "" };
            let frac = if rng.gen_bool(0.5) { format!(".{}", rng.gen_range(0..u64::MAX)) } else { String::new() };
            let exp = if rng.gen_bool(0.3) { format!("e{}", rng.gen_range(-340..340)) } else { String::new() };
            format!("{sign}{digits}{frac}{exp}")
        }
        _ => format!("{}", rng.gen::<f64>() * 10f64.powi(rng.gen_range(-30..30))),
    }
}

fn random_value(rng: &mut impl Rng, depth: u32) -> String {
    if depth == 0 && rng.gen_bool(0.05) {
        // nesting around the most arrays and objects sonic-rs is given
        let n = rng.gen_range(100..160);
        return format!("{}{}{}", "[".repeat(n), random_value(rng, 3), "]".repeat(n));
    }
    match rng.gen_range(0..10) {
        4..=6 => random_string(rng, false),
        7 => ["null", "true", "false", "nul", "tru"][rng.gen_range(0..5)].to_owned(),
        8 if depth < 3 => format!("[{}]", (0..rng.gen_range(0..4)).map(|_| random_value(rng, depth + 1)).collect::<Vec<_>>().join(",")),
        9 if depth < 3 => format!(
            "{{{}}}",
            (0..rng.gen_range(0..4)).map(|_| format!("{}:{}", random_string(rng, false), random_value(rng, depth + 1))).collect::<Vec<_>>().join(",")
        ),
        _ => random_number(rng),
    }
}

/// An object of the fraud job's fields (and unknown ones), mostly well typed.
fn random_object(rng: &mut impl Rng) -> String {
    let mut fields = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        if !rng.gen_bool(if i < 9 { 0.9 } else { 0.2 }) {
            continue;
        }
        let value = match (*name, i < 9 && rng.gen_bool(0.8)) {
            (_, false) => random_value(rng, 0),
            ("ts", _) => match rng.gen_range(0..3) {
                0 => format!("{}", 1_767_225_600_000i64 + rng.gen_range(-10_000_000..10_000_000)),
                1 => format!("{}", 1_767_225_600_000f64 + rng.gen::<f64>() * 1e7),
                _ => format!("\"2026-01-0{}T0{}:{}:00.{}Z\"", rng.gen_range(1..10), rng.gen_range(0..10), rng.gen_range(10..70), rng.gen_range(0..1000)),
            },
            ("amount", _) => random_number(rng),
            _ => {
                let valid = rng.gen_bool(0.9);
                random_string(rng, valid)
            }
        };
        let ws = [" ", "", "\n", "\t"][rng.gen_range(0..4)];
        fields.push(format!("{ws}\"{name}\"{ws}:{ws}{value}"));
        if rng.gen_bool(0.02) {
            fields.push(fields.last().unwrap().clone()); // duplicate
        }
    }
    let tail = ["", "", "", "", " ", "\n", "x", ",", "}", "{}"][rng.gen_range(0..10)];
    format!("{{{}}}{tail}", fields.join(","))
}

/// A mutated demo transaction (bit flips, truncations, splices, tokens, nesting).
fn mutated(rng: &mut impl Rng, mut bytes: Vec<u8>, other: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match rng.gen_range(0..6) {
        0 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..7); // ASCII stays ASCII
            }
        }
        1 => bytes.truncate(rng.gen_range(0..=bytes.len())),
        2 | 3 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..=bytes.len());
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                bytes.splice(i..i, t.bytes());
            }
        }
        4 => {
            let n = rng.gen_range(1..200);
            let i = rng.gen_range(0..=bytes.len());
            bytes.splice(i..i, std::iter::repeat_n(b'[', n).chain(std::iter::repeat_n(b']', n)));
        }
        _ => {
            let cut = rng.gen_range(0..=bytes.len().min(other.len()));
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[cut..]);
        }
    }
    bytes
}

#[test]
fn a_million_random_inputs_get_the_serde_json_verdict() {
    let fraud = vigil::demo::fraud_job();
    let plain = Decoder::new(&fraud);
    // the same job with record-level expectations and an event id, so the
    // expectations' verdicts are compared too
    let judged = JobBuilder::new("judged")
        .key_field("card_id")
        .event_time_field("ts")
        .event_id_field("event_id")
        .field("amount", FieldType::F64)
        .optional_field("country", FieldType::Str)
        .optional_field("merchant", FieldType::Str)
        .optional_field("device", FieldType::Str)
        .expect(Expectation::range("amount_range", "amount", 0.0, 1000.0))
        .expect(Expectation::max_length("short_country", "country", 2).warn())
        .expect(Expectation::regex("merchant_id", "merchant", "^m[0-9]+$"))
        .build()
        .unwrap();
    let judged = Decoder::new(&judged);
    let mut gen = vigil::demo::generator::Generator::new(vigil::demo::generator::GenConfig { bad_ratio: 0.1, seed: 7, ..Default::default() });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut tally = Tally::default();
    for i in 0..1_000_000u32 {
        let bytes = match rng.gen_range(0..10) {
            0..=2 => gen.next_transaction().payload,
            3..=5 => {
                let other = gen.next_transaction().payload;
                mutated(&mut rng, gen.next_transaction().payload, &other)
            }
            6..=8 => random_object(&mut rng).into_bytes(),
            _ => (0..rng.gen_range(0..60)).map(|_| TOKENS[rng.gen_range(0..TOKENS.len())]).collect::<String>().into_bytes(),
        };
        check(if i % 2 == 0 { &plain } else { &judged }, &bytes, &mut tally);
    }
    let t = &tally;
    println!(
        "{} inputs, {} accepted; sonic-rs alone: {} deep, {} checked in skipped values, {} with -0",
        t.inputs, t.accepted, t.deep, t.skipped_checked, t.negative_zero
    );
    assert!(t.accepted > 100_000 && t.accepted < 900_000, "{} accepted", t.accepted);
    // each way sonic-rs alone differs is met, so each is known to be decided by serde_json
    assert!(t.deep > 50 && t.skipped_checked > 100 && t.negative_zero > 20, "{} deep, {} skipped, {} -0", t.deep, t.skipped_checked, t.negative_zero);
}
