//! Scenario 2: `xenguest -mode hvm_build --backend privcmd` on an empty HVM domain created
//! the way xenopsd creates it. The build must succeed with the right result line, leave
//! the domain's memory and HVM params as the simulator predicts for the same inputs, and
//! hvmloader must start after unpause. Also: our build time next to `xl create -p` of the
//! same guest. Runs in dom0 (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xg_ctrl::DomainOps;
use xg_realxen::build::{hvm_build_privcmd, hvm_build_sim, result_line, summary_section};
use xg_realxen::cmd::xl;
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, GuestSpec};
use xg_realxen::report;
use xg_realxen::trace::{memory_effect, read};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

/// Waits up to `timeout` for `needle` in `xl dmesg`; returns the matching lines.
fn wait_dmesg(needle: &str, timeout: Duration) -> Option<Vec<String>> {
    let start = Instant::now();
    loop {
        let text = xl(&["dmesg"]).unwrap_or_default();
        if text.contains(needle) {
            return Some(text.lines().map(str::to_owned).collect());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn hvm_build_matches_simulator_and_runs_hvmloader() {
    let (xc, xs) = xg_realxen::dom0_handles();
    let spec = GuestSpec::small(128, 2);
    let domid = create_like_xenopsd(&xc, &xs, "xg-hvm-build", &spec).expect("create domain");
    let dom = Guard::new(&xc, domid);
    let d = dom.domid();
    println!("created domain {d} like xenopsd: {spec:?}");

    // Debian's tools see the domain's Xenstore directory as xenopsd would leave it.
    let dom_path = format!("/local/domain/{}", d.0);
    let xs_read = |key: &str| {
        xg_realxen::cmd::run_ok("xenstore-read", &[&format!("{dom_path}/{key}")])
            .map(|v| v.trim_end().to_owned())
    };
    assert_eq!(xs_read("name").unwrap(), "xg-hvm-build");
    assert_eq!(xs_read("platform/vcpu/number").unwrap(), "2");
    let listing = xg_realxen::cmd::run_ok("xenstore-ls", &["-p", &dom_path]).expect("xenstore-ls");
    let owner = format!("(n{})", d.0);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("vm-data ") && l.trim_end().ends_with(&owner)),
        "vm-data not owned by the guest:\n{listing}"
    );

    let real_trace = tmp("real.jsonl");
    let real = hvm_build_privcmd(d.0, &spec, Some(&real_trace)).expect("run xenguest");
    println!("xenguest (privcmd) stdout: {}", real.stdout);
    eprintln!("xenguest (privcmd) stderr:\n{}", real.stderr);
    assert!(
        real.success(),
        "xenguest failed: {:?}\n{}",
        real.status,
        real.stderr
    );
    assert_eq!(result_line(&real.stdout), Some("result:1044476 1044479"));
    report(&format!(
        "hvm_build on Xen: domain {d}, {} MiB, {} vCPUs: {:.1} ms",
        spec.mem_mib,
        spec.vcpus,
        real.elapsed.as_secs_f64() * 1e3
    ));

    let sim_trace = tmp("sim.jsonl");
    let sim = hvm_build_sim(d.0, &spec, Some(&sim_trace)).expect("run xenguest on sim");
    assert!(
        sim.success(),
        "sim build failed: {:?}\n{}",
        sim.status,
        sim.stderr
    );
    assert_eq!(result_line(&sim.stdout), result_line(&real.stdout));

    let real_fx = memory_effect(&read(&real_trace).expect("real trace"));
    let sim_fx = memory_effect(&read(&sim_trace).expect("sim trace"));
    println!(
        "real: {} memory calls, {} pages; sim: {} calls, {} pages",
        real_fx.calls.len(),
        real_fx.pages_added,
        sim_fx.calls.len(),
        sim_fx.pages_added
    );
    if let Some(i) = (0..real_fx.calls.len().max(sim_fx.calls.len()))
        .find(|&i| real_fx.calls.get(i) != sim_fx.calls.get(i))
    {
        panic!(
            "memory call {i} differs:\n  xen: {:?}\n  sim: {:?}",
            real_fx.calls.get(i),
            sim_fx.calls.get(i)
        );
    }
    assert_eq!(real_fx.populates, sim_fx.populates);
    assert_eq!(real_fx.memory_map, sim_fx.memory_map, "set_memory_map call");
    // The trace keeps only the e820's length; the summary prints the entries.
    let (real_e820, sim_e820) = (
        summary_section(&real.stderr, "e820"),
        summary_section(&sim.stderr, "e820"),
    );
    println!("e820 on Xen: {real_e820:?}");
    assert!(
        !real_e820.is_empty(),
        "no e820 in the summary:\n{}",
        real.stderr
    );
    assert_eq!(real_e820, sim_e820, "e820");
    assert_eq!(real_fx.hvm_params, sim_fx.hvm_params);

    // What xenguest says it wrote to Xenstore is there, read back by xenstore-read.
    let writes = summary_section(&real.stderr, "xenstore");
    assert!(!writes.is_empty(), "no xenstore writes in the summary");
    for w in &writes {
        let (key, value) = w.split_once(" = ").expect("key = value");
        let path = if key.starts_with('/') {
            key.to_owned()
        } else {
            format!("{dom_path}/{key}")
        };
        let got = xg_realxen::cmd::run_ok("xenstore-read", &[&path]).expect("xenstore-read");
        assert_eq!(got.trim_end(), value, "{path}");
    }
    report(&format!(
        "hvm_build Xenstore writes read back by xenstore-read: {}",
        writes.join(", ")
    ));

    // What Xen itself says about the built domain.
    let info = xc.domain_info(d).expect("getdomaininfo");
    println!("after build: {info:?}");
    assert_eq!(info.tot_pages, sim_fx.pages_added, "tot_pages vs simulator");
    assert!(info.tot_pages <= spec.mem_mib * 256 + spec.slack_kib / 4);
    for (&param, &value) in &sim_fx.hvm_params {
        let p = u32::try_from(param).unwrap();
        assert_eq!(xc.hvm_param(d, p).unwrap(), value, "HVM param {param}");
    }
    assert_eq!(xc.hvm_param(d, 1).unwrap(), 0xfeffc, "STORE_PFN");
    assert_eq!(xc.hvm_param(d, 17).unwrap(), 0xfefff, "CONSOLE_PFN");
    report(&format!(
        "hvm_build on Xen = simulator: {} memory calls, tot_pages {}, {} HVM params",
        real_fx.calls.len(),
        info.tot_pages,
        real_fx.hvm_params.len()
    ));

    // hvmloader runs and prints its banner on Xen's console (port 0xe9).
    let t = Instant::now();
    xc.unpause(d).expect("unpause");
    let banner = format!("(d{}) HVM Loader", d.0);
    let lines = wait_dmesg(&banner, Duration::from_secs(60));
    let elapsed = t.elapsed();
    let lines = lines.unwrap_or_else(|| panic!("no '{banner}' in xl dmesg after {elapsed:?}"));
    for l in lines
        .iter()
        .filter(|l| l.contains(&format!("(d{})", d.0)))
        .take(12)
    {
        println!("{l}");
    }
    report(&format!(
        "hvmloader banner after {:.2} s",
        elapsed.as_secs_f64()
    ));
    assert!(xc.domain_info(d).is_ok());
    xc.destroy(d).expect("destroy");
    remove_store(&xs, d).expect("remove xenstore dir");
}

fn xl_config(name: &str, spec: &GuestSpec) -> PathBuf {
    let path = tmp(&format!("{name}.cfg"));
    let text = format!(
        "name = \"{name}\"\ntype = \"hvm\"\nmemory = {m}\nmaxmem = {m}\nvcpus = {v}\n\
         vga = \"none\"\nnographic = 1\nvnc = 0\nsdl = 0\nserial = \"none\"\nusb = 0\n\
         boot = \"c\"\non_poweroff = \"destroy\"\non_crash = \"preserve\"\n",
        m = spec.mem_mib,
        v = spec.vcpus
    );
    std::fs::write(&path, text).expect("write xl config");
    path
}

/// `xl -vvv create -p`, timestamping libxl's log lines as they arrive: (whole create,
/// libxl's first `xc_dom_allocate` .. last `xc_dom_release` line, i.e. the domain build
/// proper; its logging makes it a little slower than without `-vvv`).
fn xl_create_phases(cfg: &str) -> (Duration, Option<Duration>) {
    let start = Instant::now();
    let mut child = Command::new("xl")
        .args(["-vvv", "create", "-p", cfg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xl");
    let stderr = child.stderr.take().expect("stderr");
    let mut first_alloc = None;
    let mut last_release = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let now = start.elapsed();
        if line.contains("xc_dom_allocate") && first_alloc.is_none() {
            first_alloc = Some(now);
        }
        if line.contains("xc_dom_release") {
            last_release = Some(now);
        }
    }
    let status = child.wait().expect("wait xl");
    assert!(status.success(), "xl -vvv create failed: {status}");
    let build = match (first_alloc, last_release) {
        (Some(a), Some(r)) if r > a => Some(r - a),
        _ => None,
    };
    (start.elapsed(), build)
}

/// Seconds from xenguest's summary line `xenguest: HVM build of domain N done in X ms`.
fn summary_done_in(stderr: &str) -> Option<f64> {
    let rest = stderr.lines().find_map(|l| l.split_once(" done in "))?.1;
    let ms: f64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(ms / 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn timing_xenguest_vs_xl_create() {
    let (xc, xs) = xg_realxen::dom0_handles();
    let spec = GuestSpec::small(256, 2);
    let rounds = 3;
    // What starting the (static) binary costs here: `-supports` exits right after parsing.
    let prog = xg_realxen::xenguest_path().display().to_string();
    let startup = median(
        (0..rounds)
            .map(|_| {
                let f = xg_realxen::cmd::run(&prog, &["-supports", "migration-v2"]).unwrap();
                assert_eq!(f.stdout.trim(), "true");
                f.elapsed.as_secs_f64()
            })
            .collect(),
    );
    report(&format!(
        "xenguest process start + exit (-supports): {:.1} ms",
        startup * 1e3
    ));
    let mut ours_build = Vec::new(); // xenguest process, wall
    let mut ours_inner = Vec::new(); // xenguest's own "done in" (no exec, no exit)
    let mut ours_total = Vec::new(); // domain create + Xenstore + xenguest
    let mut xl_total = Vec::new(); // xl create -p
    let mut xl_vvv_build = Vec::new(); // libxl's xc_dom_allocate .. xc_dom_release
    for round in 0..rounds {
        // Ours: the toolstack's part (domain + Xenstore), then xenguest.
        let t = Instant::now();
        let d = create_like_xenopsd(&xc, &xs, &format!("xg-time-{round}"), &spec)
            .expect("create domain");
        let dom = Guard::new(&xc, d);
        let created = t.elapsed();
        let run = hvm_build_privcmd(d.0, &spec, None).expect("run xenguest");
        assert!(run.success(), "xenguest failed: {}", run.stderr);
        let total = t.elapsed();
        ours_build.push(run.elapsed.as_secs_f64());
        ours_total.push(total.as_secs_f64());
        let inner = summary_done_in(&run.stderr).expect("xenguest summary has 'done in'");
        ours_inner.push(inner);
        if round == 0 {
            for stage in summary_section(&run.stderr, "stages") {
                report(&format!("xenguest stage: {stage}"));
            }
        }
        drop(dom);
        remove_store(&xs, d).expect("remove xenstore dir");
        report(&format!(
            "round {round}: ours create {:.1} ms + xenguest {:.1} ms (build inside: {:.1} ms)",
            created.as_secs_f64() * 1e3,
            run.elapsed.as_secs_f64() * 1e3,
            inner * 1e3
        ));

        // xl: the same guest (type hvm, same memory and vCPUs), created paused.
        let name = format!("xl-time-{round}");
        let cfg = xl_config(&name, &spec);
        let t = Instant::now();
        xl(&["create", "-p", &cfg.display().to_string()]).expect("xl create -p");
        let took = t.elapsed();
        xl_total.push(took.as_secs_f64());
        xl(&["destroy", &name]).expect("xl destroy");

        // Again with -vvv, to time libxl's domain build apart from the rest of xl create
        // (device model start, Xenstore, hotplug scripts).
        let name = format!("xl-vvv-{round}");
        let cfg = xl_config(&name, &spec);
        let (_, build) = xl_create_phases(&cfg.display().to_string());
        xl(&["destroy", &name]).expect("xl destroy");
        let build = build.expect("xl -vvv shows xc_dom_allocate and xc_dom_release");
        xl_vvv_build.push(build.as_secs_f64());
        report(&format!(
            "round {round}: xl create -p {:.1} ms; libxl build {:.1} ms",
            took.as_secs_f64() * 1e3,
            build.as_secs_f64() * 1e3
        ));
    }
    let b = median(ours_build);
    let i = median(ours_inner);
    let o = median(ours_total);
    let x = median(xl_total);
    let xb = median(xl_vvv_build);
    report(&format!(
        "timing ({} MiB, {} vCPUs, median of {rounds}): xenguest process {:.1} ms \
         (build inside it {:.1} ms); domain create + xenguest {:.1} ms; \
         xl create -p {:.1} ms (libxl build inside it {:.1} ms)",
        spec.mem_mib,
        spec.vcpus,
        b * 1e3,
        i * 1e3,
        o * 1e3,
        x * 1e3,
        xb * 1e3
    ));
    report(&format!(
        "ratios: xenguest / xl create -p = {:.3}; (create + xenguest) / xl create -p = {:.3}; \
         xenguest build / libxl build = {:.3}",
        b / x,
        o / x,
        i / xb
    ));
    assert!(b > 0.0 && x > 0.0 && xb > 0.0);
}
