//! xenguest's build modes: reading the platform keys, configuring vCPUs and building
//! HVM guests on any [`xg_ctrl::Hypervisor`].
#![forbid(unsafe_code)]
