//! Mosquitto's plugin ABI (version 5, as in Mosquitto 2.0.11's `include/mosquitto_plugin.h`
//! and `include/mosquitto_broker.h`): the three exported functions, two callbacks, and the
//! broker functions they call. The only unsafe code of the crate; every decision is made by
//! [`crate::policy`].
//!
//! Order of the checks (`src/security.c`, `src/security_default.c` in 2.0.11): a plugin's
//! callbacks are registered when the plugin loads, before the password file's and the ACL
//! file's, and a reload (SIGHUP) unregisters and appends only the latter again. The first
//! callback that does not answer `MOSQ_ERR_PLUGIN_DEFER` decides. So these callbacks are always
//! asked first, and they answer only "refused" or "defer": they never accept a client or a
//! subscription on their own, the password and ACL files still do.
//!
//! Struct layouts below mirror the C headers field for field (`#[repr(C)]`); Mosquitto 2.0 keeps
//! them stable for plugin version 5 (the `future` fields are reserved space).

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use crate::policy::{Connect, Policy};

// include/mosquitto.h
const MOSQ_ERR_SUCCESS: c_int = 0;
const MOSQ_ERR_INVAL: c_int = 3;
const MOSQ_ERR_AUTH: c_int = 11;
const MOSQ_ERR_ACL_DENIED: c_int = 12;
const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;
const MOSQ_LOG_NOTICE: c_int = 1 << 1;
const MOSQ_LOG_ERR: c_int = 1 << 3;
// include/mosquitto_plugin.h
const MOSQ_PLUGIN_VERSION: c_int = 5;
const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
// include/mosquitto_broker.h, enum mosquitto_plugin_event
const MOSQ_EVT_ACL_CHECK: c_int = 2;
const MOSQ_EVT_BASIC_AUTH: c_int = 3;

/// `struct mosquitto` (a client), opaque.
#[repr(C)]
struct Client {
    _private: [u8; 0],
}

/// `mosquitto_plugin_id_t`, opaque.
#[repr(C)]
pub(crate) struct PluginId {
    _private: [u8; 0],
}

/// `struct mosquitto_opt`.
#[repr(C)]
pub(crate) struct MosquittoOpt {
    key: *mut c_char,
    value: *mut c_char,
}

