//! The SVG memory map is well-formed XML and shows every region of the guest.

mod common;

use common::{run, Dev, Scenario};

fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the memory map is valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

fn has(texts: &[String], needle: &str) -> bool {
    texts.iter().any(|t| t.contains(needle))
}

#[test]
fn every_region_is_drawn() {
    let mut sc = Scenario::new(6144);
    let dir = sc.devices(&[Dev {
        sbdf: "0000:07:00.0",
        bars: &[0x1000],
        vendor: 0x8086,
        device: 0x1234,
        rmrr: &[(0xBF800, 0x800)],
    }]);
    sc.vgpu = true;
    sc.pci = Some("0000:07:00.0".into());
    let (r, _) = run(&sc, Some(dir.path()));
    let out = r.result.unwrap();
    let svg = xg_build::svg::memory_map(&out);
    let t = texts(&svg);
    for region in [
        "RAM 4 KiB pages, vnode 0",
        "RAM 2 MiB pages, vnode 0",
        "RAM 1 GiB pages, vnode 0",
        "VGA hole",
        "MMIO hole",
        "RMRR reserved",
        "vGPU VRAM reserved",
        "ioreq server pages",
        "special pages (xenstore 0xfeffc, console 0xfefff)",
        "hvm_info table",
        "firmware loader (hvmloader)",
        "HVM start info",
    ] {
        assert!(has(&t, region), "{region} missing from {t:#?}");
    }
    // Every populated run appears with its address range.
    for p in &out.populated {
        if p.gfn >= 0xfeff0 && p.gfn < 0xff000 {
            continue;
        }
        let start = format!("{:#012x}-", p.gfn << 12);
        assert!(has(&t, &start), "run at {start} missing");
    }
}

#[test]
fn pod_and_pnode_are_labelled() {
    let mut sc = Scenario::new(2048);
    sc.mem_start_mib = 1024;
    let (r, _) = run(&sc, None);
    let t = texts(&xg_build::svg::memory_map(&r.result.unwrap()));
    assert!(has(&t, "(populate-on-demand)"));
    let mut sc = Scenario::new(2048);
    sc.pnode = Some(1);
    let (r, _) = run(&sc, None);
    let t = texts(&xg_build::svg::memory_map(&r.result.unwrap()));
    assert!(has(&t, "vnode 0 on pnode 1"));
}
