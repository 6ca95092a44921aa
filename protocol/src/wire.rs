//! The binary form of a blocks answer (`POST /v1/blocks` and `GET /v1/blocks` with
//! `Accept: application/octet-stream`). It carries what the JSON `BlocksResponse` carries, but
//! the blocks travel as their exact encoding (docs/PROTOCOL.md §5.3) instead of hex, which
//! halves the bytes on the wire and spares both sides the hex work.
//!
//! ```text
//! BlocksAnswer :=
//!   magic        [4]   "NBLK"
//!   version      u8    = 1
//!   flags        u8    bit 0: a fork point follows; bit 1: more blocks follow the last one;
//!                      the other bits are 0
//!   fork_height  u64   } only when flags bit 0 is set
//!   fork_id      [32]  }
//!   tip_height   u64
//!   tip_id       [32]
//!   tip_time     u64   Unix seconds
//!   count        u32   <= MAX_ANSWER_BLOCKS
//!   count x ( len u32 (HEADER_LEN ..= MAX_BLOCK_BYTES) | block [len] )
//! ```
//!
//! Integers are little-endian like the rest of the protocol. There are no per-block heights
//! or ids: each block's header holds them, and the wallet decodes and verifies every block
//! anyway. Decoding is strict and bounded: every count and length is checked against its
//! limit and against the bytes left before anything is allocated, and trailing bytes are an
//! error, so an answer has exactly one encoding.

use crate::block::{HEADER_LEN, MAX_BLOCK_BYTES};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{BlockId, HexError};

/// The first bytes of a binary blocks answer.
pub const MAGIC: [u8; 4] = *b"NBLK";
pub const VERSION: u8 = 1;
/// The media type of the binary form.
pub const CONTENT_TYPE: &str = "application/octet-stream";
/// Most blocks one binary answer may hold (a gateway sends at most what was asked for, and
/// the reference gateway at most 100).
pub const MAX_ANSWER_BLOCKS: usize = 1000;

const FLAG_FORK_POINT: u8 = 1;
const FLAG_MORE: u8 = 2;
/// magic, version, flags, tip, count: the size of an answer without fork point and blocks.
const FIXED_LEN: usize = 4 + 1 + 1 + (8 + 32 + 8) + 4;

/// The tip as the binary answer carries it (the JSON `TipInfo` with a typed id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub id: BlockId,
    pub time: u64,
}

/// A decoded blocks answer: the same facts as the JSON `BlocksResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlocksAnswer {
    /// The newest locator entry on the gateway's best chain (height, id), or the block before
    /// `from` for a height range; `None` when nothing matched (the blocks start at genesis).
    pub fork_point: Option<(u64, BlockId)>,
    pub tip: Tip,
    /// More blocks follow the last one.
    pub more: bool,
    /// Consecutive full block encodings, oldest first (not yet decoded or verified).
    pub blocks: Vec<Vec<u8>>,
}

