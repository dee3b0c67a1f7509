//! `construct_cpuid_policy` against the simulator: the policy read back from the domain.

mod setup_support;

use setup_support::*;
use xg_ctrl::{CpuPolicy, DomainOps, HostOps, SystemCpuPolicy};
use xg_guest::cpuid::{
    construct_cpuid_policy, feature, policy_to_featureset, test_bit, CpuidInputs, FeaturesetError,
    FEATURESET_NR_ENTRIES,
};
use xg_guest::error::SetupError;

fn leaf1(p: &CpuPolicy) -> (u32, u32, u32) {
    let l = p.leaves.iter().find(|l| l.leaf == 1).unwrap();
    (l.b, l.c, l.d)
}

#[test]
fn default_featureset_with_nx_and_pae_off() {
    let sim = sim_with_guest(4);
    let inputs = CpuidInputs {
        hvm_default: true,
        ..Default::default()
    };
    construct_cpuid_policy(&sim, DOMID, &inputs).unwrap();
    let got = sim.domain_cpu_policy(DOMID).unwrap();
    let fs = policy_to_featureset(&got);
    let default =
        policy_to_featureset(&sim.system_cpu_policy(SystemCpuPolicy::HvmDefault).unwrap());
    assert!(test_bit(&default, feature::NX) && test_bit(&default, feature::PAE));
    assert!(!test_bit(&fs, feature::NX), "platform/nx absent hides NX");
    assert!(
        !test_bit(&fs, feature::PAE),
        "platform/pae absent hides PAE"
    );
    assert!(
        !test_bit(&fs, feature::LM) && !test_bit(&fs, feature::PAGE1GB),
        "and long mode with it"
    );
    assert!(test_bit(&default, feature::LM));
    assert!(
        !test_bit(&fs, feature::HTT),
        "XenServer HVM topology hides HTT"
    );
    assert_eq!(
        test_bit(&fs, feature::ITSC),
        test_bit(&default, feature::ITSC),
        "ITSC is only added for non-migratable guests"
    );
    assert!(got.msrs.is_empty(), "only CPUID leaves are set");
}

#[test]
fn nomigrate_exposes_itsc_and_cores_per_socket_sets_topology() {
    let sim = sim_with_guest(4);
    let inputs = CpuidInputs {
        hvm_default: true,
        nx: true,
        pae: true,
        nomigrate: true,
        cores_per_socket: 2,
        ..Default::default()
    };
    let set = construct_cpuid_policy(&sim, DOMID, &inputs).unwrap();
    let got = sim.domain_cpu_policy(DOMID).unwrap();
    assert_eq!(set, got);
    let fs = policy_to_featureset(&got);
    assert!(test_bit(&fs, feature::NX) && test_bit(&fs, feature::PAE));
    assert!(test_bit(&fs, feature::ITSC), "host has ITSC");
    let (b, _, d) = leaf1(&got);
    assert_ne!(d & (1 << 28), 0, "HTT for cores-per-socket");
    assert_eq!((b >> 16) & 0xFF, 4, "lppp = cores * 2");
}

#[test]
fn explicit_featureset_is_applied_word_by_word() {
    let sim = sim_with_guest(1);
    let host = policy_to_featureset(&sim.system_cpu_policy(SystemCpuPolicy::HvmDefault).unwrap());
    // Keep words 0..=2 of the default, drop everything else (leaf 7 features).
    let s = format!("{:08x}-{:08x}:{:08x}", host[0], host[1], host[2]);
    let inputs = CpuidInputs {
        featureset: Some(s),
        hvm_default: true,
        nx: true,
        pae: true,
        ..Default::default()
    };
    construct_cpuid_policy(&sim, DOMID, &inputs).unwrap();
    let fs = policy_to_featureset(&sim.domain_cpu_policy(DOMID).unwrap());
    assert_eq!(fs[1], host[1]);
    assert_eq!(fs[2], host[2]);
    assert_eq!(
        fs[0],
        host[0] & !(1 << 28),
        "HTT cleared by the topology rule"
    );
    assert_eq!(fs[5], 0, "leaf 7 EBX from the (short) featureset");
    assert_eq!(fs.len(), FEATURESET_NR_ENTRIES);
}

#[test]
fn featureset_errors_are_reported_with_xenguest_messages() {
    let sim = sim_with_guest(1);
    for (s, msg) in [
        ("1fcbfbff-zz", "Bad 'zz' in featureset"),
        ("1fcbfbff-100000000", "Bad '100000000' in featureset"),
    ] {
        let inputs = CpuidInputs {
            featureset: Some(s.into()),
            ..Default::default()
        };
        let err = construct_cpuid_policy(&sim, DOMID, &inputs).unwrap_err();
        let SetupError::Featureset(f) = &err else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(f.to_string(), msg);
    }
    let long = vec!["0"; FEATURESET_NR_ENTRIES].join("-") + "-1";
    let inputs = CpuidInputs {
        featureset: Some(long.clone()),
        ..Default::default()
    };
    assert!(matches!(
        construct_cpuid_policy(&sim, DOMID, &inputs),
        Err(SetupError::Featureset(FeaturesetError::Truncated { featureset })) if featureset == long
    ));
    // Zero padding beyond the host's words is fine.
    let padded = vec!["0"; FEATURESET_NR_ENTRIES + 3].join("-");
    let inputs = CpuidInputs {
        featureset: Some(padded),
        ..Default::default()
    };
    construct_cpuid_policy(&sim, DOMID, &inputs).unwrap();
}
