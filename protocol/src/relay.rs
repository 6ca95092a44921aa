//! The agent relay's control protocol (docs/PROTOCOL.md §12, "The relay"), shared by the
//! gateway's relay and the wallet agent that registers with it. Pure: the messages, their
//! bounds and the bytes that open a connection; the Noise handshake and the streams are each
//! side's.
//!
//! One TCP port of the gateway takes two kinds of connection, told apart by their first four
//! bytes:
//! - [`CONTROL_MAGIC`]: a wallet agent registers. Then `Noise_XN_25519_ChaChaPoly_BLAKE2b`
//!   with prologue [`PROLOGUE`] (the agent's static key is its agent key: the handshake
//!   proves it holds the key its CHIP address names), each Noise message framed by a
//!   big-endian u16 length; after the handshake, one JSON [`ControlMessage`] per transport
//!   message.
//! - [`DATA_MAGIC`] and a 32-byte claim the relay sent on the control connection: the agent's
//!   connection for one waiting partner. After those 36 bytes the connection carries the
//!   partner's bytes both ways, unchanged (the MyCHIPs Noise session, end to end).

use serde::{Deserialize, Serialize};

/// First bytes of a control connection.
pub const CONTROL_MAGIC: [u8; 4] = *b"NRC1";
/// First bytes of a data connection, followed by the claim.
pub const DATA_MAGIC: [u8; 4] = *b"NRD1";
/// The Noise pattern of the control connection.
pub const NOISE_PATTERN: &str = "Noise_XN_25519_ChaChaPoly_BLAKE2b";
/// The Noise prologue of the control connection.
pub const PROLOGUE: &[u8] = b"notch-relay/1";
/// The largest Noise message (length field) either side accepts on a control connection.
pub const MAX_CONTROL_FRAME: usize = 1024;
/// The length a control frame's 2-byte big-endian prefix announces, if it is allowed
/// (1 to [`MAX_CONTROL_FRAME`]): checked before anything is allocated for the body.
pub fn frame_len(prefix: [u8; 2]) -> Result<usize, usize> {
    let len = usize::from(u16::from_be_bytes(prefix));
    if len == 0 || len > MAX_CONTROL_FRAME {
        return Err(len);
    }
    Ok(len)
}

/// `body` as a control frame: its length as a big-endian u16, then the body; `Err` with
/// the length when it does not fit the prefix.
pub fn frame(body: &[u8]) -> Result<Vec<u8>, usize> {
    let len = u16::try_from(body.len()).map_err(|_| body.len())?;
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Bytes a Noise transport message adds to its plaintext (the tag).
pub const TAG: usize = 16;
/// The largest JSON control message.
pub const MAX_CONTROL_MESSAGE: usize = MAX_CONTROL_FRAME - TAG;
/// Protocol version in [`ControlMessage::Register`].
pub const VERSION: u32 = 1;

/// A claim: which waiting partner a data connection is for (random, one-time).
pub type Claim = [u8; 32];

/// One message on an established control connection (and the payload of the handshake's
/// third message, which is always [`ControlMessage::Register`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlMessage {
    /// Agent → relay, in the handshake: give me my port.
    Register {
        v: u32,
    },
    /// Relay → agent: partners reach you at this port of the relay's host; a partner waits
    /// at most `wait_ms` for your data connection.
    Registered {
        port: u16,
        wait_ms: u64,
    },
    /// Relay → agent: not registered (why); the relay closes the connection.
    Refused {
        reason: String,
    },
    /// Relay → agent: a partner is waiting; open a data connection with this claim (hex).
    Partner {
        claim: String,
    },
    /// Agent → relay: are you there? Answered with `pong`.
    Ping,
    Pong,
    /// Either side: the last message was not understood (it changed nothing).
    Error {
        reason: String,
    },
}

/// Why a control message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("control message too large: {0} bytes, at most {MAX_CONTROL_MESSAGE}")]
    TooLarge(usize),
    #[error("not a relay control message: {0}")]
    Malformed(String),
    #[error("not a claim (64 hex digits)")]
    BadClaim,
}

impl ControlMessage {
    /// Its JSON bytes; refused if larger than [`MAX_CONTROL_MESSAGE`].
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let bytes = serde_json::to_vec(self).map_err(|e| ControlError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Parses one message: bounded, strict (unknown ops and fields are refused).
    pub fn decode(bytes: &[u8]) -> Result<ControlMessage, ControlError> {
        if bytes.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| ControlError::Malformed(e.to_string()))
    }

    /// A `partner` message for `claim`.
    pub fn partner(claim: &Claim) -> ControlMessage {
        ControlMessage::Partner {
            claim: hex::encode(claim),
        }
    }
}

