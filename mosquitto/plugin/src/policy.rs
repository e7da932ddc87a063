//! The policy, pure: which user may connect with which client id and session, and who may
//! subscribe to a shared subscription. Values in, verdicts out; no Mosquitto, no I/O.
//!
//! The rules (see ARCHITECTURE.md, "Broker policy"):
//! - Every client has a user name (the password file checks the password).
//! - Client ids are owned: a device (a user without `.` in its name; no device id has one) may
//!   use only the client id equal to its user name; a service user (`ogm.server`,
//!   `ogm.dashboard`) its user name or `<user name>-<suffix>`: one id per server replica
//!   (`ogm.server-2`) or per browser tab (`ogm.dashboard-<random>`). So nobody takes over
//!   another user's connection or persistent session.
//! - Users named in `clean_session_users` (the dashboard, whose password is public) must
//!   connect with a clean session over MQTT 3.1 or 3.1.1: the broker keeps nothing for them
//!   while they are away. MQTT 5 is refused for them because Mosquitto 2.0 does not show a
//!   plugin the session expiry interval, which is what makes an MQTT 5 session outlive its
//!   connection.
//! - Only users named in `shared_subscription_users` (the server) may subscribe to
//!   `$share/<group>/...`, so nobody else can join the server's share group and take part of
//!   its stream.
//! - No filter is longer than [`MAX_FILTER_BYTES`]: the broker keeps every subscription in
//!   memory, and thousands of 16 KB filters on one public connection took it from 97 to 425 MB.

use std::fmt;

/// The plugin's options, from `plugin_opt_<key> <value>` lines after the `plugin` line.
pub const CLEAN_SESSION_USERS: &str = "clean_session_users";
/// See [`CLEAN_SESSION_USERS`].
pub const SHARED_SUBSCRIPTION_USERS: &str = "shared_subscription_users";

/// The longest subscription filter anyone may use; the project's longest is
/// `open_grid_monitor/<64-character id>/measurement` (94 bytes), a shared one 20 more.
pub const MAX_FILTER_BYTES: usize = 256;

/// Why the options do not make a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error(
        "unknown option plugin_opt_{0} (known: plugin_opt_{CLEAN_SESSION_USERS}, plugin_opt_{SHARED_SUBSCRIPTION_USERS})"
    )]
    Unknown(String),
    #[error("plugin_opt_{0} is missing (a list of user names)")]
    Missing(&'static str),
    #[error("plugin_opt_{0} is given twice")]
    Repeated(String),
}

/// Why a connection or a subscription is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No user name (the policy also says `allow_anonymous false`).
    Anonymous,
    /// The client id belongs to another user.
    ClientIdNotOwned,
    /// A clean-session user asked for a persistent session.
    PersistentSession,
    /// A clean-session user connected with MQTT 5 (see the module's doc).
    Mqtt5,
    /// `$share/...` from a user that may not join shared subscriptions.
    SharedSubscription,
    /// A filter longer than [`MAX_FILTER_BYTES`].
    FilterTooLong,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "no user name",
            Self::ClientIdNotOwned => {
                "the client id is not the user's (a device uses its user name; a service user its user name or <user name>-<suffix>)"
            }
            Self::PersistentSession => "this user must connect with a clean session",
            Self::Mqtt5 => "this user must connect with MQTT 3.1.1 (clean session)",
            Self::SharedSubscription => "this user may not subscribe to $share/...",
            Self::FilterTooLong => "the subscription filter is longer than 256 bytes",
        })
    }
}

/// What a client asks for when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// `None` when the client sent no user name.
    pub username: Option<&'a str>,
    pub client_id: &'a str,
    /// Clean session (MQTT 3.1.1) or clean start (MQTT 5).
    pub clean_session: bool,
    /// 3 (MQTT 3.1), 4 (3.1.1) or 5.
    pub protocol_version: i32,
}

/// The policy, built once from the plugin's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    clean_session_users: Vec<String>,
    shared_subscription_users: Vec<String>,
}

/// A service user's name has a `.`; a device id cannot (`ogm_protocol::DeviceId`).
pub fn is_service_user(user: &str) -> bool {
    user.contains('.')
}

/// Whether `user` may connect as `client_id`: a device only as itself; a service user as itself
/// or as `<user>-<suffix>`. Since devices have no `.`, no service user's id is a device's id;
/// service users' names are chosen so that none is another's name followed by `-`.
pub fn owns_client_id(user: &str, client_id: &str) -> bool {
    if client_id == user {
        return true;
    }
    is_service_user(user)
        && client_id
            .strip_prefix(user)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| !suffix.is_empty())
}