impl BlocksAnswer {
    /// The exact size of [`BlocksAnswer::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            + if self.fork_point.is_some() { 40 } else { 0 }
            + self.blocks.iter().map(|b| 4 + b.len()).sum::<usize>()
    }

    /// Encodes the answer. Refuses (with the error [`BlocksAnswer::decode`] would give) an
    /// answer outside the format's limits, so what is sent always decodes.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        if self.blocks.len() > MAX_ANSWER_BLOCKS {
            return Err(DecodeError::TooMany {
                what: "blocks",
                count: self.blocks.len() as u64,
                max: MAX_ANSWER_BLOCKS as u64,
            });
        }
        for b in &self.blocks {
            check_block_len(b.len())?;
        }
        let mut w = Writer::with_capacity(self.encoded_len());
        w.bytes(&MAGIC);
        w.u8(VERSION);
        let mut flags = 0;
        if self.fork_point.is_some() {
            flags |= FLAG_FORK_POINT;
        }
        if self.more {
            flags |= FLAG_MORE;
        }
        w.u8(flags);
        if let Some((height, id)) = &self.fork_point {
            w.u64(*height);
            w.bytes(id.as_bytes());
        }
        w.u64(self.tip.height);
        w.bytes(self.tip.id.as_bytes());
        w.u64(self.tip.time);
        // Checked above: at most MAX_ANSWER_BLOCKS, and each length at most MAX_BLOCK_BYTES.
        w.u32(self.blocks.len() as u32);
        for b in &self.blocks {
            w.u32(b.len() as u32);
            w.bytes(b);
        }
        Ok(w.into_bytes())
    }

    /// Strict, bounded decoding; never panics, and allocates at most about the input's size.
    pub fn decode(bytes: &[u8]) -> Result<BlocksAnswer, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>()? != MAGIC {
            return Err(DecodeError::NonCanonical(
                "not a binary blocks answer (magic)",
            ));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "blocks answer",
                version: version.into(),
            });
        }
        let flags = r.u8()?;
        if flags & !(FLAG_FORK_POINT | FLAG_MORE) != 0 {
            return Err(DecodeError::NonCanonical(
                "unknown flag bits in a blocks answer",
            ));
        }
        let fork_point = if flags & FLAG_FORK_POINT != 0 {
            Some((r.u64()?, BlockId(r.array()?)))
        } else {
            None
        };
        let tip = Tip {
            height: r.u64()?,
            id: BlockId(r.array()?),
            time: r.u64()?,
        };
        // Each block takes at least its length and a header.
        let count = r.count_u32("blocks", MAX_ANSWER_BLOCKS, 4 + HEADER_LEN)?;
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            check_block_len(len)?;
            blocks.push(r.take(len)?.to_vec());
        }
        r.finish()?;
        Ok(BlocksAnswer {
            fork_point,
            tip,
            more: flags & FLAG_MORE != 0,
            blocks,
        })
    }
}

fn check_block_len(len: usize) -> Result<(), DecodeError> {
    if len > MAX_BLOCK_BYTES {
        return Err(DecodeError::TooLarge {
            size: len,
            max: MAX_BLOCK_BYTES,
        });
    }
    if len < HEADER_LEN {
        return Err(DecodeError::NonCanonical(
            "a block in a blocks answer is shorter than a header",
        ));
    }
    Ok(())
}

