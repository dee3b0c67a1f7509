//! Starts a C xenstored from the shared fixture, reads 40 keys one at a time and in one
//! pipelined batch, and prints the medians and their ratio as one line of JSON.
//!
//! `cargo run --release -p xg-store --example pipeline-ratio [READS] [ITERATIONS]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let reads = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let iterations = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    match xg_store::bench_support::measure_pipeline_ratio(reads, iterations) {
        Ok(r) => {
            println!("{}", r.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                msg.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("pipeline-ratio: {msg}");
            ExitCode::FAILURE
        }
    }
}
