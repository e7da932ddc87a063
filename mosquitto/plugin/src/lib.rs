//! `libogm_mosquitto_plugin.so`: a Mosquitto 2.0 plugin (plugin API version 5) for the rules the
//! password file and the ACL file cannot express. `mosquitto/conf.d/policy.conf` loads it and
//! gives its options; a broker that cannot load it does not start.
//!
//! Layout:
//! - [`policy`]: the rules, pure and tested on the host: (user, client id, clean session,
//!   protocol) → accepted or refused; (user, subscription filter) → accepted or refused.
//! - `ffi.rs`: Mosquitto's C ABI (exported `mosquitto_plugin_*` functions, the BASIC_AUTH and
//!   ACL_CHECK callbacks). The crate's only unsafe code; it decides nothing itself.
//!
//! Invariant: the plugin only ever refuses or defers. Passwords stay with the password file and
//! topic access with the ACL file; an answer of "defer" hands the decision on to them.

#[allow(unsafe_code)] // Mosquitto's C plugin ABI; each unsafe block says why it is sound.
mod ffi;
pub mod policy;
