//! Transactions retried as a whole on `EAGAIN`.

use std::time::Duration;

use crate::{Result, Store, TxId};

/// How many times [`transaction`] runs its closure before giving up on `EAGAIN`.
pub const TRANSACTION_ATTEMPTS: u32 = 16;

/// Runs `body` in a transaction and commits it; when the commit (or an operation inside)
/// fails with `EAGAIN`, the whole transaction is run again, at most
/// [`TRANSACTION_ATTEMPTS`] times. Any other error aborts the transaction and is returned.
pub fn transaction<S, T, F>(store: &S, body: F) -> Result<T>
where
    S: Store + ?Sized,
    F: FnMut(TxId) -> Result<T>,
{
    transaction_with_attempts(store, TRANSACTION_ATTEMPTS, body)
}

/// [`transaction`] with an explicit attempt limit (at least one attempt is made).
pub fn transaction_with_attempts<S, T, F>(store: &S, attempts: u32, mut body: F) -> Result<T>
where
    S: Store + ?Sized,
    F: FnMut(TxId) -> Result<T>,
{
    let attempts = attempts.max(1);
    let mut attempt = 1;
    loop {
        let tx = store.transaction_start()?;
        let outcome = match body(tx) {
            Ok(value) => store.transaction_end(tx, true).map(|()| value),
            Err(e) => {
                if let Err(abort) = store.transaction_end(tx, false) {
                    log::debug!("aborting transaction {} failed: {abort}", tx.0);
                }
                Err(e)
            }
        };
        match outcome {
            Err(e) if e.is_again() && attempt < attempts => {
                log::debug!(
                    "transaction {} conflicted (attempt {attempt}), retrying",
                    tx.0
                );
                // Back off a little so two retrying writers stop colliding.
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10) - 1)));
                attempt += 1;
            }
            other => return other,
        }
    }
}
