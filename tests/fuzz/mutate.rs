//! The shared part of the fuzz targets (`datasets/tests/fuzz_parsers.rs`,
//! `model/tests/fuzz_checkpoints.rs`, `training/tests/fuzz_run_config.rs`), which include it
//! with `#[path = "../../tests/fuzz/mutate.rs"] mod mutate;` (see the book's "Fuzzing" chapter).
//!
//! A target starts from small valid [`Seed`] files built at run time, applies a random list of
//! structure-aware [`Mutation`]s and hands the result to a parser, which must return (`Ok` or
//! `Err`) without panicking ([`check`]). proptest draws the mutation lists, runs each target in a
//! child process ([`config`]: an abort or a hang fails the target instead of ending the test
//! binary) and shrinks a failing list to a minimal one, printed as the "minimal failing input".

#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// The random seed when `PROPTEST_RNG_SEED` is not set: the same cases on every run, so
/// that the suite (and CI) passes or fails reproducibly; longer runs choose other seeds.
pub const DEFAULT_RNG_SEED: u64 = 2022;
/// Cases per target when `PROPTEST_CASES` is not set: enough to catch the shallow bugs in a
/// short CI budget; longer runs set `PROPTEST_CASES`.
pub const DEFAULT_CASES: u32 = 64;
/// Longest time one case may take (ms) when `PROPTEST_TIMEOUT` is not set; a slower case (a
/// decompression bomb, a model of billions of layers) fails the target.
pub const DEFAULT_TIMEOUT_MS: u32 = 60_000;
/// Shrinking steps of a failure when `PROPTEST_MAX_SHRINK_ITERS` is not set: a crash costs a
/// new child process per step, so the search is kept short.
pub const DEFAULT_MAX_SHRINK_ITERS: u32 = 256;
/// Address space of the fuzzing processes (bytes) when `VIDCLS_FUZZ_MEMORY_MB` is not set: an
/// input that makes a parser allocate more aborts the child process quickly (reported as a
/// failure) instead of exhausting the machine's memory.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// The proptest configuration of every fuzz target: [`DEFAULT_CASES`] cases (`PROPTEST_CASES`),
/// each target in a child process with a per-case timeout, a fixed RNG seed
/// ([`DEFAULT_RNG_SEED`], `PROPTEST_RNG_SEED`), no failure persistence.
///
/// Failure persistence is off: a persisted failure is an RNG seed, which replays the same input
/// only while the seed files and the mutation strategy stay exactly the same (they change with
/// the `zip`, `image`, `safetensors` crates and with this file). A failure found is printed as
/// its minimal list of mutations; it belongs in a unit test of the parser it broke.
pub fn config() -> Config {
    let from_env = Config::default();
    Config {
        cases: env_or("PROPTEST_CASES", from_env.cases, DEFAULT_CASES),
        timeout: env_or("PROPTEST_TIMEOUT", from_env.timeout, DEFAULT_TIMEOUT_MS),
        fork: env_or("PROPTEST_FORK", from_env.fork, true),
        max_shrink_iters: env_or(
            "PROPTEST_MAX_SHRINK_ITERS",
            from_env.max_shrink_iters,
            DEFAULT_MAX_SHRINK_ITERS,
        ),
        rng_seed: env_or(
            "PROPTEST_RNG_SEED",
            from_env.rng_seed,
            proptest::test_runner::RngSeed::Fixed(DEFAULT_RNG_SEED),
        ),
        failure_persistence: None,
        ..from_env
    }
}

/// `from_env` (proptest's reading of the environment variable `name`) when that variable is
/// set, `default` otherwise.
fn env_or<T>(name: &str, from_env: T, default: T) -> T {
    if std::env::var_os(name).is_some() {
        from_env
    } else {
        default
    }
}

/// A valid input of a target and the places its mutations aim at.
#[derive(Clone)]
pub struct Seed {
    /// What it is, as the failing inputs name it.
    pub name: &'static str,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Offsets of the format's size, count, offset and type fields ([`Offset::Field`]).
    pub fields: Vec<usize>,
    /// Tokens of the format (keys, type names, magic numbers) for [`Mutation::SwapToken`] and
    /// [`Mutation::InsertToken`].
    pub tokens: Vec<Vec<u8>>,
    /// Repairs checksums after the mutations (PNG chunk CRCs), so that they reach the decoder.
    pub fixup: Option<fn(&mut [u8])>,
}

