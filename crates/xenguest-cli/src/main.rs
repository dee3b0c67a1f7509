//! `xenguest`: the domain builder xenopsd runs.
//!
//! Speaks xenguest's command line and control-channel protocol: a successful build writes
//! `result:<store pfn> <console pfn>` to `-controloutfd` (or to stdout when no control
//! fd was given), every failure writes `error:<message>` there and exits 1. Logs go to
//! stderr and syslog only. See `xenguest --help`.
#![forbid(unsafe_code)]

mod args;
mod control;
mod help;
mod logging;
mod man;
mod options;
mod resume;
mod run;
mod summary;

use std::process::ExitCode;

use args::{Args, Mode, Parsed};
use control::Channel;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parsed = args::parse(&argv);
    let verbose_hint = argv.iter().any(|a| a == "-v" || a == "--verbose");
    let quiet_hint = argv.iter().any(|a| a == "-q" || a == "--quiet");
    let (verbose, quiet) = match &parsed {
        Ok(Parsed::Run(a)) => (a.verbose, a.quiet),
        _ => (u8::from(verbose_hint), quiet_hint),
    };
    let logger: &'static logging::Logger =
        Box::leak(Box::new(logging::Logger::new(verbose, quiet)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(logger.max_level());
    }
    log::info!("Command line: {}", argv.join(" "));

    let args = match parsed {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Supports(yes)) => {
            write_stdout(if yes { "true\n" } else { "false\n" });
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Help) => {
            write_stdout(&help::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Man) => {
            write_stdout(&man::man_page());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // The control fd may already have been named before the bad option: xenguest
            // reports there too. Look for it in argv the simple way.
            let mut chan = control_from_argv(&argv);
            return fail(&mut chan, &[format!("{e}\n")]);
        }
    };

    logger.open_syslog(&args.syslog_ident());
    if let Some(path) = &args.debuglog {
        match std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            Ok(f) => logger.set_debuglog(f),
            Err(e) => {
                return fail(
                    &mut Channel::Stdout,
                    &[format!(
                        "Failed to open debug log '{}': {e}\n",
                        path.display()
                    )],
                )
            }
        }
    }

    let mut chan = match open_channel(&args) {
        Ok(c) => c,
        Err(e) => return fail(&mut Channel::Stdout, &[format!("{e}\n")]),
    };
    match dispatch(&args, &mut chan) {
        Ok(()) => {
            log::info!("All done");
            ExitCode::SUCCESS
        }
        Err(lines) => fail(&mut chan, &lines),
    }
}

/// Opens the control channel: the fds named must be open (§1.6 step 4). Without any
/// control fd the result goes to stdout (a person at a shell).
fn open_channel(args: &Args) -> Result<Channel, control::BadFd> {
    if args.control_in_fd != -1 {
        control::check_fd(args.control_in_fd)?;
    }
    if args.control_out_fd != -1 {
        control::open_out(args.control_out_fd)
    } else {
        Ok(Channel::Stdout)
    }
}

fn control_from_argv(argv: &[String]) -> Channel {
    let mut fd = None;
    for w in argv.windows(2) {
        if matches!(w[0].as_str(), "-controloutfd" | "--controloutfd") {
            fd = xg_build::cparse::cli_int(&w[1]);
        }
    }
    fd.and_then(|fd| control::open_out(fd).ok())
        .unwrap_or(Channel::Stdout)
}

fn dispatch(args: &Args, chan: &mut Channel) -> Result<(), Vec<String>> {
    let Some(mode) = args.mode else {
        return Err(vec!["xenguest: no `-mode' option specified\n".to_owned()]);
    };
    if !args.has_required() {
        return Err(vec!["xenguest: missing command line options\n".to_owned()]);
    }
    match mode {
        Mode::HvmBuild => {
            report_done(chan, run::hvm_build(args)?);
            Ok(())
        }
        Mode::PvhBuild => {
            report_done(chan, run::pvh_build(args)?);
            Ok(())
        }
        Mode::LinuxBuild => {
            report_done(chan, run::linux_build(args)?);
            Ok(())
        }
        Mode::ResumeSlow => {
            report_done(chan, resume::resume_slow(args)?);
            Ok(())
        }
        Mode::Test => Err(vec!["xenguest: test mode not supported\n".to_owned()]),
        other => Err(vec![format!(
            "xenguest: mode '{}' is not supported yet\n",
            other.name()
        )]),
    }
}

/// Writes the result line of a build (nothing after `--plan`).
fn report_done(chan: &mut Channel, done: run::Done) {
    match done {
        run::Done::Built(store, console) => chan.result(store, console),
        run::Done::BuiltPv(store, console, protocol) => {
            chan.result_with_protocol(store, console, protocol);
        }
        run::Done::Planned => {}
    }
}

/// Reports `lines` as errors (log + control channel) and returns exit status 1.
fn fail(chan: &mut Channel, lines: &[String]) -> ExitCode {
    for l in lines {
        log::error!("{}", l.trim_end_matches('\n'));
        chan.error(l);
    }
    ExitCode::FAILURE
}

fn write_stdout(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
