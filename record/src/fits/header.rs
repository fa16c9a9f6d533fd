//! FITS header cards (FITS standard 4.0, section 4): 80-character records in 2 880-byte
//! blocks, fixed-format values (logical and numbers right-justified to column 30, strings
//! quoted from column 11), an `END` card, the block padded with spaces.

/// The FITS block: every header and data unit is a whole number of these.
pub const BLOCK: usize = 2880;
/// One header record.
pub const CARD: usize = 80;

/// A value a card holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `T` or `F`.
    Logical(bool),
    /// An integer (i128: FITS allows the unsigned offsets `TZERO = 2**63` needs).
    Int(i128),
    /// A real number, written with an exponent.
    Float(f64),
    /// A character string (printable ASCII; quotes are doubled).
    Text(String),
}

/// A header being built, card by card.
#[derive(Debug, Clone, Default)]
pub struct Header {
    cards: Vec<(String, Value, String)>,
}

impl Header {
    /// An empty header.
    pub fn new() -> Header {
        Header::default()
    }

    /// Appends `key = value / comment` (`key`: up to 8 of `A-Z0-9_-`).
    pub fn card(&mut self, key: &str, value: Value, comment: &str) -> &mut Header {
        debug_assert!(
            key.len() <= 8
                && key.bytes().all(|b| b.is_ascii_uppercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "{key} is not a FITS keyword"
        );
        self.cards.push((key.to_owned(), value, comment.to_owned()));
        self
    }

    /// The value of `key`, if the header has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cards
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, v, _)| v)
    }

    /// The header's bytes: every card, `END`, padded with spaces to a whole block. Its length
    /// depends only on the number of cards, so a header rewritten with other values of the
    /// same keys (a frame count known only at the end) has the same length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(blocks_for((self.cards.len() + 1) * CARD));
        for (key, value, comment) in &self.cards {
            out.extend_from_slice(&format_card(key, value, comment));
        }
        let mut end = [b' '; CARD];
        end[..3].copy_from_slice(b"END");
        out.extend_from_slice(&end);
        out.resize(blocks_for(out.len()), b' ');
        out
    }
}

/// `len` rounded up to whole blocks.
pub fn blocks_for(len: usize) -> usize {
    len.div_ceil(BLOCK) * BLOCK
}

/// [`blocks_for`] of a file offset.
pub fn blocks_for_u64(len: u64) -> u64 {
    len.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// One 80-byte card.
fn format_card(key: &str, value: &Value, comment: &str) -> [u8; CARD] {
    let value = match value {
        Value::Logical(b) => format!("{:>20}", if *b { "T" } else { "F" }),
        Value::Int(i) => format!("{i:>20}"),
        Value::Float(f) => format!("{:>20}", float(*f)),
        Value::Text(s) => {
            let printable: String = s
                .chars()
                .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
                .collect();
            // At least 8 characters between the quotes (the standard's fixed format).
            format!("'{:<8}'", printable.replace('\'', "''"))
        }
    };
    let mut text = format!("{key:<8}= {value}");
    if !comment.is_empty() {
        text.push_str(" / ");
        text.push_str(comment);
    }
    let mut card = [b' '; CARD];
    for (dst, src) in card.iter_mut().zip(text.bytes()) {
        *dst = if (0x20..=0x7e).contains(&src) {
            src
        } else {
            b'?'
        };
    }
    card
}

/// A real with a decimal point and an exponent, at most 20 characters, exact enough to read
/// back the same `f64`.
fn float(f: f64) -> String {
    if !f.is_finite() {
        // FITS has no NaN literal in headers; such a value is a bug upstream.
        return "0.0".to_owned();
    }
    let s = format!("{f:.14E}");
    // Rust writes `1.5E0`; FITS readers accept that form.
    s
}

/// Rewrites the value of card `key` in the header `bytes` (keeping its comment); false if the
/// header has no such card before `END`.
pub fn replace_value(bytes: &mut [u8], key: &str, value: &Value) -> bool {
    for card in bytes.chunks_exact_mut(CARD) {
        let name = String::from_utf8_lossy(&card[..8]).trim_end().to_owned();
        if name == "END" {
            return false;
        }
        if name == key && &card[8..10] == b"= " {
            let text = String::from_utf8_lossy(&card[10..]).into_owned();
            // The comment follows the first ` / ` after the value (a string value is quoted,
            // and ours never hold ` / `).
            let comment = text
                .split_once(" / ")
                .map(|(_, c)| c.trim_end().to_owned())
                .unwrap_or_default();
            card.copy_from_slice(&format_card(key, value, &comment));
            return true;
        }
    }
    false
}

/// Parses the header at the start of `bytes` (one written by [`Header::to_bytes`] or another
/// writer of the standard): its cards as `(key, raw value text)`, and its length in bytes.
/// `None` if there is no `END` card within `bytes`.
pub fn parse(bytes: &[u8]) -> Option<(Vec<(String, String)>, usize)> {
    let mut cards = Vec::new();
    for (i, card) in bytes.chunks_exact(CARD).enumerate() {
        let key = std::str::from_utf8(&card[..8]).ok()?.trim_end().to_owned();
        if key == "END" {
            return Some((cards, blocks_for((i + 1) * CARD)));
        }
        if &card[8..10] == b"= " {
            let text = std::str::from_utf8(&card[10..]).ok()?;
            cards.push((key, raw_value(text)));
        }
    }
    None
}

/// The value part of a card's text after `= `: a quoted string unquoted, otherwise the text
/// before any comment, trimmed.
fn raw_value(text: &str) -> String {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out.trim_end().to_owned();
    }
    t.split('/').next().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_whole_blocks_of_80_character_cards_ending_in_end() {
        let mut h = Header::new();
        h.card("SIMPLE", Value::Logical(true), "conforms to FITS")
            .card("BITPIX", Value::Int(16), "")
            .card("RING", Value::Text("cam'0".into()), "the ring");
        let b = h.to_bytes();
        assert_eq!(b.len(), BLOCK);
        assert_eq!(&b[..30], b"SIMPLE  =                    T");
        assert_eq!(&b[80..110], b"BITPIX  =                   16");
        assert_eq!(&b[160..180], b"RING    = 'cam''0  '");
        assert_eq!(&b[240..243], b"END");
        assert!(b[243..].iter().all(|&c| c == b' '));
        let (cards, len) = parse(&b).unwrap();
        assert_eq!(len, BLOCK);
        assert_eq!(cards[2], ("RING".into(), "cam'0".into()));
        assert_eq!(cards[0].1, "T");
    }

    #[test]
    fn a_header_rewritten_with_other_values_keeps_its_length() {
        let mk = |n: i128| {
            let mut h = Header::new();
            for i in 0..40 {
                h.card(&format!("K{i}"), Value::Int(n), "");
            }
            h.to_bytes()
        };
        assert_eq!(mk(0).len(), mk(i128::from(u64::MAX)).len());
        assert_eq!(mk(0).len(), 2 * BLOCK, "41 cards need two blocks");
    }
}
