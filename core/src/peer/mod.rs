//! Agent-to-agent transport: Noise over TCP with MyCHIPs framing, so a
//! Notch wallet and a MyCHIPs server can keep tallies with each other.
//!
//! Everything on the wire follows MyCHIPs's `lib/peernoise.js` (with
//! `lib/noisewrap.js` over the npm `noise-protocol` library and
//! `frame-stream` for framing); `tests/interop/mychips-noise` runs that
//! library against this module. The layers:
//!
//! - [`frame`]: the length-prefixed packets with their one-letter header;
//! - `handshake` (sans I/O): Noise_IK_25519_ChaChaPoly_BLAKE2b for a first
//!   contact made with a ticket, Noise_N then Noise_KK for a reconnection,
//!   chosen as MyCHIPs chooses them;
//! - `session`: those over a stream, under deadlines, then JSON messages
//!   ([`Envelope`]) in transport packets.
//!
//! The local static key is the wallet's seed-derived agent key used as
//! X25519 ([`LocalKey::from_agent_key`]); a peer is named by its agent id,
//! the base64url X25519 public key a CHIP address's `agent` field carries
//! ([`AgentId`]).
//!
//! Trust: a responder learns (first contact) or checks (reconnection) the
//! initiator's key from the handshake itself, and a message's `from.agent`
//! must be that key. Whether to answer a proved peer is the caller's call
//! ([`Incoming`]). Nothing read from the network can panic here or make us
//! allocate more than one Noise message.

pub mod envelope;
pub mod frame;
mod handshake;
mod identity;
mod resolver;
mod session;

pub use envelope::{ChipAddress, Envelope};
pub use frame::FrameError;
pub use handshake::{AcceptError, ConnectError, HandshakeKind, vector};
pub use identity::{AgentId, AgentIdError, LocalKey};
pub use resolver::noise_builder;
pub use session::{
    Incoming, MAX_MESSAGE, PeerConfig, RecvError, SendError, Session, SessionInfo, SessionReceiver,
    SessionSender, accept, connect, connect_over, respond,
};