impl Seed {
    /// A seed without fields, tokens or fix-up.
    pub fn new(name: &'static str, bytes: Vec<u8>) -> Self {
        Seed {
            name,
            bytes,
            fields: Vec::new(),
            tokens: Vec::new(),
            fixup: None,
        }
    }

    /// With these field offsets.
    pub fn fields(mut self, fields: Vec<usize>) -> Self {
        self.fields = fields;
        self
    }

    /// With these tokens (besides the ones already there).
    pub fn tokens<T: AsRef<[u8]>>(mut self, tokens: impl IntoIterator<Item = T>) -> Self {
        self.tokens
            .extend(tokens.into_iter().map(|token| token.as_ref().to_vec()));
        self
    }

    /// With a checksum fix-up.
    pub fn fixup(mut self, fixup: fn(&mut [u8])) -> Self {
        self.fixup = Some(fixup);
        self
    }

    /// The seed's bytes after `mutations`.
    pub fn mutate(&self, mutations: &[Mutation]) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        for mutation in mutations {
            mutation.apply(&mut bytes, self);
        }
        if let Some(fixup) = self.fixup {
            fixup(&mut bytes);
        }
        bytes
    }
}

/// Where a mutation applies.
#[derive(Debug, Clone)]
pub enum Offset {
    /// Anywhere: the value modulo the length (+1).
    Any(usize),
    /// `delta` bytes after one of the seed's fields (the index modulo their number).
    Field {
        /// Which field.
        index: usize,
        /// Bytes after its start.
        delta: u8,
    },
}

impl Offset {
    fn resolve(&self, len: usize, seed: &Seed) -> usize {
        match *self {
            Offset::Field { index, delta } if !seed.fields.is_empty() => {
                (seed.fields[index % seed.fields.len()] + delta as usize).min(len)
            }
            Offset::Field { index, .. } | Offset::Any(index) => index % (len + 1),
        }
    }
}

/// Integers that size, count and offset fields are set to.
pub const EXTREME_INTEGERS: [u64; 22] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    u32::MAX as u64,
    1 << 32,
    1 << 40,
    1 << 48,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
    0xFFFF_FFFF_FFFF_0000,
];

/// What numbers in text (JSON values, `.npy` shapes, CSV fields) are replaced with.
pub const EXTREME_NUMBERS: [&str; 34] = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "-0",
    "0.0",
    "0.5",
    "1.5",
    "-7",
    "255",
    "65535",
    "65536",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "1099511627776",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e309",
    "1e-320",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\"7\"",
    "[]",
];

/// One change to a file.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Overwrites bytes (cut at the end of the file).
    Overwrite {
        /// Where.
        at: Offset,
        /// With what.
        bytes: Vec<u8>,
    },
    /// Flips one bit.
    FlipBit {
        /// Where.
        at: Offset,
        /// Which bit.
        bit: u8,
    },
    /// Cuts the file.
    Truncate {
        /// The new length.
        at: Offset,
    },
    /// Inserts bytes.
    Insert {
        /// Where.
        at: Offset,
        /// What.
        bytes: Vec<u8>,
    },
    /// Copies a slice of the file to another place (inserted).
    Duplicate {
        /// Start of the slice.
        from: Offset,
        /// Its length (cut at the end of the file).
        len: usize,
        /// Where the copy goes.
        to: Offset,
    },
    /// Removes a slice.
    Remove {
        /// Start of the slice.
        at: Offset,
        /// Its length (cut at the end of the file).
        len: usize,
    },
    /// Sets a 1, 2, 4 or 8-byte integer (cut at the end of the file).
    SetInt {
        /// Where.
        at: Offset,
        /// Bytes.
        width: u8,
        /// The value (its low `width` bytes).
        value: u64,
        /// Big-endian (JPEG, PNG) instead of little-endian (zip, npy, safetensors, pickle).
        big_endian: bool,
    },
    /// Replaces the `nth` number written in ASCII (modulo their number) with `text`.
    ReplaceNumber {
        /// Which number.
        nth: usize,
        /// Its replacement.
        text: &'static str,
    },
    /// Replaces the `nth` occurrence of any of the seed's tokens (modulo their number) with the
    /// `token`th token.
    SwapToken {
        /// Which occurrence.
        nth: usize,
        /// Which token replaces it.
        token: usize,
    },
    /// Inserts the `token`th token of the seed.
    InsertToken {
        /// Where.
        at: Offset,
        /// Which token.
        token: usize,
    },
}

