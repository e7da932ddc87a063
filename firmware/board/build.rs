//! Compiles the settings in: reads `cfg.toml` (or the file named by `OGM_BOARD_CFG`, relative to
//! this directory), refuses placeholders and invalid values with every problem listed, and writes
//! `$OUT_DIR/config.rs`. Also passes the esp-hal linker script.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let name = std::env::var("OGM_BOARD_CFG").unwrap_or_else(|_| "cfg.toml".into());
    let path = dir.join(&name);
    println!("cargo:rerun-if-env-changed=OGM_BOARD_CFG");
    println!("cargo:rerun-if-changed={}", path.display());

    let config = match ogm_board_config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "\nerror: the board settings in {} cannot be used.\n",
                path.display()
            );
            eprintln!("{e}");
            eprintln!("See firmware/board/README.md (\"Settings\").\n");
            std::process::exit(1);
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("config.rs");
    if let Err(e) = std::fs::write(&out, config.to_rust()) {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
    println!("cargo:rustc-link-arg-bins=-Tlinkall.x");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("xtensa") {
        println!("cargo:rustc-link-arg-bins=-nostartfiles");
    }
}
