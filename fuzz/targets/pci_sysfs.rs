//! Fuzz target: the host description files of PCI passthrough.
//!
//! The input is split at `0xFF` bytes into a device's sysfs `resource`, `vendor` and
//! `device` files, written into a temporary sysfs tree, and its RMRRs (hex
//! `<start_pfn> <nr_pages>` lines, bad lines skipped), which a simulated hypervisor
//! reports through `XENMEM_reserved_device_memory_map`; then everything the layout needs
//! about the device is read and the layout computed. Checked: no panic; a bad file is an error or a warning, never a
//! crash; the layout of any successful read either fails cleanly or satisfies its
//! invariant (RAM below and above 4 GiB adds up to the guest's memory).
#![allow(dead_code)]

use std::path::PathBuf;

use xg_build::mem;
use xg_build::pci::{self, PciHost};
use xg_ctrl::sim::{HostConfig, PciDeviceConfig, Simulator};

/// Name in reports.
pub const NAME: &str = "pci_sysfs";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 8192;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"0x00000000e0000000 0x00000000e0ffffff 0x0000000000040200\n",
    b"0x0000000000000000 0x0000000000000000 0x0000000000000000\n",
    b"0xffffffffffffffff 0x0000000000000000 0x0\n",
    b"0x1002\n",
    b"0x692f\n",
    b"0xbf800 0x800\n",
    b"\xff",
    b"\n",
    b" ",
];

/// Files are read whole; the layout is fixed-size.
pub fn alloc_cap(len: usize) -> usize {
    32 * len + 64 * 1024
}

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut res = Vec::new();
    for i in 0..7u64 {
        let start = 0xE000_0000 + i * 0x100_0000;
        res.extend(
            format!(
                "{start:#018x} {:#018x} {:#018x}\n",
                start + 0xFF_FFFF,
                0x40200
            )
            .bytes(),
        );
    }
    let mut a = res.clone();
    a.extend(b"\xff0x10de\n\xff0x1eb8\n\xff0xbf800 0x800\n0xc0000 0x10\n");
    let mut b = res;
    b.extend(b"\xff0x1002\n\xff0x692f\n\xff");
    vec![a, b, b"garbage\xff\xff\xff".to_vec()]
}

fn tree() -> PathBuf {
    let id = format!("{:?}", std::thread::current().id());
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("xg-fuzz-sysfs-{}-{id}", std::process::id()))
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let root = tree();
    let dev = root.join("bus/pci/devices/0000:03:00.0");
    if std::fs::create_dir_all(&dev).is_err() {
        return;
    }
    let mut parts = data.split(|&b| b == 0xFF);
    for name in ["resource", "vendor", "device"] {
        let path = dev.join(name);
        match parts.next() {
            Some(content) => {
                if std::fs::write(&path, content).is_err() {
                    return;
                }
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let mut cfg = HostConfig::uniform(1, 1024, 1);
    cfg.pci_devices.push(PciDeviceConfig {
        sbdf: "0000:03:00.0".to_owned(),
        rmrrs: parts.next().map(rmrr_pairs).unwrap_or_default(),
    });
    let Ok(sim) = Simulator::new(&cfg) else {
        return;
    };
    let host = PciHost::at(&root).with_hypervisor(&sim);
    let Ok(inputs) = pci::pci_inputs(&host, "0000:03:00.0") else {
        return;
    };
    for (mem_mib, vgpu) in [(1024u64, false), (4096, true)] {
        if let Ok(layout) = mem::compute_layout(&mem::layout_input(mem_mib, mem_mib, vgpu, &inputs))
        {
            let high = layout.highmem_end.saturating_sub(1 << 32);
            assert_eq!(
                layout.lowmem_end + high,
                mem_mib << 20,
                "RAM does not add up for {inputs:?}"
            );
        }
    }
}

/// `<start_pfn> <nr_pages>` hex lines (optional `0x`); other lines are skipped.
fn rmrr_pairs(text: &[u8]) -> Vec<[u64; 2]> {
    let hex = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok();
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some([hex(words.next()?)?, hex(words.next()?)?])
        })
        .collect()
}
