//! A stable-toolchain fuzz driver for the targets in `fuzz/targets/`.
//!
//! cargo-fuzz needs a nightly toolchain; the team machines and CI have stable only. This
//! driver runs the same `check` functions with mutated inputs: seeds and a token
//! dictionary per target, byte-level mutations (bit flips, interesting integers, inserted
//! tokens, deleted and duplicated ranges, splices of two seeds) and now and then plain
//! random bytes. It has no coverage feedback, so it is a property-based runner, not a
//! coverage-guided fuzzer.
//!
//! Each `crates/*/tests/fuzz_*.rs` includes this file with `#[path]`, installs
//! [`CountingAlloc`] as its global allocator and calls [`run`]. Per input it checks: no
//! panic (the input is saved and printed, then the panic goes on), no single allocation
//! above the target's cap, and no input slower than [`HANG_LIMIT`]. The budget comes
//! from the environment:
//!
//! * `XG_FUZZ_SECONDS` (run this long), else `XG_FUZZ_ITERS` (this many inputs), else a
//!   smoke run of [`SMOKE_ITERS`] inputs capped at [`SMOKE_SECONDS`];
//! * `XG_FUZZ_SEED` (u64) for a different input sequence (the default is fixed, so a
//!   plain `cargo test` is deterministic).
//!
//! The last line each run prints (`fuzz <name>: ...`) is what `cargo xtask fuzz` reports.
#![allow(dead_code, clippy::print_stderr)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Inputs of a smoke run (part of `cargo test`).
pub const SMOKE_ITERS: u64 = 3000;
/// Wall-clock cap of a smoke run.
pub const SMOKE_SECONDS: f64 = 3.0;
/// An input that takes longer than this is a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Allocation accounting: the allocator lives in xg-ctrl, the one crate besides xg-sys
// allowed to hold `unsafe`, so the runners that include this file stay free of it.

pub use xg_ctrl::alloc_probe::{largest_allocation, CountingAlloc};

// ---------------------------------------------------------------------------------------
// Inputs.

/// xorshift64*: small, fast, good enough to drive mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// What a target is.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name in reports.
    pub name: &'static str,
    /// Inputs are cut to this length.
    pub max_len: usize,
    /// Tokens worth inserting (keys, keywords, numbers in odd notations).
    pub dict: &'static [&'static [u8]],
    /// Largest allowed single allocation for an input of the given length.
    pub alloc_cap: fn(usize) -> usize,
}

const INTERESTING: [u64; 16] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xfff,
    0x1000,
    0x1001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x10_0000,
    u64::MAX,
    u64::MAX / 2,
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>], t: &Target) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.byte();
            }
            2 if len > 0 => {
                // An interesting integer, little- or big-endian, 1-8 bytes.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = 1 + rng.below(8);
                let bytes = if rng.one_in(2) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let at = rng.below(len);
                for (k, b) in bytes.iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
            3 | 4 if !t.dict.is_empty() => {
                let tok = t.dict[rng.below(t.dict.len())];
                let at = rng.below(len + 1);
                if rng.one_in(3) && at < len {
                    let end = (at + tok.len()).min(len);
                    data.splice(at..end, tok.iter().copied());
                } else {
                    data.splice(at..at, tok.iter().copied());
                }
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            6 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let piece: Vec<u8> = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, piece);
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let cut = rng.below(len + 1);
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            8 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let fresh: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                data.splice(at..at, fresh);
            }
            _ if len > 1 => data.truncate(rng.below(len)),
            _ => data.push(rng.byte()),
        }
    }
    data.truncate(t.max_len);
}

fn next_input(rng: &mut Rng, seeds: &[Vec<u8>], t: &Target) -> Vec<u8> {
    if seeds.is_empty() || rng.one_in(16) {
        let n = rng.below(t.max_len.min(512) + 1);
        return (0..n).map(|_| rng.byte()).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    if !rng.one_in(32) {
        mutate(rng, &mut data, seeds, t);
    }
    data
}

// ---------------------------------------------------------------------------------------
// The run.

/// The budget of one run, from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop after this many inputs.
    pub iters: u64,
    /// Stop after this long.
    pub seconds: f64,
    /// The generator's seed.
    pub seed: u64,
}

impl Budget {
    /// `XG_FUZZ_SECONDS`, `XG_FUZZ_ITERS`, `XG_FUZZ_SEED`, else a smoke run.
    pub fn from_env() -> Budget {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let seed = var("XG_FUZZ_SEED")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x005E_ED0F_F022);
        let seconds = var("XG_FUZZ_SECONDS").and_then(|v| v.parse::<f64>().ok());
        let iters = var("XG_FUZZ_ITERS").and_then(|v| v.parse::<u64>().ok());
        match (seconds, iters) {
            (None, None) => Budget {
                iters: SMOKE_ITERS,
                seconds: SMOKE_SECONDS,
                seed,
            },
            // Either limit, or both: whichever is reached first ends the run.
            (s, n) => Budget {
                iters: n.unwrap_or(u64::MAX),
                seconds: s.unwrap_or(f64::INFINITY),
                seed,
            },
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Inputs checked.
    pub inputs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Slowest input.
    pub slowest: Duration,
    /// Largest single allocation of any input.
    pub largest_alloc: usize,
}

fn save_crash(name: &str, data: &[u8]) -> String {
    let dir = std::env::temp_dir().join("xg-fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let path = dir.join(format!("{name}-{h:016x}"));
    let _ = std::fs::write(&path, data);
    path.display().to_string()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `check` on the seeds, then on generated inputs until the budget is spent.
pub fn run(t: &Target, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) -> Report {
    let budget = Budget::from_env();
    let mut rng = Rng::new(budget.seed);
    let started = Instant::now();
    let mut report = Report {
        inputs: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        largest_alloc: 0,
    };
    let mut pending = seeds.to_vec();
    pending.reverse();
    while report.inputs < budget.iters {
        // Check the clock every 64 inputs: cheap inputs run at millions per second.
        if report.inputs.is_multiple_of(64) && started.elapsed().as_secs_f64() >= budget.seconds {
            break;
        }
        let data = pending
            .pop()
            .unwrap_or_else(|| next_input(&mut rng, seeds, t));
        let t0 = Instant::now();
        let (outcome, largest) =
            largest_allocation(|| catch_unwind(AssertUnwindSafe(|| check(&data))));
        let took = t0.elapsed();
        report.inputs += 1;
        report.slowest = report.slowest.max(took);
        report.largest_alloc = report.largest_alloc.max(largest);
        let cap = (t.alloc_cap)(data.len());
        let problem = match outcome {
            Err(_) => Some("panicked".to_owned()),
            Ok(()) if largest > cap => Some(format!(
                "allocated {largest} bytes at once, the cap for {} input bytes is {cap}",
                data.len()
            )),
            Ok(()) if took > HANG_LIMIT => Some(format!("took {took:?}")),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            let saved = save_crash(t.name, &data);
            panic!(
                "fuzz {}: input {} {problem}; saved to {saved}; hex {}",
                t.name,
                report.inputs,
                hex(&data)
            );
        }
    }
    report.elapsed = started.elapsed();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    // Precision loss is irrelevant for a rate shown with no decimals.
    #[allow(clippy::cast_precision_loss)]
    let rate = report.inputs as f64 / secs;
    eprintln!(
        "fuzz {}: {} inputs in {:.1} s ({:.0}/s), slowest {:.3} ms, largest allocation {} bytes, seed {}",
        t.name,
        report.inputs,
        secs,
        rate,
        report.slowest.as_secs_f64() * 1e3,
        report.largest_alloc,
        budget.seed
    );
    report
}
