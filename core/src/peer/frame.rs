//! MyCHIPs framing: how Noise messages are cut out of a TCP byte stream.
//!
//! MyCHIPs (`lib/peernoise.js`) pipes every socket through the npm package
//! `frame-stream` with its defaults, so each packet on the wire is
//!
//! ```text
//! +----------------------+--------+------------------------------+
//! | length: u32, big end.| header | Noise message                |
//! | (covers header+Noise)| 1 byte | (handshake or transport)     |
//! +----------------------+--------+------------------------------+
//! ```
//!
//! The header is one ASCII letter saying what the Noise message is: `I`
//! first contact (IK message 1), `N` the initiator's identity (one-way N
//! message), `K` reconnection (KK message 1), `A` the responder's
//! acknowledgement (message 2 of IK or KK) and `T` transport data.
//!
//! MyCHIPs does not fragment: one packet carries one Noise message, and a
//! Noise message is at most 65535 bytes, so no honest length field exceeds
//! [`MAX_FRAME`]. The length is checked against the limit *before* anything
//! is allocated for the body, so a peer that announces four gigabytes costs
//! us four bytes of reading.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix (`frame-stream`'s default `lengthSize`).
pub const LENGTH_PREFIX: usize = 4;

/// The largest Noise message (Noise spec, section 3).
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// The largest length field an honest MyCHIPs peer writes: the header byte
/// plus one Noise message.
pub const MAX_FRAME: usize = 1 + MAX_NOISE_MESSAGE;

/// The packet type: the byte in front of every Noise message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// `I`: first contact, IK message 1 (carries the ticket message).
    Initial,
    /// `N`: one-way N message declaring the initiator's agent, sent just
    /// before `K` so the responder knows which static key KK needs.
    Identify,
    /// `K`: reconnection, KK message 1.
    Known,
    /// `A`: acknowledgement, message 2 of IK or KK; completes the handshake.
    Acknowledge,
    /// `T`: transport data on an open session.
    Transport,
}

impl Header {
    /// The byte MyCHIPs writes (`packetBuf.write(header)` of a one-letter string).
    pub fn byte(self) -> u8 {
        match self {
            Header::Initial => b'I',
            Header::Identify => b'N',
            Header::Known => b'K',
            Header::Acknowledge => b'A',
            Header::Transport => b'T',
        }
    }

    pub fn from_byte(byte: u8) -> Option<Header> {
        Some(match byte {
            b'I' => Header::Initial,
            b'N' => Header::Identify,
            b'K' => Header::Known,
            b'A' => Header::Acknowledge,
            b'T' => Header::Transport,
            _ => return None,
        })
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Header::Initial => "first-contact",
            Header::Identify => "identity",
            Header::Known => "reconnection",
            Header::Acknowledge => "acknowledgement",
            Header::Transport => "transport",
        };
        write!(f, "{} ({what})", char::from(self.byte()))
    }
}

/// One packet: its header and the Noise message after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub body: Vec<u8>,
}

/// Why a packet could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame too large: the peer announced {declared} bytes, at most {max} are allowed")]
    TooLarge { declared: u64, max: usize },
    #[error("empty frame: a packet needs at least its header byte")]
    Empty,
    #[error("unknown packet header byte 0x{0:02x} (MyCHIPs uses I, N, K, A and T)")]
    UnknownHeader(u8),
    #[error("the connection was closed")]
    Closed,
    #[error("the connection was closed in the middle of a packet")]
    Truncated,
    #[error("network error: {0}")]
    Io(#[source] io::Error),
}

/// The largest length field allowed under a configured limit (never more
/// than [`MAX_FRAME`]: snow refuses longer Noise messages anyway).
pub fn frame_limit(max_frame: usize) -> usize {
    max_frame.min(MAX_FRAME)
}