/// The claim of a `partner` message.
pub fn parse_claim(text: &str) -> Result<Claim, ControlError> {
    let mut claim = [0u8; 32];
    if text.len() != 64 {
        return Err(ControlError::BadClaim);
    }
    hex::decode_to_slice(text, &mut claim).map_err(|_| ControlError::BadClaim)?;
    Ok(claim)
}

/// The 36 bytes that open a data connection.
pub fn data_preamble(claim: &Claim) -> [u8; 36] {
    let mut out = [0u8; 36];
    out[..4].copy_from_slice(&DATA_MAGIC);
    out[4..].copy_from_slice(claim);
    out
}

/// A relay port range: `LO-HI`, one port `P`, or `0` for any free port (not stable across
/// restarts unless the port is free again; for tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { lo: 0, hi: 0 };

    pub fn is_any(&self) -> bool {
        self.lo == 0
    }

    pub fn contains(&self, port: u16) -> bool {
        !self.is_any() && (self.lo..=self.hi).contains(&port)
    }

    /// How many ports it holds (0 for [`PortRange::ANY`]).
    pub fn len(&self) -> usize {
        if self.is_any() {
            0
        } else {
            usize::from(self.hi - self.lo) + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let port = |t: &str| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| format!("{t:?} is not a port number"))
        };
        let (lo, hi) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(text)?;
                (p, p)
            }
        };
        if lo == 0 && hi == 0 {
            return Ok(PortRange::ANY);
        }
        if lo == 0 || hi < lo {
            return Err(format!(
                "{text:?}: a range is LO-HI with 0 < LO <= HI (or 0 for any free port)"
            ));
        }
        Ok(PortRange { lo, hi })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_any() {
            write!(f, "any free port")
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_its_length_then_its_body_within_the_bounds() {
        let framed = frame(b"abc").expect("fits");
        assert_eq!(framed, [0, 3, b'a', b'b', b'c']);
        assert_eq!(frame_len([framed[0], framed[1]]), Ok(3));
        assert_eq!(frame_len([0, 0]), Err(0));
        assert_eq!(frame_len(1025u16.to_be_bytes()), Err(1025));
        assert_eq!(frame_len(1024u16.to_be_bytes()), Ok(1024));
        assert_eq!(frame(&vec![0; 70_000]), Err(70_000));
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let all = [
            ControlMessage::Register { v: VERSION },
            ControlMessage::Registered {
                port: 47000,
                wait_ms: 8000,
            },
            ControlMessage::Refused { reason: "x".into() },
            ControlMessage::partner(&[7; 32]),
            ControlMessage::Ping,
            ControlMessage::Pong,
            ControlMessage::Error { reason: "y".into() },
        ];
        for m in all {
            assert_eq!(ControlMessage::decode(&m.encode().unwrap()).unwrap(), m);
        }
        assert_eq!(
            ControlMessage::Register { v: 1 }.encode().unwrap(),
            br#"{"op":"register","v":1}"#
        );
        for bad in [
            &b"{}"[..],
            b"[]",
            br#"{"op":"register"}"#,
            br#"{"op":"register","v":1,"extra":2}"#,
            br#"{"op":"fly"}"#,
            b"\xff",
        ] {
            assert!(matches!(
                ControlMessage::decode(bad),
                Err(ControlError::Malformed(_))
            ));
        }
        let big = vec![b' '; MAX_CONTROL_MESSAGE + 1];
        assert!(matches!(
            ControlMessage::decode(&big),
            Err(ControlError::TooLarge(_))
        ));
        let long = ControlMessage::Error {
            reason: "z".repeat(MAX_CONTROL_MESSAGE),
        };
        assert!(matches!(long.encode(), Err(ControlError::TooLarge(_))));
    }

    #[test]
    fn claims_and_ranges_parse() {
        let claim = [0xab; 32];
        let ControlMessage::Partner { claim: text } = ControlMessage::partner(&claim) else {
            unreachable!()
        };
        assert_eq!(parse_claim(&text), Ok(claim));
        assert_eq!(parse_claim("ab"), Err(ControlError::BadClaim));
        assert_eq!(parse_claim(&"zz".repeat(32)), Err(ControlError::BadClaim));
        let pre = data_preamble(&claim);
        assert_eq!(&pre[..4], b"NRD1");
        assert_eq!(&pre[4..], &claim);
        assert_eq!(
            "47000-47031".parse(),
            Ok(PortRange {
                lo: 47000,
                hi: 47031
            })
        );
        assert_eq!("5".parse(), Ok(PortRange { lo: 5, hi: 5 }));
        assert_eq!("0".parse(), Ok(PortRange::ANY));
        assert_eq!(PortRange { lo: 10, hi: 12 }.len(), 3);
        for bad in ["", "a-b", "9-3", "0-4", "70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }
}
