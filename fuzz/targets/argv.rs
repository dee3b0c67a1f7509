//! Fuzz target: xenguest's command line.
//!
//! The input is split at NUL bytes into arguments and parsed the way `main` does.
//! Checked: no panic; an accepted command line gives a syslog ident of at most 31 bytes
//! (the C buffer is 32) and a stable answer to `has_required`; an error renders its
//! message.
#![allow(dead_code)]

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../crates/xenguest-cli/src/args.rs"]
mod args;

/// Name in reports.
pub const NAME: &str = "argv";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 4096;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"-mode\0",
    b"hvm_build\0",
    b"pvh_build\0",
    b"linux_build\0",
    b"-domid\0",
    b"-mem_max_mib\0",
    b"-mem_start_mib\0",
    b"-controloutfd\0",
    b"-controlinfd\0",
    b"-image\0",
    b"-cmdline\0",
    b"-module\0",
    b"-pci_passthrough\0",
    b"-vgpu\0",
    b"-force\0",
    b"-supports\0",
    b"-store_port\0",
    b"--platform\0",
    b"--host\0",
    b"--backend\0",
    b"sim\0",
    b"--store\0",
    b"--populate\0",
    b"-mem_pnode\0",
    b"--\0",
    b"-\0",
    b"=",
    b"--help\0",
    b"-v\0",
    b"2147483648\0",
    b"-1\0",
    b"0x10\0",
];

/// Arguments are copied a few times.
pub fn alloc_cap(len: usize) -> usize {
    64 * len + 16 * 1024
}

/// Seed inputs: xenopsd's argv for an HVM build and a few variants, NUL-separated.
pub fn seeds() -> Vec<Vec<u8>> {
    let argvs: [&[&str]; 5] = [
        &[
            "-mode",
            "hvm_build",
            "-domid",
            "4",
            "-controlinfd",
            "7",
            "-controloutfd",
            "8",
            "-debuglog",
            "/tmp/x",
            "-store_port",
            "1",
            "-console_port",
            "2",
            "-mem_max_mib",
            "1024",
            "-mem_start_mib",
            "1024",
            "-image",
            "/usr/libexec/xen/boot/hvmloader",
            "-fork",
            "true",
        ],
        &["-supports", "feature"],
        &[
            "--mode=pvh_build",
            "-cmdline",
            "console=hvc0",
            "-module",
            "/a",
            "-cmdline",
            "x",
        ],
        &["-mem", "1"],
        &["-domid", "1x"],
    ];
    argvs.iter().map(|a| a.join("\0").into_bytes()).collect()
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let argv: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match args::parse(&argv) {
        Ok(args::Parsed::Run(a)) => {
            let ident = a.syslog_ident();
            assert!(ident.len() <= 31, "ident {ident:?}");
            assert_eq!(a.has_required(), a.has_required());
        }
        Ok(_) => {}
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
}
