//! Our libxenguest for HVM guests: memory layout, `meminit_hvm`, and guest setup.
#![forbid(unsafe_code)]
