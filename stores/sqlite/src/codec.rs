//! Sealed blocks: one device's readings (or rollup cells) over a stretch of time as compressed
//! columns. Pure: no SQL, no I/O.
//!
//! A block is a version byte, the number of rows, the number of sections, then each section:
//! its length and a standalone pcodec chunk. Raw blocks have five sections (timestamps,
//! frequency, voltage, current, power); cell blocks fourteen (cell starts, counts, then min,
//! max and sum of each of the four fields). pcodec finds the delta order of the timestamps and
//! the decimal step of the values (0.1 mHz, 10 mV, ...) itself, and is lossless: every f64
//! comes back bit for bit. A reader decompresses only the sections it needs.

use ogm_protocol::Measurement;

/// The format written.
const VERSION: u8 = 1;
/// Sections of a raw block and of a cell block.
const RAW_SECTIONS: usize = 5;
const CELL_SECTIONS: usize = 2 + 3 * FIELDS;
/// Fields of a measurement.
pub(crate) const FIELDS: usize = 4;
/// Most rows in one block (a bound on what decoding may allocate).
pub(crate) const MAX_BLOCK: usize = 1 << 16;

/// A rollup cell of the four measurement fields: `n` readings from `t` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cell {
    pub t: i64,
    pub n: i64,
    pub min: [f64; FIELDS],
    pub max: [f64; FIELDS],
    pub sum: [f64; FIELDS],
}

impl Cell {
    pub(crate) fn one(m: &Measurement, t: i64) -> Self {
        let v = values(m);
        Self {
            t,
            n: 1,
            min: v,
            max: v,
            sum: v,
        }
    }

    pub(crate) fn merge(&mut self, o: &Self) {
        self.n += o.n;
        for i in 0..FIELDS {
            self.min[i] = self.min[i].min(o.min[i]);
            self.max[i] = self.max[i].max(o.max[i]);
            self.sum[i] += o.sum[i];
        }
    }
}

/// A measurement's four values, in field order.
pub(crate) fn values(m: &Measurement) -> [f64; FIELDS] {
    [m.frequency, m.voltage, m.current, m.power]
}

/// Why bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a sealed block is damaged: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

fn pco_error(e: pco::errors::PcoError) -> CodecError {
    CodecError(e.to_string())
}

fn compress<T: pco::data_types::Number>(v: &[T]) -> Vec<u8> {
    // Standalone chunks of i64 and f64 cannot fail to compress: pcodec's errors are for
    // invalid configurations, and the default one is valid.
    pco::standalone::simple_compress(v, &pco::ChunkConfig::default()).unwrap_or_default()
}

