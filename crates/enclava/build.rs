//! Records the optimisation level this binary is built with, so that every `enclava bench` can
//! mark a binary built without optimisation (the `quickstart` profile, opt-level 0) as not
//! representative: `debug_assertions` alone does not tell, since that profile turns them off.
fn main() {
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=ENCLAVA_OPT_LEVEL={opt_level}");
    println!("cargo:rerun-if-changed=build.rs");
}
