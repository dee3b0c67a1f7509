//! The hand-written message numbers and error table checked against the installed C
//! header (`/usr/include/xen/io/xs_wire.h`, from libxen-dev) by compiling a tiny C
//! program. Skipped when no C compiler or header is present, except under `CI=true`.
#![allow(clippy::print_stderr)]

use std::process::Command;

use xg_store::wire::{self, MsgType};

const HEADER: &str = "/usr/include/xen/io/xs_wire.h";

const PROGRAM: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>
#define T(x) printf("T %s %d\n", #x, (int)(x));
int main(void) {
    T(XS_CONTROL) T(XS_DEBUG) T(XS_DIRECTORY) T(XS_READ) T(XS_GET_PERMS) T(XS_WATCH)
    T(XS_UNWATCH) T(XS_TRANSACTION_START) T(XS_TRANSACTION_END) T(XS_INTRODUCE)
    T(XS_RELEASE) T(XS_GET_DOMAIN_PATH) T(XS_WRITE) T(XS_MKDIR) T(XS_RM) T(XS_SET_PERMS)
    T(XS_WATCH_EVENT) T(XS_ERROR) T(XS_IS_DOMAIN_INTRODUCED) T(XS_RESUME) T(XS_SET_TARGET)
    T(XS_RESET_WATCHES) T(XS_DIRECTORY_PART) T(XS_TYPE_COUNT) T(XS_INVALID)
    printf("C XENSTORE_PAYLOAD_MAX %d\n", XENSTORE_PAYLOAD_MAX);
    printf("C XENSTORE_ABS_PATH_MAX %d\n", XENSTORE_ABS_PATH_MAX);
    printf("C XENSTORE_REL_PATH_MAX %d\n", XENSTORE_REL_PATH_MAX);
    printf("C SIZEOF_XSD_SOCKMSG %d\n", (int)sizeof(struct xsd_sockmsg));
    for (unsigned i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        printf("E %s %d\n", xsd_errors[i].errstring, xsd_errors[i].errnum);
    return 0;
}
"#;

fn c_output() -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("abi.c");
    let bin = dir.path().join("abi");
    std::fs::write(&src, PROGRAM).unwrap();
    let compiled = std::path::Path::new(HEADER).exists()
        && Command::new("cc")
            .arg(&src)
            .arg("-o")
            .arg(&bin)
            .status()
            .is_ok_and(|s| s.success());
    if !compiled {
        assert!(
            !xg_store::fixture::required_by_ci(),
            "cannot compile against {HEADER} under CI"
        );
        eprintln!("SKIPPED: no C compiler or {HEADER}");
        return None;
    }
    let out = Command::new(&bin).output().unwrap();
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn message_types_errors_and_limits_match_the_c_header() {
    let Some(out) = c_output() else { return };
    let mut types = 0;
    let mut errors = 0;
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (kind, name, value) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let value: i64 = value.parse().unwrap();
        match kind {
            "T" => {
                types += 1;
                let ours = match name {
                    "XS_DEBUG" => i64::from(MsgType::DEBUG as u32),
                    "XS_TYPE_COUNT" => i64::from(MsgType::TYPE_COUNT),
                    "XS_INVALID" => i64::from(MsgType::INVALID),
                    _ => {
                        let t = MsgType::ALL
                            .iter()
                            .find(|t| t.name() == name)
                            .unwrap_or_else(|| panic!("{name} missing in MsgType"));
                        i64::from(*t as u32)
                    }
                };
                assert_eq!(ours, value, "{name}");
            }
            "C" => {
                let ours = match name {
                    "XENSTORE_PAYLOAD_MAX" => wire::PAYLOAD_MAX,
                    "XENSTORE_ABS_PATH_MAX" => wire::ABS_PATH_MAX,
                    "XENSTORE_REL_PATH_MAX" => wire::REL_PATH_MAX,
                    "SIZEOF_XSD_SOCKMSG" => wire::HEADER_LEN,
                    other => panic!("unexpected {other}"),
                };
                assert_eq!(i64::try_from(ours).unwrap(), value, "{name}");
            }
            "E" => {
                errors += 1;
                assert_eq!(i64::from(wire::errno_of(name)), value, "{name}");
                assert_eq!(wire::name_of(i32::try_from(value).unwrap()), name);
            }
            other => panic!("unexpected line kind {other}"),
        }
    }
    assert_eq!(types, 25);
    assert_eq!(errors, 16, "every xsd_errors entry checked");
    assert_eq!(MsgType::ALL.len(), 22);
}
