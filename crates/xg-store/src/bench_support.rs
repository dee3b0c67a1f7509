//! The pipelining measurement: N reads in one pipelined batch versus N reads one at a
//! time (one round trip each, as libxenstore does), against a real C xenstored.
//!
//! Used by the criterion bench, the `pipeline-ratio` example and `cargo xtask bench`.

use std::time::{Duration, Instant};

use crate::fixture::{Daemon, FixtureError, Flavour};
use crate::{Client, Request, Store, TxId};

/// What can go wrong while measuring.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The daemon could not be started.
    #[error("Starting the daemon failed")]
    Fixture(#[source] FixtureError),
    /// A Xenstore operation failed.
    #[error("Xenstore operation failed")]
    Store(#[source] crate::Error),
}

impl From<crate::Error> for BenchError {
    fn from(e: crate::Error) -> BenchError {
        BenchError::Store(e)
    }
}

/// The keys [`write_keys`] creates: `/bench/key<i>`.
pub fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("/bench/key{i}")).collect()
}

/// Writes `count` small keys to read back.
pub fn write_keys(client: &Client, count: usize) -> crate::Result<Vec<String>> {
    let keys = keys(count);
    let writes: Vec<Request> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Request::Write(k.clone(), format!("value-{i}").into_bytes()))
        .collect();
    for r in client.submit(TxId::NONE, &writes)? {
        r?;
    }
    Ok(keys)
}

/// Reads every key with its own round trip.
pub fn read_sequential(client: &Client, keys: &[String]) -> crate::Result<usize> {
    let mut bytes = 0;
    for k in keys {
        bytes += client.read(TxId::NONE, k)?.len();
    }
    Ok(bytes)
}

/// Reads every key in one pipelined batch.
pub fn read_pipelined(client: &Client, keys: &[String]) -> crate::Result<usize> {
    let reqs: Vec<Request> = keys.iter().map(|k| Request::Read(k.clone())).collect();
    let mut bytes = 0;
    for r in client.submit(TxId::NONE, &reqs)? {
        if let crate::Reply::Data(d) = r? {
            bytes += d.len();
        }
    }
    Ok(bytes)
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRatio {
    /// Reads per batch.
    pub reads: usize,
    /// Batches timed per variant.
    pub iterations: u32,
    /// Median time of the one-at-a-time variant.
    pub sequential: Duration,
    /// Median time of the pipelined variant.
    pub pipelined: Duration,
}

impl PipelineRatio {
    /// `sequential / pipelined`.
    pub fn ratio(&self) -> f64 {
        let p = self.pipelined.as_secs_f64();
        if p > 0.0 {
            self.sequential.as_secs_f64() / p
        } else {
            f64::INFINITY
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"daemon\":\"xenstored\",\"reads\":{},\"iterations\":{},\"sequential_us\":{:.1},\"pipelined_us\":{:.1},\"ratio\":{:.2}}}",
            self.reads,
            self.iterations,
            self.sequential.as_secs_f64() * 1e6,
            self.pipelined.as_secs_f64() * 1e6,
            self.ratio()
        )
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Measures both variants on `client`, interleaved so both see the same machine load.
pub fn measure_on(client: &Client, reads: usize, iterations: u32) -> crate::Result<PipelineRatio> {
    let keys = write_keys(client, reads)?;
    // Warm up.
    read_sequential(client, &keys)?;
    read_pipelined(client, &keys)?;
    let mut seq = Vec::new();
    let mut pipe = Vec::new();
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        read_sequential(client, &keys)?;
        seq.push(t.elapsed());
        let t = Instant::now();
        read_pipelined(client, &keys)?;
        pipe.push(t.elapsed());
    }
    Ok(PipelineRatio {
        reads,
        iterations: iterations.max(1),
        sequential: median(seq),
        pipelined: median(pipe),
    })
}

/// Starts a C xenstored, measures, stops it.
pub fn measure_pipeline_ratio(reads: usize, iterations: u32) -> Result<PipelineRatio, BenchError> {
    let daemon = Daemon::start(Flavour::C).map_err(BenchError::Fixture)?;
    let client = daemon.client()?;
    let r = measure_on(&client, reads, iterations)?;
    drop(client);
    drop(daemon);
    Ok(r)
}
