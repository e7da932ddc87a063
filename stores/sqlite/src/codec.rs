//! Sealed blocks: one device's measurements over a stretch of time as compressed columns.
//! Pure: no SQL, no I/O.
//!
//! A block is a version byte, the number of readings, then five sections (timestamps,
//! frequency, voltage, current, power), each its length and a standalone pcodec chunk. pcodec
//! finds the delta order of the timestamps and the decimal step of the values (0.1 mHz,
//! 10 mV, ...) itself, and is lossless: every f64 comes back bit for bit.

use ogm_protocol::Measurement;

/// The format written.
const VERSION: u8 = 1;
/// Sections, in order.
const SECTIONS: usize = 5;
/// Most readings in one block (a bound on what decoding may allocate).
pub(crate) const MAX_BLOCK: usize = 1 << 16;

/// Why bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a sealed block is damaged: {}", self.0)
    }
}

fn pco_error(e: pco::errors::PcoError) -> CodecError {
    CodecError(e.to_string())
}

/// `rows`, in time order with distinct timestamps, as a block. At most [`MAX_BLOCK`] rows.
pub(crate) fn encode(rows: &[Measurement]) -> Vec<u8> {
    debug_assert!(rows.len() <= MAX_BLOCK);
    debug_assert!(rows.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    let config = pco::ChunkConfig::default();
    let ts: Vec<i64> = rows.iter().map(|m| m.timestamp).collect();
    let column = |f: fn(&Measurement) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let mut sections = Vec::with_capacity(SECTIONS);
    // Standalone chunks of i64 and f64 cannot fail to compress: pcodec's errors are for
    // invalid configurations, and the default one is valid.
    sections.push(pco::standalone::simple_compress(&ts, &config).unwrap_or_default());
    for f in [
        (|m: &Measurement| m.frequency) as fn(&Measurement) -> f64,
        |m| m.voltage,
        |m| m.current,
        |m| m.power,
    ] {
        sections.push(pco::standalone::simple_compress(&column(f), &config).unwrap_or_default());
    }
    let mut out = Vec::with_capacity(5 + sections.iter().map(|s| 4 + s.len()).sum::<usize>());
    out.push(VERSION);
    out.extend_from_slice(&u32::try_from(rows.len()).unwrap_or(u32::MAX).to_le_bytes());
    for s in &sections {
        out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// A block's readings, in time order.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Measurement>, CodecError> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], CodecError> {
        if rest.len() < n {
            return Err(CodecError(format!("{} bytes short", n - rest.len())));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let version = take(1)?[0];
    if version != VERSION {
        return Err(CodecError(format!("format {version}, not {VERSION}")));
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = u32_at(take(4)?);
    if n > MAX_BLOCK {
        return Err(CodecError(format!("{n} readings, more than {MAX_BLOCK}")));
    }
    let mut section = || -> Result<&[u8], CodecError> {
        let len = u32_at(take(4)?);
        take(len)
    };
    let ts: Vec<i64> = pco::standalone::simple_decompress(section()?).map_err(pco_error)?;
    let mut columns: [Vec<f64>; 4] = Default::default();
    for c in &mut columns {
        *c = pco::standalone::simple_decompress(section()?).map_err(pco_error)?;
    }
    if ts.len() != n || columns.iter().any(|c| c.len() != n) {
        return Err(CodecError(format!(
            "{n} readings announced, columns of {} and {:?}",
            ts.len(),
            columns.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    let [frequency, voltage, current, power] = columns;
    Ok((0..n)
        .map(|i| Measurement {
            timestamp: ts[i],
            frequency: frequency[i],
            voltage: voltage[i],
            current: current[i],
            power: power[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*, uniform in [-1, 1).
    fn unit(state: &mut u64) -> f64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// `n` readings at 10 Hz with board jitter, rounded as a board rounds them.
    fn board(n: usize, seed: u64) -> Vec<Measurement> {
        let mut s = seed | 1;
        let round = |v: f64, u: f64| (v / u).round() * u;
        let mut walk = 0.0;
        (0..n)
            .map(|i| {
                walk += -walk / 1200.0 + 0.0013 * unit(&mut s);
                let voltage = round(230.0 + 0.02 * unit(&mut s), 0.01);
                let current = round(4.0 + 0.05 * unit(&mut s), 0.001);
                Measurement {
                    timestamp: 1_790_000_000_000_000
                        + i as i64 * 100_000
                        + (unit(&mut s) * 2_000.0) as i64,
                    frequency: round(50.0 + walk + 0.0005 * unit(&mut s), 0.0001),
                    voltage,
                    current,
                    power: round(voltage * current * 0.97, 0.1),
                }
            })
            .collect()
    }

    #[test]
    fn every_reading_comes_back_bit_for_bit_in_a_fraction_of_the_bytes() {
        let rows = board(3_000, 7);
        let bytes = encode(&rows);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), rows.len());
        for (a, b) in rows.iter().zip(&back) {
            assert_eq!(a.timestamp, b.timestamp);
            for (x, y) in [
                (a.frequency, b.frequency),
                (a.voltage, b.voltage),
                (a.current, b.current),
                (a.power, b.power),
            ] {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
        let per = bytes.len() as f64 / rows.len() as f64;
        assert!(per < 8.0, "{per:.2} B a reading (a row takes ~55)");
    }

    #[test]
    fn any_values_and_tiny_blocks_round_trip() {
        let mut s = 99u64;
        for n in [0usize, 1, 2, 7, 300] {
            let rows: Vec<Measurement> = (0..n)
                .map(|i| Measurement {
                    timestamp: -5_000 + i as i64 * 37,
                    frequency: unit(&mut s) * 1e300,
                    voltage: f64::MIN_POSITIVE * unit(&mut s),
                    current: -0.0,
                    power: unit(&mut s),
                })
                .collect();
            let back = decode(&encode(&rows)).unwrap();
            assert_eq!(back.len(), n);
            for (a, b) in rows.iter().zip(&back) {
                assert_eq!(a.frequency.to_bits(), b.frequency.to_bits());
                assert_eq!(a.voltage.to_bits(), b.voltage.to_bits());
                assert_eq!(a.current.to_bits(), b.current.to_bits());
            }
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic() {
        let bytes = encode(&board(200, 3));
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 0, 0, 0, 0]).is_err(), "an unknown format");
        for cut in [1, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut s = 5u64;
        for _ in 0..500 {
            let mut b = bytes.clone();
            let at = ((unit(&mut s) + 1.0) / 2.0 * b.len() as f64) as usize % b.len();
            b[at] ^= 1 << ((unit(&mut s) + 1.0) * 3.5) as u32 % 8;
            // Either an error or some readings: never a panic, never more than announced.
            if let Ok(rows) = decode(&b) {
                assert!(rows.len() <= MAX_BLOCK);
            }
        }
    }
}
