//! The per-frame metadata table: a FITS binary table (`XTENSION = 'BINTABLE'`) with one row
//! per frame of the cube before it.
//!
//! | column | FITS type | meaning |
//! |---|---|---|
//! | `FRAMEID` | `1K` | the frame's id in its ring (1, 2, 3, ... in publish order) |
//! | `TMONO` | `1K`, ns | publish time, `CLOCK_MONOTONIC` |
//! | `TUTC` | `1D`, s | publish time, UTC seconds since 1970 (monotonic + the offset sampled at the start) |
//! | `DROPPED` | `1K` | frames published since the previous recorded one that were not recorded |
//! | `LEN` | `1K`, bytes | bytes the writer published (a shorter frame is zero-padded in the cube) |
//! | `USER0`..`USER4` | `1K` + `TZERO = 2**63` | the frame's five user words, unsigned 64-bit |

use super::header::{blocks_for, Header, Value};

/// Bytes of one row.
pub const ROW: usize = 8 * 10;

/// One frame's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The frame's id.
    pub id: u64,
    /// Publish time on `CLOCK_MONOTONIC`, ns.
    pub mono_ns: u64,
    /// Publish time, UTC seconds since 1970.
    pub utc_s: f64,
    /// Frames not recorded since the previous recorded one.
    pub dropped: u64,
    /// Bytes the writer published.
    pub len: u64,
    /// The user words.
    pub user: [u64; 5],
}

impl Row {
    /// The row as the table stores it.
    pub fn encode(&self) -> [u8; ROW] {
        let mut out = [0u8; ROW];
        let words = [
            self.id,
            self.mono_ns,
            self.utc_s.to_bits(),
            self.dropped,
            self.len,
        ]
        .into_iter()
        // Unsigned words are stored signed with TZERO = 2**63: the top bit flipped.
        .chain(self.user.iter().map(|u| u ^ (1 << 63)));
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The row from its stored bytes.
    pub fn decode(b: &[u8; ROW]) -> Row {
        let w = |i: usize| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Row {
            id: w(0),
            mono_ns: w(1),
            utc_s: f64::from_bits(w(2)),
            dropped: w(3),
            len: w(4),
            user: std::array::from_fn(|i| w(5 + i) ^ (1 << 63)),
        }
    }
}

/// The table's header for `rows` rows.
pub fn header(rows: u64) -> Header {
    let mut h = Header::new();
    h.card(
        "XTENSION",
        Value::Text("BINTABLE".into()),
        "binary table extension",
    )
    .card("BITPIX", Value::Int(8), "bytes")
    .card("NAXIS", Value::Int(2), "a table")
    .card("NAXIS1", Value::Int(ROW as i128), "bytes per row")
    .card(
        "NAXIS2",
        Value::Int(i128::from(rows)),
        "rows: one per frame",
    )
    .card("PCOUNT", Value::Int(0), "no heap")
    .card("GCOUNT", Value::Int(1), "one group")
    .card("TFIELDS", Value::Int(10), "columns")
    .card(
        "EXTNAME",
        Value::Text("FRAMES".into()),
        "per-frame metadata",
    );
    let columns: [(&str, &str, &str, &str); 5] = [
        ("FRAMEID", "1K", "", "frame id in its ring"),
        ("TMONO", "1K", "ns", "publish time, CLOCK_MONOTONIC"),
        ("TUTC", "1D", "s", "publish time, UTC seconds since 1970"),
        (
            "DROPPED",
            "1K",
            "",
            "frames not recorded just before this one",
        ),
        ("LEN", "1K", "byte", "bytes published"),
    ];
    let mut n = 0;
    for (name, form, unit, comment) in columns {
        n += 1;
        h.card(&format!("TTYPE{n}"), Value::Text(name.into()), comment)
            .card(&format!("TFORM{n}"), Value::Text(form.into()), "");
        if !unit.is_empty() {
            h.card(&format!("TUNIT{n}"), Value::Text(unit.into()), "");
        }
    }
    for u in 0..5 {
        n += 1;
        h.card(
            &format!("TTYPE{n}"),
            Value::Text(format!("USER{u}")),
            "user word",
        )
        .card(&format!("TFORM{n}"), Value::Text("1K".into()), "")
        .card(&format!("TZERO{n}"), Value::Int(1 << 63), "unsigned 64-bit");
    }
    h
}

/// The whole table unit for `rows`: header, rows, zero padding to a block.
pub fn unit(rows: &[u8]) -> Vec<u8> {
    let count = rows.len() / ROW;
    let whole = count * ROW;
    let mut out = header(count as u64).to_bytes();
    let start = out.len();
    out.extend_from_slice(&rows[..whole]);
    out.resize(start + blocks_for(whole), 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_and_user_words_keep_all_64_bits() {
        let r = Row {
            id: 7,
            mono_ns: 123,
            utc_s: 1.7e9,
            dropped: 2,
            len: 4096,
            user: [0, 1, u64::MAX, 1 << 63, 5],
        };
        assert_eq!(Row::decode(&r.encode()), r);
    }

    #[test]
    fn the_table_unit_is_whole_blocks() {
        let rows: Vec<u8> = (0..3)
            .flat_map(|i| {
                Row {
                    id: i,
                    mono_ns: 0,
                    utc_s: 0.0,
                    dropped: 0,
                    len: 0,
                    user: [0; 5],
                }
                .encode()
            })
            .collect();
        let u = unit(&rows);
        assert_eq!(u.len() % super::super::header::BLOCK, 0);
    }
}
