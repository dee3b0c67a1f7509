//! Fault injection: fail the Nth call of an operation with a chosen errno.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

use super::config::FaultRule;

/// Every operation name the simulator counts, as it appears in trace records.
pub const OP_NAMES: &[&str] = &[
    "xen_version",
    "physinfo",
    "numainfo",
    "system_cpu_policy",
    "create_domain",
    "domain_info",
    "set_max_vcpus",
    "set_max_mem",
    "unpause",
    "destroy",
    "resume_domain",
    "set_vcpu_affinity",
    "vcpu_affinity",
    "set_node_affinity",
    "node_affinity",
    "sched_credit_get",
    "sched_credit_set",
    "set_tsc_info",
    "set_time_offset",
    "set_hvm_param",
    "hvm_param",
    "domain_cpu_policy",
    "set_domain_cpu_policy",
    "hvm_context",
    "set_hvm_context",
    "populate_physmap",
    "populate_physmap_exact",
    "decrease_reservation",
    "claim_pages",
    "set_pod_target",
    "set_memory_map",
    "reserved_device_memory_map",
    "write_guest",
    "read_guest",
    "clear_guest_pages",
    "write_grant_table",
    "read_grant_table",
    "populate_physmap_mfns",
    "set_address_size",
    "write_machine",
    "read_machine",
    "set_vcpu_context",
    "hypercall_init",
    "pin_table",
    "address_size",
    "maximum_gpfn",
    "vcpu_context",
    "reset_vcpu",
];

/// Checks that `op` names a simulated operation.
pub fn check_op_name(op: &str) -> Result<&'static str> {
    OP_NAMES
        .iter()
        .find(|&&n| n == op)
        .copied()
        .ok_or_else(|| Error::HostConfig {
            detail: format!("unknown operation {op:?} in a fault rule"),
        })
}

/// Call counters and the rules that turn some calls into failures.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Vec<(&'static str, FaultRule)>,
    calls: BTreeMap<&'static str, u64>,
}

impl Faults {
    /// Adds a rule (its name must be valid).
    pub fn add(&mut self, rule: FaultRule) -> Result<()> {
        let op = check_op_name(&rule.op)?;
        self.rules.push((op, rule));
        Ok(())
    }

    /// Counts one call of `op`; returns the injected error if this call must fail.
    pub fn on_call(&mut self, op: &'static str) -> Result<()> {
        let n = self.calls.entry(op).or_insert(0);
        *n += 1;
        let n = *n;
        for (name, rule) in &self.rules {
            if *name == op && n >= rule.nth && n - rule.nth < rule.times {
                log::debug!("sim: injecting errno {} into call {n} of {op}", rule.errno);
                return Err(Error::hypercall(op, rule.errno));
            }
        }
        Ok(())
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }
}