impl Mutation {
    /// Applies the mutation to `bytes`, a mutated `seed`.
    pub fn apply(&self, bytes: &mut Vec<u8>, seed: &Seed) {
        let len = bytes.len();
        match self {
            Mutation::Overwrite { at, bytes: new } => {
                let at = at.resolve(len, seed);
                let end = (at + new.len()).min(len);
                bytes[at..end].copy_from_slice(&new[..end - at]);
            }
            Mutation::FlipBit { at, bit } => {
                let at = at.resolve(len, seed);
                if at < len {
                    bytes[at] ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at.resolve(len, seed)),
            Mutation::Insert { at, bytes: new } => {
                let at = at.resolve(len, seed);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Duplicate {
                from,
                len: count,
                to,
            } => {
                let from = from.resolve(len, seed);
                let slice = bytes[from..(from + count).min(len)].to_vec();
                let to = to.resolve(len, seed);
                bytes.splice(to..to, slice);
            }
            Mutation::Remove { at, len: count } => {
                let at = at.resolve(len, seed);
                bytes.drain(at..(at + count).min(len));
            }
            Mutation::SetInt {
                at,
                width,
                value,
                big_endian,
            } => {
                let at = at.resolve(len, seed);
                let width = *width as usize;
                let encoded = if *big_endian {
                    value.to_be_bytes()[8 - width..].to_vec()
                } else {
                    value.to_le_bytes()[..width].to_vec()
                };
                let end = (at + width).min(len);
                bytes[at..end].copy_from_slice(&encoded[..end - at]);
            }
            Mutation::ReplaceNumber { nth, text } => {
                let numbers = number_spans(bytes);
                if !numbers.is_empty() {
                    let (start, end) = numbers[nth % numbers.len()];
                    bytes.splice(start..end, text.bytes());
                }
            }
            Mutation::SwapToken { nth, token } => {
                let spans = token_spans(bytes, &seed.tokens);
                if !spans.is_empty() {
                    let (start, end) = spans[nth % spans.len()];
                    let new = &seed.tokens[token % seed.tokens.len()];
                    bytes.splice(start..end, new.iter().copied());
                }
            }
            Mutation::InsertToken { at, token } => {
                if !seed.tokens.is_empty() {
                    let at = at.resolve(len, seed);
                    let new = &seed.tokens[token % seed.tokens.len()];
                    bytes.splice(at..at, new.iter().copied());
                }
            }
        }
    }
}

/// The numbers written in ASCII: a run of digits with an optional leading `-` and a fraction or
/// exponent, as (start, end).
fn number_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = if i > 0 && bytes[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || matches!(bytes[i], b'.' | b'e' | b'E' | b'+'))
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// The occurrences of the tokens, as (start, end), in order (a few thousand at most).
fn token_spans(bytes: &[u8], tokens: &[Vec<u8>]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for token in tokens.iter().filter(|token| !token.is_empty()) {
        let mut start = 0;
        while let Some(found) = find(&bytes[start..], token) {
            spans.push((start + found, start + found + token.len()));
            start += found + token.len();
            if spans.len() >= 4096 {
                return spans;
            }
        }
    }
    spans.sort_unstable();
    spans
}

/// The first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Every occurrence of `needle` in `haystack`.
pub fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(position, _)| position)
        .collect()
}

fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![
        any::<usize>().prop_map(Offset::Any),
        (any::<usize>(), prop_oneof![3 => Just(0u8), 1 => 0u8..16])
            .prop_map(|(index, delta)| Offset::Field { index, delta }),
    ]
}

fn short_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..=8),
        prop::collection::vec(prop::sample::select(vec![0u8, 0xFF, 0x7F, 0x80]), 1..=8),
    ]
}