fn frame(n: usize, sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + sections.iter().map(|s| 4 + s.len()).sum::<usize>());
    out.push(VERSION);
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    out.push(u8::try_from(sections.len()).unwrap_or(u8::MAX));
    for s in sections {
        out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// `rows`, in time order with distinct timestamps, as a block. At most [`MAX_BLOCK`] rows.
pub(crate) fn encode_raw(rows: &[Measurement]) -> Vec<u8> {
    debug_assert!(rows.len() <= MAX_BLOCK);
    debug_assert!(rows.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    let ts: Vec<i64> = rows.iter().map(|m| m.timestamp).collect();
    let mut sections = vec![compress(&ts)];
    for i in 0..FIELDS {
        let column: Vec<f64> = rows.iter().map(|m| values(m)[i]).collect();
        sections.push(compress(&column));
    }
    frame(rows.len(), &sections)
}

/// `cells`, in time order with distinct starts, as a block. At most [`MAX_BLOCK`] cells.
pub(crate) fn encode_cells(cells: &[Cell]) -> Vec<u8> {
    debug_assert!(cells.len() <= MAX_BLOCK);
    let t: Vec<i64> = cells.iter().map(|c| c.t).collect();
    let n: Vec<i64> = cells.iter().map(|c| c.n).collect();
    let mut sections = vec![compress(&t), compress(&n)];
    for i in 0..FIELDS {
        let min: Vec<f64> = cells.iter().map(|c| c.min[i]).collect();
        let max: Vec<f64> = cells.iter().map(|c| c.max[i]).collect();
        let sum: Vec<f64> = cells.iter().map(|c| c.sum[i]).collect();
        sections.push(compress(&min));
        sections.push(compress_beside(&max, &min));
        sections.push(compress_beside(&sum, &min));
    }
    frame(cells.len(), &sections)
}

/// How a max or sum column is stored: its values, or each value's bits XOR the min's.
const PLAIN: u8 = 0;
const XOR_MIN: u8 = 1;

/// A max or sum column after a mode byte: plain, or, where that is smaller, each value's bits
/// XOR the min's, which are 0 wherever a cell holds one reading (1 s envelopes of a 1 Hz
/// board would otherwise take three times its readings' bytes).
fn compress_beside(v: &[f64], min: &[f64]) -> Vec<u8> {
    let plain = compress(v);
    let xor: Vec<u64> = v
        .iter()
        .zip(min)
        .map(|(a, b)| a.to_bits() ^ b.to_bits())
        .collect();
    let xor = compress(&xor);
    let (mode, body) = if xor.len() < plain.len() {
        (XOR_MIN, xor)
    } else {
        (PLAIN, plain)
    };
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(mode);
    out.extend_from_slice(&body);
    out
}

/// A block's sections, parsed but not yet decompressed.
#[derive(Debug)]
pub(crate) struct Block<'a> {
    n: usize,
    sections: Vec<&'a [u8]>,
}

impl<'a> Block<'a> {
    /// Checks the frame; `sections` is what the block's table holds (5 raw, 14 cells).
    fn parse(bytes: &'a [u8], sections: usize) -> Result<Self, CodecError> {
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&'a [u8], CodecError> {
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
            return Err(CodecError(format!("{n} rows, more than {MAX_BLOCK}")));
        }
        let count = usize::from(take(1)?[0]);
        if count != sections {
            return Err(CodecError(format!("{count} sections, not {sections}")));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u32_at(take(4)?);
            out.push(take(len)?);
        }
        Ok(Self { n, sections: out })
    }

    /// Rows (readings or cells) in the block, from its header alone.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    pub(crate) fn raw(bytes: &'a [u8]) -> Result<Self, CodecError> {
        Self::parse(bytes, RAW_SECTIONS)
    }

    pub(crate) fn cells(bytes: &'a [u8]) -> Result<Self, CodecError> {
        Self::parse(bytes, CELL_SECTIONS)
    }

    fn column<T: pco::data_types::Number>(&self, i: usize) -> Result<Vec<T>, CodecError> {
        self.decompress(self.sections[i])
    }

    fn decompress<T: pco::data_types::Number>(&self, bytes: &[u8]) -> Result<Vec<T>, CodecError> {
        let v: Vec<T> = pco::standalone::simple_decompress(bytes).map_err(pco_error)?;
        if v.len() != self.n {
            return Err(CodecError(format!(
                "{} rows announced, a column of {}",
                self.n,
                v.len()
            )));
        }
        Ok(v)
    }

    /// A max or sum column stored beside `min` ([`compress_beside`]).
    fn beside(&self, i: usize, min: &[f64]) -> Result<Vec<f64>, CodecError> {
        match self.sections[i].split_first() {
            Some((&PLAIN, body)) => self.decompress(body),
            Some((&XOR_MIN, body)) => Ok(self
                .decompress::<u64>(body)?
                .into_iter()
                .zip(min)
                .map(|(x, m)| f64::from_bits(x ^ m.to_bits()))
                .collect()),
            Some((mode, _)) => Err(CodecError(format!("column mode {mode}"))),
            None => Err(CodecError("an empty column".into())),
        }
    }

    /// Timestamps (raw) or cell starts (cells).
    pub(crate) fn times(&self) -> Result<Vec<i64>, CodecError> {
        self.column(0)
    }

    /// A raw block's values of field `i`.
    pub(crate) fn field(&self, i: usize) -> Result<Vec<f64>, CodecError> {
        self.column(1 + i)
    }

    /// A cell block's counts.
    pub(crate) fn counts(&self) -> Result<Vec<i64>, CodecError> {
        self.column(1)
    }

    /// A cell block's min, max and sum columns of field `i`.
    pub(crate) fn envelope(&self, i: usize) -> Result<[Vec<f64>; 3], CodecError> {
        let min = self.column(2 + 3 * i)?;
        let max = self.beside(3 + 3 * i, &min)?;
        let sum = self.beside(4 + 3 * i, &min)?;
        Ok([min, max, sum])
    }
}

/// A raw block's readings, in time order.
pub(crate) fn decode_raw(bytes: &[u8]) -> Result<Vec<Measurement>, CodecError> {
    let b = Block::raw(bytes)?;
    let ts = b.times()?;
    let [f, v, c, p] = [b.field(0)?, b.field(1)?, b.field(2)?, b.field(3)?];
    Ok((0..ts.len())
        .map(|i| Measurement {
            timestamp: ts[i],
            frequency: f[i],
            voltage: v[i],
            current: c[i],
            power: p[i],
        })
        .collect())
}

