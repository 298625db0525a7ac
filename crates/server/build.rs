//! The guest page (src/guest.rs) is embedded from ui/dist-guest, which `bash
//! scripts/build-ui.sh` builds. Say so plainly when it is missing instead of failing in
//! `include_str!`.
fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist-guest");
    for file in ["guest.html", "guest.js", "guest.css"] {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.exists() {
            panic!(
                "{} is missing: build the UI first (bash scripts/build-ui.sh), it holds the guest page",
                path.display()
            );
        }
    }
}