/// One random mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        4 => prop::sample::select(EXTREME_INTEGERS.to_vec()),
        1 => any::<u64>(),
    ];
    prop_oneof![
        2 => (offset(), short_bytes()).prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        1 => (offset(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => offset().prop_map(|at| Mutation::Truncate { at }),
        1 => (offset(), short_bytes()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (offset(), 1usize..256, offset())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        1 => (offset(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        4 => (
            offset(),
            prop::sample::select(vec![1u8, 2, 4, 8]),
            extreme,
            prop::bool::weighted(0.25),
        )
            .prop_map(|(at, width, value, big_endian)| Mutation::SetInt {
                at,
                width,
                value,
                big_endian,
            }),
        3 => (any::<usize>(), prop::sample::select(EXTREME_NUMBERS.to_vec()))
            .prop_map(|(nth, text)| Mutation::ReplaceNumber { nth, text }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(nth, token)| Mutation::SwapToken { nth, token }),
        1 => (offset(), any::<usize>()).prop_map(|(at, token)| Mutation::InsertToken { at, token }),
    ]
}

/// One fuzz case: which seed, and the mutations applied to it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The seed's name.
    pub seed: &'static str,
    /// The mutations, in order.
    pub mutations: Vec<Mutation>,
}

impl Case {
    /// The mutated bytes of the case's seed among `seeds`.
    pub fn bytes(&self, seeds: &[Seed]) -> Vec<u8> {
        seeds
            .iter()
            .find(|seed| seed.name == self.seed)
            .expect("the case's seed exists")
            .mutate(&self.mutations)
    }
}

/// Cases on `seeds`: one seed in ten unchanged, else 1 to 5 mutations.
pub fn cases(seeds: &[Seed]) -> impl Strategy<Value = Case> + use<> {
    let names: Vec<&'static str> = seeds.iter().map(|seed| seed.name).collect();
    let mutations = prop_oneof![
        1 => Just(Vec::new()),
        9 => prop::collection::vec(mutation(), 1..=5),
    ];
    (prop::sample::select(names), mutations).prop_map(|(seed, mutations)| Case { seed, mutations })
}

/// A panic met inside [`check`].
struct Panic {
    message: String,
    location: String,
    backtrace: std::backtrace::Backtrace,
}

thread_local! {
    /// Inside [`check`]: `Some` (with the last panic of this thread, if any).
    static PANIC: RefCell<Option<Option<Panic>>> = const { RefCell::new(None) };
}

/// The message of a panic payload.
fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// Installs (once) a panic hook that, inside [`check`], records the panic's message, location
/// and backtrace instead of printing them: the panics that parsers catch themselves (libjpeg's
/// errors) stay quiet that way. Elsewhere (other threads, the harness) it prints as usual.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let recorded = PANIC.with(|panic| {
                let mut panic = panic.borrow_mut();
                let recording = panic.is_some();
                if recording {
                    *panic = Some(Some(Panic {
                        message: payload_message(info.payload()),
                        location: info
                            .location()
                            .map_or_else(|| "unknown location".into(), |l| l.to_string()),
                        backtrace: std::backtrace::Backtrace::force_capture(),
                    }));
                }
                recording
            });
            if !recorded {
                default(info);
            }
        }));
    });
}

/// The frames of a backtrace between the panic machinery and [`check`]: the parsers' and their
/// dependencies' functions, with source lines where the build has line tables.
fn parser_frames(backtrace: &std::backtrace::Backtrace) -> String {
    let text = backtrace.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
    // (symbol, location) of each frame.
    let frames: Vec<(&str, Option<&str>)> = lines
        .iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let (number, symbol) = line.split_once(": ")?;
            number.parse::<usize>().ok()?;
            let location = lines
                .get(index + 1)
                .and_then(|next| next.strip_prefix("at "));
            Some((symbol, location))
        })
        .collect();
    let is_panic_machinery = |symbol: &str| {
        [
            "core::panicking",
            "std::panicking",
            "std::sys::backtrace",
            "__rustc::",
            "std::alloc",
            "alloc::alloc",
        ]
        .iter()
        .any(|prefix| symbol.starts_with(prefix))
    };
    // Skip the panic hook and the panic machinery at the top of the stack.
    let machinery_start = frames
        .iter()
        .position(|(symbol, _)| is_panic_machinery(symbol))
        .unwrap_or(0);
    let first = frames[machinery_start..]
        .iter()
        .position(|(symbol, _)| !is_panic_machinery(symbol))
        .map_or(frames.len(), |offset| machinery_start + offset);
    let mut out = String::new();
    for (symbol, location) in frames[first..].iter().take(12) {
        if location.is_some_and(|at| at.contains("tests/fuzz/mutate.rs"))
            || symbol.starts_with("std::panic::catch_unwind")
        {
            break;
        }
        let symbol: String = symbol.chars().take(160).collect();
        let _ = write!(out, "\n    {symbol}");
        if let Some(at) = location {
            let _ = write!(out, "\n      at {at}");
        }
    }
    if out.is_empty() {
        out.push_str("\n    (none)");
    }
    out
}