/// A whole packet as bytes: length, header, body.
pub fn encode(header: Header, body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let declared = 1 + body.len();
    if declared > MAX_FRAME {
        return Err(FrameError::TooLarge {
            declared: declared as u64,
            max: MAX_FRAME,
        });
    }
    let mut out = Vec::with_capacity(LENGTH_PREFIX + declared);
    // Cannot truncate: declared <= MAX_FRAME < 2^32.
    out.extend_from_slice(&(declared as u32).to_be_bytes());
    out.push(header.byte());
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes one packet from the front of `buf`: `Ok(None)` if more bytes are
/// needed, else the packet and how many bytes it took. A length above
/// `max_frame` is refused as soon as its four bytes are in.
pub fn decode(buf: &[u8], max_frame: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX>() else {
        return Ok(None);
    };
    let declared = check_length(*prefix, max_frame)?;
    let Some(packet) = buf.get(LENGTH_PREFIX..LENGTH_PREFIX + declared) else {
        return Ok(None);
    };
    let frame = split_header(packet)?;
    Ok(Some((frame, LENGTH_PREFIX + declared)))
}

/// Reads one packet. A clean end of stream before the first byte is
/// [`FrameError::Closed`]; one inside a packet is [`FrameError::Truncated`].
pub async fn read_frame<R>(reader: &mut R, max_frame: usize) -> Result<Frame, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut prefix = [0u8; LENGTH_PREFIX];
    let mut filled = 0;
    while filled < LENGTH_PREFIX {
        let Some(rest) = prefix.get_mut(filled..) else {
            break;
        };
        match reader.read(rest).await {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    // The limit is checked before the body buffer exists.
    let declared = check_length(prefix, max_frame)?;
    let mut packet = vec![0u8; declared];
    reader.read_exact(&mut packet).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    split_header(&packet)
}

/// Writes one packet in a single write, so the length and the body do not
/// leave in separate segments.
pub async fn write_frame<W>(writer: &mut W, header: Header, body: &[u8]) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let bytes = encode(header, body)?;
    write_encoded(writer, &bytes).await
}

pub(crate) async fn write_encoded<W>(writer: &mut W, bytes: &[u8]) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    writer.write_all(bytes).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

fn check_length(prefix: [u8; LENGTH_PREFIX], max_frame: usize) -> Result<usize, FrameError> {
    let declared = u32::from_be_bytes(prefix);
    let max = frame_limit(max_frame);
    match usize::try_from(declared) {
        Ok(0) => Err(FrameError::Empty),
        Ok(len) if len <= max => Ok(len),
        _ => Err(FrameError::TooLarge {
            declared: u64::from(declared),
            max,
        }),
    }
}

fn split_header(packet: &[u8]) -> Result<Frame, FrameError> {
    let Some((&byte, body)) = packet.split_first() else {
        return Err(FrameError::Empty);
    };
    let header = Header::from_byte(byte).ok_or(FrameError::UnknownHeader(byte))?;
    Ok(Frame {
        header,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    #[test]
    fn encodes_length_header_and_body() {
        let bytes = encode(Header::Transport, b"abc").expect("small frame");
        assert_eq!(bytes, [0, 0, 0, 4, b'T', b'a', b'b', b'c']);
        let (frame, used) = decode(&bytes, MAX_FRAME).expect("valid").expect("complete");
        assert_eq!(used, bytes.len());
        assert_eq!(frame.header, Header::Transport);
        assert_eq!(frame.body, b"abc");
    }

    #[test]
    fn decode_waits_for_whole_frames() {
        let bytes = encode(Header::Acknowledge, &[7; 10]).expect("small frame");
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], MAX_FRAME)
                    .expect("no error")
                    .is_none()
            );
        }
    }

    #[test]
    fn refuses_bad_lengths_and_headers() {
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff, 0xff], MAX_FRAME),
            Err(FrameError::TooLarge {
                declared: 0xffff_ffff,
                max: MAX_FRAME
            })
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 0], MAX_FRAME),
            Err(FrameError::Empty)
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 1, b'X'], MAX_FRAME),
            Err(FrameError::UnknownHeader(b'X'))
        ));
        // A configured limit below MAX_FRAME is honoured; one above is capped.
        assert!(matches!(
            decode(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLarge { max: 10, .. })
        ));
        assert_eq!(frame_limit(usize::MAX), MAX_FRAME);
        assert!(matches!(
            encode(Header::Transport, &vec![0; MAX_NOISE_MESSAGE + 1]),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(encode(Header::Transport, &vec![0; MAX_NOISE_MESSAGE]).is_ok());
    }

    /// A reader that announces 4 GiB and then would serve zeros forever,
    /// counting what it was asked for.
    struct Announcer {
        served: usize,
    }

    impl AsyncRead for Announcer {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let prefix = [0xffu8; LENGTH_PREFIX];
            let byte = prefix.get(self.served).copied().unwrap_or(0);
            buf.put_slice(&[byte]);
            self.served += 1;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn oversize_is_refused_after_reading_only_the_prefix() {
        let mut reader = Announcer { served: 0 };
        let result = read_frame(&mut reader, MAX_FRAME).await;
        assert!(
            matches!(result, Err(FrameError::TooLarge { .. })),
            "{result:?}"
        );
        assert_eq!(reader.served, LENGTH_PREFIX);
    }

    #[tokio::test]
    async fn eof_before_and_inside_a_frame() {
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty, MAX_FRAME).await,
            Err(FrameError::Closed)
        ));
        let mut short: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut short, MAX_FRAME).await,
            Err(FrameError::Truncated)
        ));
        let mut cut: &[u8] = &[0, 0, 0, 9, b'T', 1, 2];
        assert!(matches!(
            read_frame(&mut cut, MAX_FRAME).await,
            Err(FrameError::Truncated)
        ));
    }

    #[tokio::test]
    async fn round_trips_through_a_stream() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, Header::Initial, b"hello")
            .await
            .expect("write");
        write_frame(&mut a, Header::Transport, b"")
            .await
            .expect("write");
        let first = read_frame(&mut b, MAX_FRAME).await.expect("first");
        let second = read_frame(&mut b, MAX_FRAME).await.expect("second");
        assert_eq!(
            (first.header, first.body.as_slice()),
            (Header::Initial, &b"hello"[..])
        );
        assert_eq!((second.header, second.body.len()), (Header::Transport, 0));
    }
}
