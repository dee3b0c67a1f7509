/*
 * Input of `cargo xtask codegen`: the Xen 4.17 public headers shipped by Debian 12's
 * libxen-dev package, as the toolstack sees them. Only includes and the defines the
 * headers require, plus names for values bindgen cannot reach through a macro. The
 * allowlists live in xtask/src/codegen.rs.
 */

/* domctl.h and sysctl.h refuse to be included outside Xen and its tools. Defining it
 * also selects the latest interface version (__XEN_LATEST_INTERFACE_VERSION__). */
#define __XEN_TOOLS__ 1

#include <stdint.h>

#include <xen/xen.h>
#include <xen/version.h>
#include <xen/memory.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/elfnote.h>
#include <xen/hvm/params.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/hvm_info_table.h>
#include <xen/hvm/save.h>
#include <xen/hvm/e820.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/xs_wire.h>

/* HVM save record typecodes exist only as array sizes inside DECLARE_HVM_SAVE_TYPE, which
 * bindgen cannot evaluate; name the records a domain builder writes, with the type of
 * hvm_save_descriptor.typecode. */
static const uint16_t XG_HVM_SAVE_CODE_END = HVM_SAVE_CODE(END);
static const uint16_t XG_HVM_SAVE_CODE_HEADER = HVM_SAVE_CODE(HEADER);
static const uint16_t XG_HVM_SAVE_CODE_CPU = HVM_SAVE_CODE(CPU);
static const uint16_t XG_HVM_SAVE_CODE_LAPIC = HVM_SAVE_CODE(LAPIC);
static const uint16_t XG_HVM_SAVE_CODE_LAPIC_REGS = HVM_SAVE_CODE(LAPIC_REGS);
static const uint16_t XG_HVM_SAVE_CODE_MTRR = HVM_SAVE_CODE(MTRR);