/// Runs `parse` on a case's input: whatever it returns is fine, a panic fails the case with
/// its message, location and the parser's frames of its backtrace.
pub fn check<T>(case: &Case, parse: impl FnOnce() -> T) -> Result<(), TestCaseError> {
    install_panic_hook();
    limit_memory();
    PANIC.with(|panic| *panic.borrow_mut() = Some(None));
    let result = catch_unwind(AssertUnwindSafe(|| drop(parse())));
    let recorded = PANIC.with(|panic| panic.borrow_mut().take().flatten());
    let Err(payload) = result else {
        return Ok(());
    };
    let report = match recorded {
        Some(panic) => format!(
            "{}\n  at {}\n  frames:{}",
            panic.message,
            panic.location,
            parser_frames(&panic.backtrace)
        ),
        None => format!(
            "{} (in another thread, see its output)",
            payload_message(payload.as_ref())
        ),
    };
    Err(TestCaseError::fail(format!(
        "seed {:?}: the parser panicked: {report}",
        case.seed
    )))
}

/// Caps the address space of this process (`VIDCLS_FUZZ_MEMORY_MB`, else
/// [`DEFAULT_MEMORY_LIMIT`]), once; an allocation beyond it aborts the (child) process.
pub fn limit_memory() {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| {
        let limit = std::env::var("VIDCLS_FUZZ_MEMORY_MB")
            .ok()
            .and_then(|mb| mb.parse::<u64>().ok())
            .map_or(DEFAULT_MEMORY_LIMIT, |mb| mb << 20);
        #[cfg(unix)]
        // SAFETY: setrlimit only reads the struct it is given.
        unsafe {
            let rlimit = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_AS, &rlimit);
        }
        #[cfg(not(unix))]
        let _ = limit;
    });
}

/// The offsets of the size, count and offset fields of a zip's headers (local file headers,
/// central directory entries, the end of central directory records, zip64 records).
pub fn zip_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    let mut add = |signature: &[u8], offsets: &[usize]| {
        for start in find_all(bytes, signature) {
            fields.extend(offsets.iter().map(|offset| start + offset));
        }
    };
    // Local file header: flags, method, crc, compressed and uncompressed sizes, name and
    // extra field lengths.
    add(b"PK\x03\x04", &[6, 8, 14, 18, 22, 26, 28]);
    // Central directory entry: flags, method, crc, sizes, name/extra/comment lengths, disk,
    // external attributes, local header offset.
    add(b"PK\x01\x02", &[8, 10, 16, 20, 24, 28, 30, 32, 34, 38, 42]);
    // End of central directory: disk numbers, entry counts, size and offset of the central
    // directory, comment length.
    add(b"PK\x05\x06", &[4, 6, 8, 10, 12, 16, 20]);
    // Zip64 end of central directory record and locator.
    add(b"PK\x06\x06", &[4, 24, 32, 40, 48]);
    add(b"PK\x06\x07", &[4, 8, 16]);
    fields
}

/// Magic numbers and signatures of zips, for tokens.
pub const ZIP_TOKENS: [&[u8]; 6] = [
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"PK\x06\x06",
    b"PK\x06\x07",
    b"PK\x07\x08",
];

/// The quoted strings of a JSON text (keys and string values), for tokens.
pub fn json_strings(text: &[u8]) -> Vec<Vec<u8>> {
    let mut strings: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'"' {
            let start = i;
            i += 1;
            while i < text.len() && text[i] != b'"' {
                i += if text[i] == b'\\' { 2 } else { 1 };
            }
            let end = (i + 1).min(text.len());
            let string = text[start..end].to_vec();
            if !strings.contains(&string) {
                strings.push(string);
            }
        }
        i += 1;
    }
    strings
}

/// JSON syntax that mutations splice in.
pub const JSON_TOKENS: [&str; 16] = [
    "null", "true", "false", "[]", "{}", "[", "]", "{", "}", ",", ":", "\"", "\"\"", "\\u0000",
    "\\ud800", "\u{feff}",
];