/// `struct mosquitto_evt_basic_auth`.
#[repr(C)]
struct EvtBasicAuth {
    future: *mut c_void,
    client: *mut Client,
    username: *mut c_char,
    password: *mut c_char,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_acl_check`.
#[repr(C)]
struct EvtAclCheck {
    future: *mut c_void,
    client: *mut Client,
    topic: *const c_char,
    payload: *const c_void,
    properties: *mut c_void,
    access: c_int,
    payloadlen: u32,
    qos: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

// SAFETY: these are the broker's exported functions with the signatures of
// include/mosquitto_broker.h in 2.0.11 (checked there; `nm -D /usr/sbin/mosquitto` lists them).
// The plugin is only ever loaded into the broker, which resolves them at dlopen.
unsafe extern "C" {
    fn mosquitto_callback_register(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
    ) -> c_int;
    fn mosquitto_client_id(client: *const Client) -> *const c_char;
    fn mosquitto_client_username(client: *const Client) -> *const c_char;
    fn mosquitto_client_clean_session(client: *const Client) -> bool;
    fn mosquitto_client_protocol_version(client: *const Client) -> c_int;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
}

/// What `mosquitto_plugin_init` hands the broker as `userdata`, and gets back in callbacks.
struct Plugin {
    identifier: *mut PluginId,
    policy: Policy,
}

/// Writes one line to the broker's log.
fn log(level: c_int, message: &str) {
    let line = CString::new(format!("ogm plugin: {message}").replace('\0', " "))
        .unwrap_or_else(|_| CString::from(c"ogm plugin: (unprintable message)"));
    // SAFETY: a constant "%s" format with one NUL-terminated string argument, as printf expects.
    unsafe { mosquitto_log_printf(level, c"%s".as_ptr(), line.as_ptr()) };
}

/// A C string from the broker as `&str`; `None` when it is NULL or not UTF-8 (Mosquitto checks
/// UTF-8 itself, so the latter does not happen with MQTT strings).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn str_from<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Called by the broker right after loading: plugin version 5 if the broker offers it.
///
/// # Safety
/// `supported_versions` points to `supported_version_count` ints (the broker's contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(
    supported_version_count: c_int,
    supported_versions: *const c_int,
) -> c_int {
    let count = usize::try_from(supported_version_count).unwrap_or(0);
    if supported_versions.is_null() || count == 0 {
        return -1;
    }
    // SAFETY: the broker passes an array of `count` ints.
    let offered = unsafe { std::slice::from_raw_parts(supported_versions, count) };
    if offered.contains(&MOSQ_PLUGIN_VERSION) {
        MOSQ_PLUGIN_VERSION
    } else {
        -1
    }
}

/// Reads the options into a [`Policy`] and registers the callbacks. Any error stops the broker
/// from starting: a broker without this policy must not run.
///
/// # Safety
/// The broker's contract: `identifier` is this plugin's id, `userdata` is writable, `options`
/// points to `option_count` options whose strings live until cleanup.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut PluginId,
    userdata: *mut *mut c_void,
    options: *mut MosquittoOpt,
    option_count: c_int,
) -> c_int {
    if identifier.is_null() || userdata.is_null() {
        return MOSQ_ERR_INVAL;
    }
    let count = usize::try_from(option_count).unwrap_or(0);
    let opts: &[MosquittoOpt] = if options.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: the broker passes an array of `option_count` options.
        unsafe { std::slice::from_raw_parts(options, count) }
    };
    let mut pairs = Vec::with_capacity(opts.len());
    for o in opts {
        // SAFETY: option keys and values are NUL-terminated strings owned by the broker.
        match unsafe { (str_from(o.key), str_from(o.value)) } {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => {
                log(MOSQ_LOG_ERR, "an option is not UTF-8");
                return MOSQ_ERR_INVAL;
            }
        }
    }
    let policy = match Policy::from_options(pairs) {
        Ok(p) => p,
        Err(e) => {
            log(MOSQ_LOG_ERR, &e.to_string());
            return MOSQ_ERR_INVAL;
        }
    };
    log(
        MOSQ_LOG_NOTICE,
        &format!(
            "client ids bound to user names; clean session required for {:?}; $share/... only for {:?}",
            policy.clean_session_users(),
            policy.shared_subscription_users()
        ),
    );
    let plugin = Box::into_raw(Box::new(Plugin { identifier, policy }));
    for (event, cb) in [
        (MOSQ_EVT_BASIC_AUTH, on_basic_auth as Callback),
        (MOSQ_EVT_ACL_CHECK, on_acl_check as Callback),
    ] {
        // SAFETY: `identifier` is ours; the callbacks have the generic signature; `plugin`
        // stays valid until `mosquitto_plugin_cleanup`, which unregisters them first.
        let rc = unsafe {
            mosquitto_callback_register(identifier, event, cb, std::ptr::null(), plugin.cast())
        };
        if rc != MOSQ_ERR_SUCCESS {
            log(MOSQ_LOG_ERR, &format!("registering callback {event}: {rc}"));
            // SAFETY: `plugin` came from Box::into_raw above and was not freed.
            unsafe { release(plugin) };
            return rc;
        }
    }
    // SAFETY: `userdata` is non-NULL and writable (checked above; the broker's contract).
    unsafe { *userdata = plugin.cast() };
    MOSQ_ERR_SUCCESS
}

/// Unregisters the callbacks and frees the policy.
///
/// # Safety
/// `userdata` is what `mosquitto_plugin_init` stored (or NULL if it failed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _options: *mut MosquittoOpt,
    _option_count: c_int,
) -> c_int {
    if !userdata.is_null() {
        // SAFETY: `userdata` is the `Plugin` made by `mosquitto_plugin_init`, freed only here.
        unsafe { release(userdata.cast()) };
    }
    MOSQ_ERR_SUCCESS
}

/// Unregisters both callbacks (unregistering one that is not registered is harmless) and frees
/// the plugin.
///
/// # Safety
/// `plugin` came from `Box::into_raw` in `mosquitto_plugin_init` and is not used afterwards.
unsafe fn release(plugin: *mut Plugin) {
    // SAFETY: per this function's contract.
    let plugin = unsafe { Box::from_raw(plugin) };
    for (event, cb) in [
        (MOSQ_EVT_BASIC_AUTH, on_basic_auth as Callback),
        (MOSQ_EVT_ACL_CHECK, on_acl_check as Callback),
    ] {
        // SAFETY: the identifier the broker gave us, still valid during cleanup.
        unsafe { mosquitto_callback_unregister(plugin.identifier, event, cb, std::ptr::null()) };
    }
}

/// MOSQ_EVT_BASIC_AUTH: refuses a connection the policy refuses, else defers to the password
/// file. Mosquitto has set the client's id, user name and clean-session flag by now
/// (`src/handle_connect.c`), and takes over an existing session of that id only after this
/// check has passed.
///
/// # Safety
/// The broker's contract: `event_data` points to a `mosquitto_evt_basic_auth`, `userdata` is
/// the `Plugin` registered with this callback.
unsafe extern "C" fn on_basic_auth(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    if event_data.is_null() || userdata.is_null() {
        return MOSQ_ERR_AUTH;
    }
    // SAFETY: per this function's contract; both live for the duration of the call.
    let (ed, plugin) = unsafe {
        (
            &*event_data.cast::<EvtBasicAuth>(),
            &*userdata.cast::<Plugin>(),
        )
    };
    let client = ed.client.cast_const();
    // SAFETY: `client` is the connecting client; the strings it returns live as long as it.
    let (username, client_id, clean_session, protocol_version) = unsafe {
        (
            str_from(ed.username),
            str_from(mosquitto_client_id(client)),
            mosquitto_client_clean_session(client),
            mosquitto_client_protocol_version(client),
        )
    };
    let Some(client_id) = client_id else {
        return MOSQ_ERR_AUTH;
    };
    let connect = Connect {
        username,
        client_id,
        clean_session,
        protocol_version,
    };
    match plugin.policy.check_connect(&connect) {
        Ok(()) => MOSQ_ERR_PLUGIN_DEFER,
        Err(refusal) => {
            log(
                MOSQ_LOG_NOTICE,
                &format!(
                    "refused client {client_id:?} (user {:?}): {refusal}",
                    username.unwrap_or("")
                ),
            );
            MOSQ_ERR_AUTH
        }
    }
}

/// MOSQ_EVT_ACL_CHECK: refuses a SUBSCRIBE the policy refuses (Mosquitto's ACL file never
/// checks SUBSCRIBE), else defers to the ACL file. Called for every message delivered and
/// published too, so everything but a SUBSCRIBE returns at once.
///
/// # Safety
/// As [`on_basic_auth`], with a `mosquitto_evt_acl_check`.
unsafe extern "C" fn on_acl_check(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    if event_data.is_null() || userdata.is_null() {
        return MOSQ_ERR_ACL_DENIED;
    }
    // SAFETY: per this function's contract.
    let (ed, plugin) = unsafe {
        (
            &*event_data.cast::<EvtAclCheck>(),
            &*userdata.cast::<Plugin>(),
        )
    };
    if ed.access != MOSQ_ACL_SUBSCRIBE {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    let client = ed.client.cast_const();
    // SAFETY: the topic is the filter being checked; the user name belongs to the live client.
    let (filter, username) = unsafe {
        (
            str_from(ed.topic),
            str_from(mosquitto_client_username(client)),
        )
    };
    let Some(filter) = filter else {
        return MOSQ_ERR_ACL_DENIED;
    };
    match plugin.policy.check_subscribe(username, filter) {
        Ok(()) => MOSQ_ERR_PLUGIN_DEFER,
        Err(refusal) => {
            // SAFETY: as above.
            let id = unsafe { str_from(mosquitto_client_id(client)) }.unwrap_or("");
            log(
                MOSQ_LOG_NOTICE,
                &format!("refused {filter:?} to client {id:?}: {refusal}"),
            );
            MOSQ_ERR_ACL_DENIED
        }
    }
}
