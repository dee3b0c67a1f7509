//! The `--help` text.

/// Printed by `xenguest --help` (on stdout, the one exception to "only the result").
pub const HELP: &str = "\
xenguest: the Xen domain builder run by xenopsd

Usage: xenguest -mode hvm_build -domid D -mem_max_mib M -mem_start_mib S -image FILE
                -store_port P -console_port C [options]

Every option is a long option written with one or two dashes (-domid or --domid),
takes its value as the next word or after '=', and may be abbreviated to a unique prefix.

xenguest options (as xenopsd passes them):
  -mode NAME            hvm_build (supported); save, hvm_save, restore, hvm_restore,
                        resume_slow, linux_build, pvh_build, listen: not supported yet
  -domid N              the domain to build
  -mem_max_mib M        guest RAM in MiB
  -mem_start_mib S      initial allocation in MiB; S < M builds with populate-on-demand
  -mem_pnode N          allocate all guest RAM on physical NUMA node N: every populate
                        call carries XENMEMF_exact_node(N), and the build first claims
                        its pages (the claim is released when the build ends)
  -image FILE           the firmware loader (hvmloader)
  -store_port P         Xenstore event channel;  -store_domid D   its backend (0)
  -console_port P       console event channel;   -console_domid D its backend (0)
  -pci_passthrough L    comma-separated SBDFs (SSSS:BB:DD.F) of passed-through devices
  -vgpu                 an NVIDIA vGPU is attached (bigger MMIO hole, VRAM reservation)
  -force                skip the safety checks
  -controloutfd N       fd for the result:/error: lines (default: result on stdout)
  -controlinfd N        fd xenopsd writes to (save only)
  -debuglog FILE        also append every log message to FILE
  -supports FEATURE     print true/false (migration-v2: true) and exit
  -cmdline, -ramdisk, -features, -flags, -module, -fd, -live, -debug
                        accepted for the other modes;  -fake, -fork,
                        -no_incr_generationid  accepted and ignored

This implementation's options:
  --backend sim|privcmd simulated hypervisor (default) or /dev/xen/privcmd
  --host FILE           the simulated host (TOML), default: the built-in one
  --store memory|socket in-memory Xenstore (default with sim) or xenstored at
                        XENSTORED_PATH (default with privcmd)
  --platform KEY=VALUE  seed the in-memory store; KEY is relative to the domain's
                        platform/ directory unless it starts with platform/,
                        hvmloader/, vm-data/ or / (repeatable); the memory store
                        gets vcpu/number=1 and vcpu/current=1 unless given
  --platform-file FILE  KEY=VALUE lines, '#' comments
  --sysfs-root DIR      where to read PCI devices from (default /sys)
  --trace FILE.jsonl    record every hypercall and Xenstore operation
  --plan                print the memory plan as JSON on stdout, build nothing
  --populate compat|batched
                        populate calls exactly as libxenguest (default) or batched
  --memory-map FILE.svg draw the guest physical memory map
  -v, --verbose         more log on stderr (twice: debug)
  -q, --quiet           only errors on stderr, no summary
  -h, --help            this text

With --backend sim the domain is created by xenguest itself (HVM, HAP, max_vcpus from
platform/vcpu/number), as xenopsd's build_pre would. If -image does not exist and the
backend is sim, the built-in test firmware is used (the summary says which).

Output: result:<store pfn> <console pfn> on the control fd (or stdout); errors as
error:<message>; exit status 0 or 1.
";