/// Whether an MQTT subscription filter is a shared subscription (`$share/<group>/<filter>`).
pub fn is_shared_subscription(filter: &str) -> bool {
    filter.split('/').next() == Some("$share")
}

impl Policy {
    /// The policy from `(key, value)` option pairs; a value is a list of user names separated
    /// by spaces or commas. Both options must be given (a forgotten line must not open the
    /// broker); unknown keys are refused, so a misspelt one fails the broker's start.
    pub fn from_options<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, OptionsError> {
        let (mut clean, mut shared) = (None, None);
        for (key, value) in options {
            let slot = match key {
                CLEAN_SESSION_USERS => &mut clean,
                SHARED_SUBSCRIPTION_USERS => &mut shared,
                other => return Err(OptionsError::Unknown(other.to_owned())),
            };
            if slot.is_some() {
                return Err(OptionsError::Repeated(key.to_owned()));
            }
            *slot = Some(
                value
                    .split([' ', '\t', ','])
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Ok(Self {
            clean_session_users: clean.ok_or(OptionsError::Missing(CLEAN_SESSION_USERS))?,
            shared_subscription_users: shared
                .ok_or(OptionsError::Missing(SHARED_SUBSCRIPTION_USERS))?,
        })
    }

    /// The users that must connect with a clean session.
    pub fn clean_session_users(&self) -> &[String] {
        &self.clean_session_users
    }

    /// The users that may subscribe to `$share/...`.
    pub fn shared_subscription_users(&self) -> &[String] {
        &self.shared_subscription_users
    }

    /// The verdict on a CONNECT. `Ok` means "no objection": the password file still decides.
    pub fn check_connect(&self, c: &Connect<'_>) -> Result<(), Refusal> {
        let user = c.username.ok_or(Refusal::Anonymous)?;
        if !owns_client_id(user, c.client_id) {
            return Err(Refusal::ClientIdNotOwned);
        }
        if self.clean_session_users.iter().any(|u| u == user) {
            if c.protocol_version >= 5 {
                return Err(Refusal::Mqtt5);
            }
            if !c.clean_session {
                return Err(Refusal::PersistentSession);
            }
        }
        Ok(())
    }

    /// The verdict on one filter of a SUBSCRIBE. `Ok` means "no objection": Mosquitto's ACL
    /// file still decides what is delivered.
    pub fn check_subscribe(&self, username: Option<&str>, filter: &str) -> Result<(), Refusal> {
        if filter.len() > MAX_FILTER_BYTES {
            return Err(Refusal::FilterTooLong);
        }
        if is_shared_subscription(filter)
            && !username.is_some_and(|u| self.shared_subscription_users.iter().any(|s| s == u))
        {
            return Err(Refusal::SharedSubscription);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::from_options([
            (CLEAN_SESSION_USERS, "ogm.dashboard"),
            (SHARED_SUBSCRIPTION_USERS, "ogm.server"),
        ])
        .unwrap()
    }

    fn connect(user: &str, id: &str) -> Result<(), Refusal> {
        policy().check_connect(&Connect {
            username: Some(user),
            client_id: id,
            clean_session: true,
            protocol_version: 4,
        })
    }

    #[test]
    fn options_are_lists_and_both_are_required() {
        let p = Policy::from_options([
            (SHARED_SUBSCRIPTION_USERS, "ogm.server, ogm.other"),
            (CLEAN_SESSION_USERS, "ogm.dashboard ogm.kiosk"),
        ])
        .unwrap();
        assert_eq!(p.shared_subscription_users(), ["ogm.server", "ogm.other"]);
        assert_eq!(p.clean_session_users(), ["ogm.dashboard", "ogm.kiosk"]);
        assert_eq!(
            Policy::from_options([(CLEAN_SESSION_USERS, "a.b")]),
            Err(OptionsError::Missing(SHARED_SUBSCRIPTION_USERS))
        );
        assert_eq!(
            Policy::from_options([(SHARED_SUBSCRIPTION_USERS, "a.b")]),
            Err(OptionsError::Missing(CLEAN_SESSION_USERS))
        );
        assert_eq!(
            Policy::from_options([("clean_sesion_users", "a.b")]),
            Err(OptionsError::Unknown("clean_sesion_users".into()))
        );
        assert_eq!(
            Policy::from_options([(CLEAN_SESSION_USERS, "a.b"), (CLEAN_SESSION_USERS, "c.d")]),
            Err(OptionsError::Repeated(CLEAN_SESSION_USERS.into()))
        );
    }

    #[test]
    fn a_device_uses_only_its_own_id() {
        assert_eq!(connect("dev-a", "dev-a"), Ok(()));
        for other in [
            "dev-b",
            "dev-a-2",
            "dev-",
            "ogm.server",
            "ogm.dashboard-1",
            "",
        ] {
            assert_eq!(
                connect("dev-a", other),
                Err(Refusal::ClientIdNotOwned),
                "{other}"
            );
        }
    }

    #[test]
    fn a_service_user_uses_its_name_or_its_name_and_a_suffix() {
        for own in [
            "ogm.server",
            "ogm.server-1",
            "ogm.server-2",
            "ogm.server-probe-x",
        ] {
            assert_eq!(connect("ogm.server", own), Ok(()), "{own}");
        }
        for other in [
            "ogm-server",
            "ogm.server-",
            "ogm.server2",
            "ogm.serve",
            "ogm.dashboard",
            "ogm.dashboard-ab12",
            "dev-a",
            "",
        ] {
            assert_eq!(
                connect("ogm.server", other),
                Err(Refusal::ClientIdNotOwned),
                "{other}"
            );
        }
        assert_eq!(
            connect("ogm.dashboard", "ogm.server"),
            Err(Refusal::ClientIdNotOwned)
        );
        assert_eq!(
            connect("ogm.dashboard", "dev-a"),
            Err(Refusal::ClientIdNotOwned)
        );
        assert_eq!(connect("ogm.dashboard", "ogm.dashboard-0123abcd"), Ok(()));
    }

    #[test]
    fn a_clean_session_user_gets_no_session_that_outlives_it() {
        let p = policy();
        let dash = |clean_session, protocol_version| {
            p.check_connect(&Connect {
                username: Some("ogm.dashboard"),
                client_id: "ogm.dashboard-1",
                clean_session,
                protocol_version,
            })
        };
        assert_eq!(dash(true, 4), Ok(()));
        assert_eq!(dash(true, 3), Ok(()));
        assert_eq!(dash(false, 4), Err(Refusal::PersistentSession));
        assert_eq!(dash(true, 5), Err(Refusal::Mqtt5));
        assert_eq!(dash(false, 5), Err(Refusal::Mqtt5));
        // Everyone else may keep a session: the server's at-least-once ingest needs one.
        for (user, id) in [("ogm.server", "ogm.server"), ("dev-a", "dev-a")] {
            for v in [4, 5] {
                let c = Connect {
                    username: Some(user),
                    client_id: id,
                    clean_session: false,
                    protocol_version: v,
                };
                assert_eq!(p.check_connect(&c), Ok(()), "{user} v{v}");
            }
        }
    }

    #[test]
    fn anonymous_clients_are_refused() {
        let c = Connect {
            username: None,
            client_id: "dev-a",
            clean_session: true,
            protocol_version: 4,
        };
        assert_eq!(policy().check_connect(&c), Err(Refusal::Anonymous));
    }

    #[test]
    fn only_shared_subscription_users_join_a_share_group() {
        let p = policy();
        let filter = "$share/ogm/open_grid_monitor/#";
        assert_eq!(p.check_subscribe(Some("ogm.server"), filter), Ok(()));
        for user in [
            Some("ogm.dashboard"),
            Some("dev-a"),
            Some("ogm.server-2"),
            None,
        ] {
            assert_eq!(
                p.check_subscribe(user, filter),
                Err(Refusal::SharedSubscription),
                "{user:?}"
            );
            assert_eq!(p.check_subscribe(user, "open_grid_monitor/#"), Ok(()));
            let long = format!("open_grid_monitor/{}", "x/".repeat(200));
            assert_eq!(p.check_subscribe(user, &long), Err(Refusal::FilterTooLong));
        }
        // Only the first level makes a shared subscription (MQTT 5, 4.8.2).
        assert!(is_shared_subscription("$share/g/a/b"));
        assert!(is_shared_subscription("$share/g/#"));
        assert!(!is_shared_subscription("$shared/g/#"));
        assert!(!is_shared_subscription("a/$share/g/#"));
        assert!(!is_shared_subscription("$SHARE/g/#"));
    }
}