/// A cell block's cells, in time order.
pub(crate) fn decode_cells(bytes: &[u8]) -> Result<Vec<Cell>, CodecError> {
    let b = Block::cells(bytes)?;
    let (t, n) = (b.times()?, b.counts()?);
    let env = [
        b.envelope(0)?,
        b.envelope(1)?,
        b.envelope(2)?,
        b.envelope(3)?,
    ];
    Ok((0..t.len())
        .map(|j| Cell {
            t: t[j],
            n: n[j],
            min: std::array::from_fn(|i| env[i][0][j]),
            max: std::array::from_fn(|i| env[i][1][j]),
            sum: std::array::from_fn(|i| env[i][2][j]),
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
        let bytes = encode_raw(&rows);
        let back = decode_raw(&bytes).unwrap();
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
            let back = decode_raw(&encode_raw(&rows)).unwrap();
            assert_eq!(back.len(), n);
            for (a, b) in rows.iter().zip(&back) {
                assert_eq!(a.frequency.to_bits(), b.frequency.to_bits());
                assert_eq!(a.voltage.to_bits(), b.voltage.to_bits());
                assert_eq!(a.current.to_bits(), b.current.to_bits());
            }
        }
    }

    /// Cells of one reading (a 1 Hz board's seconds) cost little more than the readings;
    /// fuller cells come back bit for bit too.
    #[test]
    fn envelopes_round_trip_and_single_readings_stay_small() {
        let rows = board(3_600, 11);
        let ones: Vec<Cell> = rows
            .iter()
            .enumerate()
            .map(|(k, m)| Cell::one(m, k as i64 * 1_000_000))
            .collect();
        let mut tens: Vec<Cell> = Vec::new();
        for (k, chunk) in rows.chunks(10).enumerate() {
            let mut c = Cell::one(&chunk[0], k as i64 * 1_000_000);
            for m in &chunk[1..] {
                c.merge(&Cell::one(m, c.t));
            }
            tens.push(c);
        }
        for cells in [&ones, &tens] {
            let back = decode_cells(&encode_cells(cells)).unwrap();
            assert_eq!(back.len(), cells.len());
            for (a, b) in cells.iter().zip(&back) {
                assert_eq!((a.t, a.n), (b.t, b.n));
                for i in 0..FIELDS {
                    assert_eq!(a.min[i].to_bits(), b.min[i].to_bits());
                    assert_eq!(a.max[i].to_bits(), b.max[i].to_bits());
                    assert_eq!(a.sum[i].to_bits(), b.sum[i].to_bits());
                }
            }
        }
        let cells = encode_cells(&ones).len() as f64;
        let readings = encode_raw(&rows).len() as f64;
        assert!(
            cells < 1.3 * readings,
            "{cells} B of cells, {readings} B of readings"
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic() {
        let bytes = encode_raw(&board(200, 3));
        assert!(decode_raw(&[]).is_err());
        assert!(decode_raw(&[2, 0, 0, 0, 0]).is_err(), "an unknown format");
        for cut in [1, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_raw(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut s = 5u64;
        for _ in 0..500 {
            let mut b = bytes.clone();
            let at = ((unit(&mut s) + 1.0) / 2.0 * b.len() as f64) as usize % b.len();
            b[at] ^= 1 << (((unit(&mut s) + 1.0) * 3.5) as u32 % 8);
            // Either an error or some readings: never a panic, never more than announced.
            if let Ok(rows) = decode_raw(&b) {
                assert!(rows.len() <= MAX_BLOCK);
            }
        }
        let rows = board(300, 4);
        let cells: Vec<Cell> = rows.iter().map(|m| Cell::one(m, m.timestamp)).collect();
        let bytes = encode_cells(&cells);
        assert!(
            decode_cells(&encode_raw(&rows)).is_err(),
            "a raw block is not cells"
        );
        for _ in 0..500 {
            let mut b = bytes.clone();
            let at = ((unit(&mut s) + 1.0) / 2.0 * b.len() as f64) as usize % b.len();
            b[at] ^= 1 << (((unit(&mut s) + 1.0) * 3.5) as u32 % 8);
            if let Ok(cells) = decode_cells(&b) {
                assert!(cells.len() <= MAX_BLOCK);
            }
        }
    }
}
