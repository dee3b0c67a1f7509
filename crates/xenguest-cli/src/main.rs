//! `xenguest`: the domain builder xenopsd runs.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    println!("xenguest: the Xen domain builder (work in progress)");
}
