/*
 * pv-meminit-oracle: drives the REAL libxenguest 4.17 (Debian 12) through a
 * 64-bit PV memory build, xc_dom_boot_mem_init() -> meminit_pv(), against
 * the recording libxenctrl stand-in of shared/fixtures/libxenguest-oracle.
 *
 * Built by crates/xg-guest/tests/oracle_pv.rs into the target directory,
 * next to the fixture's meminit-oracle, so that its RPATH $ORIGIN/lib finds
 * the stand-in libxenctrl.so.4.17 (never the real one).
 *
 * Steps, as xenguest's linux_build and libxl__build_dom take them for PV:
 *   xc_interface_open, xc_dom_allocate (PV container by default),
 *   xc_dom_boot_xen_init, [xc_dom_parse_image -> guest_type],
 *   xc_dom_mem_init, xc_dom_boot_mem_init.
 * The ELF parse is replaced by setting dom->guest_type to "xen-3.0-x86_64"
 * (what elf_xen_parse gives a 64-bit kernel, and all meminit needs), so
 * xc_dom_mem_init() finds the real xc_dom_64 hooks and so meminit_pv.
 *
 * meminit_pv starts with x86_compat(): XEN_DOMCTL_set_address_size through
 * do_domctl(), an inline helper of xc_private.h that ends in an unversioned
 * xencall1(). The stand-in answers that with ENOSYS, so this program defines
 * and exports its own xencall1 (the executable comes first in the symbol
 * lookup scope): it records the domctl and answers it. Its records carry no
 * "seq" (the stand-in's counter is private to it); comparators drop "seq".
 *
 * Options:
 *   --mem-mib N        xc_dom_mem_init(dom, N) (required)
 *   --total-pages P    dom->total_pages = P afterwards (page-granular sizes)
 *   --domid D          guest domid (default 1)
 *   --trace FILE       trace file (default $ORACLE_TRACE)
 * Environment, besides the stand-in's ORACLE_*:
 *   ORACLE_ADDRESS_SIZE_ERRNO=E  XEN_DOMCTL_set_address_size fails with E
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xencall.h>
#include <xenguest.h>

/* from the stand-in libxenctrl */
void oracle_trace_raw(const char *json_line);
int oracle_summary(char *buf, size_t len);

static uint32_t guest_domid = 1;

int xencall1(xencall_handle *xcall, unsigned int op, uint64_t arg1)
{
    struct xen_domctl *domctl = (struct xen_domctl *)(uintptr_t)arg1;
    char line[256];
    const char *fail = getenv("ORACLE_ADDRESS_SIZE_ERRNO");
    int err = fail && *fail ? atoi(fail) : 0;

    if ( op != __HYPERVISOR_domctl || !domctl ||
         domctl->cmd != XEN_DOMCTL_set_address_size )
    {
        snprintf(line, sizeof(line),
                 "{\"call\":\"unexpected\",\"name\":\"xencall1\",\"op\":%u"
                 ",\"cmd\":%u}", op, domctl ? domctl->cmd : 0);
        oracle_trace_raw(line);
        errno = ENOSYS;
        return -1;
    }
    if ( err )
        snprintf(line, sizeof(line),
                 "{\"call\":\"set_address_size\",\"domid\":%u,\"size\":%u"
                 ",\"rc\":-1,\"errno\":%d}",
                 domctl->domain, domctl->u.address_size.size, err);
    else
        snprintf(line, sizeof(line),
                 "{\"call\":\"set_address_size\",\"domid\":%u,\"size\":%u"
                 ",\"rc\":0}",
                 domctl->domain, domctl->u.address_size.size);
    oracle_trace_raw(line);
    if ( domctl->domain != guest_domid )
        fprintf(stderr, "set_address_size for domain %u\n", domctl->domain);
    if ( err )
    {
        errno = err;
        return -1;
    }
    return 0;
}

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if ( errno || *end || end == s )
    {
        fprintf(stderr, "bad value for %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mem-mib",     required_argument, NULL, 'm' },
        { "total-pages", required_argument, NULL, 'P' },
        { "domid",       required_argument, NULL, 'd' },
        { "trace",       required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 }
    };
    uint64_t mem_mib = 0, total_pages = 0;
    int have_mem = 0, c, rc, rc_mem_init = -1;
    const char *trace = NULL;
    xc_interface *xch;
    struct xc_dom_image *dom;
    char line[1024], summary[512];

    while ( (c = getopt_long(argc, argv, "", opts, NULL)) != -1 )
    {
        switch ( c )
        {
        case 'm': mem_mib = parse_u64(optarg, "--mem-mib"); have_mem = 1; break;
        case 'P': total_pages = parse_u64(optarg, "--total-pages"); break;
        case 'd': guest_domid = parse_u64(optarg, "--domid"); break;
        case 'T': trace = optarg; break;
        default:
            fprintf(stderr, "usage: %s --mem-mib N [--total-pages P] "
                    "[--domid D] [--trace FILE]\n", argv[0]);
            return 2;
        }
    }
    if ( !have_mem || optind != argc )
    {
        fprintf(stderr, "--mem-mib is required\n");
        return 2;
    }
    if ( trace )
        setenv("ORACLE_TRACE", trace, 1);

    xch = xc_interface_open(NULL, NULL, 0);
    if ( !xch )
    {
        fprintf(stderr, "xc_interface_open failed\n");
        return 1;
    }
    dom = xc_dom_allocate(xch, NULL, NULL);
    if ( !dom )
    {
        fprintf(stderr, "xc_dom_allocate failed\n");
        return 1;
    }

    snprintf(line, sizeof(line),
             "{\"call\":\"config\",\"domid\":%u,\"mem_mib\":%" PRIu64
             ",\"total_pages\":%" PRIu64 ",\"pv\":%s}",
             guest_domid, mem_mib, total_pages,
             dom->container_type == XC_DOM_PV_CONTAINER ? "true" : "false");
    oracle_trace_raw(line);

    rc = xc_dom_boot_xen_init(dom, xch, guest_domid);
    if ( rc == 0 )
    {
        /* What elf_xen_parse() sets for a 64-bit PV kernel. */
        dom->guest_type = "xen-3.0-x86_64";
        rc = xc_dom_mem_init(dom, (unsigned int)mem_mib);
        if ( rc == 0 )
        {
            if ( total_pages )
                dom->total_pages = total_pages;
            rc_mem_init = xc_dom_boot_mem_init(dom);
        }
        else
            fprintf(stderr, "xc_dom_mem_init failed: %d\n", rc);
    }
    else
        fprintf(stderr, "xc_dom_boot_xen_init failed: %d\n", rc);

    oracle_summary(summary, sizeof(summary));
    snprintf(line, sizeof(line),
             "{\"call\":\"result\",\"rc\":%d,\"total_pages\":%" PRIu64
             ",\"p2m_size\":%" PRIu64 ",%s}",
             rc_mem_init, (uint64_t)dom->total_pages, (uint64_t)dom->p2m_size,
             summary);
    oracle_trace_raw(line);
    fprintf(stderr, "%s\n", line);

    xc_dom_release(dom);
    xc_interface_close(xch);
    return rc_mem_init == 0 ? 0 : 1;
}
