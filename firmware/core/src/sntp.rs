//! SNTP (RFC 4330) packets, without a socket: [`request`] builds the 48-byte client packet and
//! [`parse`] checks a server's answer and turns it into a [`Sync`] for
//! [`crate::clock::WallClock::sync`]. The board sends and receives them over UDP port
//! [`PORT`].
//!
//! The request's transmit timestamp is a random cookie that the answer must echo as its
//! originate timestamp, so a stray or spoofed packet is refused. The clock offset takes half
//! the round trip into account (the usual symmetric-path assumption).

/// The SNTP server port.
pub const PORT: u16 = 123;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_TO_UNIX_S: u64 = 2_208_988_800;

/// An SNTP request carrying `cookie` as its transmit timestamp.
pub fn request(cookie: u64) -> [u8; 48] {
    let mut p = [0u8; 48];
    // LI 0, version 4, mode 3 (client).
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&cookie.to_be_bytes());
    p
}

/// What an answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sync {
    /// The local monotonic time (µs) the answer arrived.
    pub monotonic_us: u64,
    /// Unix time (µs) at that moment.
    pub unix_us: i64,
    /// Round trip, µs (the offset's uncertainty is about half of it).
    pub round_trip_us: u64,
    /// The server's stratum (1 = a reference clock).
    pub stratum: u8,
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SntpError {
    #[error("answer is {0} bytes; SNTP needs 48")]
    TooShort(usize),
    #[error("answer is not from a server (mode {0})")]
    NotServer(u8),
    #[error("answer does not echo our request")]
    WrongCookie,
    #[error("server is not synchronized (stratum {0})")]
    Unsynchronized(u8),
    #[error("answer arrived before the request left")]
    Backwards,
}

/// Checks `answer` to the request carrying `cookie`, sent at monotonic `sent_us` and received at
/// `received_us`.
pub fn parse(
    answer: &[u8],
    cookie: u64,
    sent_us: u64,
    received_us: u64,
) -> Result<Sync, SntpError> {
    if answer.len() < 48 {
        return Err(SntpError::TooShort(answer.len()));
    }
    let mode = answer[0] & 0b111;
    if mode != 4 {
        return Err(SntpError::NotServer(mode));
    }
    let leap = answer[0] >> 6;
    let stratum = answer[1];
    if leap == 3 || stratum == 0 || stratum > 15 {
        return Err(SntpError::Unsynchronized(stratum));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&answer[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if word(24) != cookie {
        return Err(SntpError::WrongCookie);
    }
    let elapsed = received_us
        .checked_sub(sent_us)
        .ok_or(SntpError::Backwards)?;
    let server_receive = ntp_to_unix_us(word(32));
    let server_transmit = ntp_to_unix_us(word(40));
    let server_hold = u64::try_from(server_transmit - server_receive).unwrap_or(0);
    let round_trip_us = elapsed.saturating_sub(server_hold);
    Ok(Sync {
        monotonic_us: received_us,
        unix_us: server_transmit + (round_trip_us / 2) as i64,
        round_trip_us,
        stratum,
    })
}

/// An NTP timestamp (32.32 fixed point seconds since 1900) as Unix µs. Era 1 (from 2036-02-07)
/// is assumed for seconds values below 2^31.
pub fn ntp_to_unix_us(ntp: u64) -> i64 {
    let mut seconds = ntp >> 32;
    if seconds < 1 << 31 {
        seconds += 1 << 32;
    }
    let fraction_us = ((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32;
    // Signed: a (bogus) timestamp before 1970 gives a negative time, never an overflow.
    (seconds as i64 - NTP_TO_UNIX_S as i64) * 1_000_000 + fraction_us as i64
}

/// Unix µs as an NTP timestamp (for tests and servers).
pub fn unix_us_to_ntp(unix_us: i64) -> u64 {
    let unix_us = unix_us.max(0) as u64;
    let seconds = (unix_us / 1_000_000 + NTP_TO_UNIX_S) & 0xFFFF_FFFF;
    let fraction = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_750_000_000_123_456;

    fn answer(cookie: u64, receive: i64, transmit: i64) -> [u8; 48] {
        let mut p = [0u8; 48];
        p[0] = (4 << 3) | 4;
        p[1] = 2;
        p[24..32].copy_from_slice(&cookie.to_be_bytes());
        p[32..40].copy_from_slice(&unix_us_to_ntp(receive).to_be_bytes());
        p[40..48].copy_from_slice(&unix_us_to_ntp(transmit).to_be_bytes());
        p
    }

    #[test]
    fn requests_are_version_4_client_packets_with_the_cookie() {
        let r = request(0x0102_0304_0506_0708);
        assert_eq!(r[0], 0x23);
        assert_eq!(&r[40..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(r[1..40].iter().all(|b| *b == 0));
    }

    #[test]
    fn timestamps_round_trip() {
        for t in [0, T, 2_085_978_496_000_000 + 5, 2_200_000_000_999_999] {
            let back = ntp_to_unix_us(unix_us_to_ntp(t));
            assert!((back - t).abs() <= 1, "{t} {back}");
        }
        // Seconds between 2^31 and the Unix epoch: era 0, before 1970; no overflow.
        assert!(ntp_to_unix_us(0x8000_0000_0000_0000) < 0);
        assert_eq!(
            ntp_to_unix_us(u64::MAX) / 1_000_000,
            (1i64 << 32) - 1 - 2_208_988_800
        );
    }

    #[test]
    fn the_offset_accounts_for_half_the_round_trip() {
        // Sent at 10 s local, 40 ms out, 2 ms in the server, 40 ms back.
        let a = answer(77, T, T + 2_000);
        let s = parse(&a, 77, 10_000_000, 10_082_000).unwrap();
        assert_eq!(s.round_trip_us, 80_000);
        assert!((s.unix_us - (T + 42_000)).abs() <= 1, "{s:?}");
        assert_eq!((s.monotonic_us, s.stratum), (10_082_000, 2));
    }

    #[test]
    fn bad_answers_are_refused() {
        let good = answer(5, T, T);
        assert_eq!(parse(&good[..40], 5, 0, 1), Err(SntpError::TooShort(40)));
        assert_eq!(parse(&good, 6, 0, 1), Err(SntpError::WrongCookie));
        assert_eq!(parse(&good, 5, 2, 1), Err(SntpError::Backwards));
        let mut client = good;
        client[0] = 0x23;
        assert_eq!(parse(&client, 5, 0, 1), Err(SntpError::NotServer(3)));
        let mut kiss = good;
        kiss[1] = 0;
        assert_eq!(parse(&kiss, 5, 0, 1), Err(SntpError::Unsynchronized(0)));
        let mut alarm = good;
        alarm[0] |= 0xC0;
        assert!(parse(&alarm, 5, 0, 1).is_err());
    }
}
