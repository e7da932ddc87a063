//! Entry point: mounts the dashboard. Everything else lives in the library.

fn main() {
    #[cfg(target_arch = "wasm32")]
    ogm_frontend::mount();
}
