//! Every route path of the server: the contract's own ([`ogm_protocol::http::path`]), which the
//! dashboard's requests spell too.

pub use ogm_protocol::http::path::*;