/// The JSON answer in the binary form's terms (hex decoded), so that a wallet handles both
/// forms with one code path, and a test can compare them.
impl TryFrom<&crate::api::BlocksResponse> for BlocksAnswer {
    type Error = HexError;
    fn try_from(r: &crate::api::BlocksResponse) -> Result<Self, HexError> {
        let fork_point = match &r.fork_point {
            Some(f) => Some((f.height, BlockId::from_hex(&f.hash)?)),
            None => None,
        };
        let blocks = r
            .blocks
            .iter()
            .map(|b| hex::decode(&b.hex).map_err(|e| HexError::NotHex(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(BlocksAnswer {
            fork_point,
            tip: Tip {
                height: r.tip.height,
                id: BlockId::from_hex(&r.tip.hash)?,
                time: r.tip.time,
            },
            more: r.more,
            blocks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(include_str!("../tests/vectors.json"))
            .unwrap_or_else(|e| panic!("vectors.json: {e}"));
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("no vector {name}"))
            .to_owned()
    }

    fn id(name: &str) -> BlockId {
        BlockId::from_hex(&vector(name)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The answer quoted in docs/PROTOCOL.md: block1 of the test vectors after the fork point
    /// genesis, with block1 as the tip.
    fn sample() -> BlocksAnswer {
        BlocksAnswer {
            fork_point: Some((0, id("genesis_id"))),
            tip: Tip {
                height: 1,
                id: id("block1_id"),
                time: 1_700_000_060,
            },
            more: false,
            blocks: vec![hex::decode(vector("block1_hex")).unwrap_or_else(|e| panic!("{e}"))],
        }
    }

    /// Everything before block1's own bytes, as docs/PROTOCOL.md quotes it.
    const SAMPLE_PREFIX_HEX: &str = concat!(
        "4e424c4b",                                                         // "NBLK"
        "01",                                                               // version
        "01",                                                               // flags: fork point
        "0000000000000000",                                                 // fork height 0
        "eb11fc9fd7fa8026a1cc23a4d1035cbfe52f440bf06544b4bc5837f6032429c6", // genesis id
        "0100000000000000",                                                 // tip height 1
        "eee4fa8d30a1e40cfe11c4f34c571c3275b7251bb3ff933f3e26115bbc511b55", // block1 id
        "3cf1536500000000",                                                 // tip time
        "01000000",                                                         // one block
    );

    #[test]
    fn the_test_vector_encodes_byte_for_byte_and_decodes_back() {
        let a = sample();
        let block1 = vector("block1_hex");
        let len = (block1.len() / 2) as u32;
        let expected = format!(
            "{SAMPLE_PREFIX_HEX}{}{block1}",
            hex::encode(len.to_le_bytes())
        );
        let bytes = a.encode().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(bytes.len(), a.encoded_len());
        assert_eq!(BlocksAnswer::decode(&bytes), Ok(a));
        // 1,700,000,060 = 0x6553f13c.
        assert_eq!(
            &SAMPLE_PREFIX_HEX[2 * 86..2 * 94],
            hex::encode(1_700_000_060u64.to_le_bytes())
        );
    }

    #[test]
    fn flags_and_empty_answers_round_trip() {
        let mut a = sample();
        a.fork_point = None;
        a.more = true;
        a.blocks.clear();
        let bytes = a.encode().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes.len(), FIXED_LEN);
        assert_eq!(bytes[5], FLAG_MORE);
        assert_eq!(BlocksAnswer::decode(&bytes), Ok(a));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode().unwrap_or_else(|e| panic!("{e}"));
        for n in 0..bytes.len() {
            assert!(
                BlocksAnswer::decode(&bytes[..n]).is_err(),
                "{n} bytes decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            BlocksAnswer::decode(&long),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn bad_headers_counts_and_lengths_are_refused_before_allocating() {
        let good = sample().encode().unwrap_or_else(|e| panic!("{e}"));
        let with = |at: usize, patch: &[u8]| {
            let mut b = good.clone();
            b[at..at + patch.len()].copy_from_slice(patch);
            BlocksAnswer::decode(&b)
        };
        assert!(matches!(
            with(0, b"JSON"),
            Err(DecodeError::NonCanonical(_))
        ));
        assert!(matches!(
            with(4, &[2]),
            Err(DecodeError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(with(5, &[4]), Err(DecodeError::NonCanonical(_))));
        // Count offset: the fixed part plus the fork point, minus the count itself.
        let count_at = FIXED_LEN + 40 - 4;
        assert!(matches!(
            with(count_at, &u32::MAX.to_le_bytes()),
            Err(DecodeError::TooMany { .. })
        ));
        // A count the bytes left cannot hold.
        assert!(matches!(
            with(count_at, &2u32.to_le_bytes()),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        let len_at = count_at + 4;
        assert!(matches!(
            with(len_at, &u32::MAX.to_le_bytes()),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            with(len_at, &10u32.to_le_bytes()),
            Err(DecodeError::NonCanonical(_))
        ));
        let mut too_many = sample();
        too_many.blocks = vec![vec![0; HEADER_LEN]; MAX_ANSWER_BLOCKS + 1];
        assert!(matches!(
            too_many.encode(),
            Err(DecodeError::TooMany { .. })
        ));
        let mut short = sample();
        short.blocks = vec![vec![0; 3]];
        assert!(short.encode().is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let good = sample().encode().unwrap_or_else(|e| panic!("{e}"));
        // xorshift: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let mut b = good.clone();
            for _ in 0..1 + round % 8 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            b.truncate((next() as usize) % (b.len() + 1));
            let _ = BlocksAnswer::decode(&b);
            let n = (next() as usize) % 200;
            let random: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            let _ = BlocksAnswer::decode(&random);
        }
    }

    #[test]
    fn the_json_answer_converts_to_the_same_facts() {
        use crate::api::{BlockEntry, BlockRef, BlocksResponse, TipInfo};
        let a = sample();
        let json = BlocksResponse {
            fork_point: Some(BlockRef {
                height: 0,
                hash: vector("genesis_id"),
            }),
            blocks: vec![BlockEntry {
                height: 1,
                id: vector("block1_id"),
                hex: vector("block1_hex"),
            }],
            tip: TipInfo {
                height: 1,
                hash: vector("block1_id"),
                time: 1_700_000_060,
            },
            more: false,
        };
        assert_eq!(BlocksAnswer::try_from(&json), Ok(a));
    }
}
