//! The phases of a session, in the order both parties enter them. Each names the bytes a
//! channel counts ([`Channel::set_phase`]) and the point where a fault test injects a failure.

use mp2ml_mpc::Channel;

/// A phase of the protocol as seen on the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The client's hello, the server's verdict, the client's public key.
    Handshake,
    /// Offline pass over the c1 halves: the client's seeds, the server's c1 halves back.
    Precompute,
    /// Garbling ahead of the input (entered by the garbled-circuit engine, `mp2ml_mpc`).
    GcOffline,
    /// The c0 windows of the client's input encryptions.
    Input,
    /// The server's masked c0 windows, decrypted by the client into its shares.
    He2Mpc,
    /// Wire labels and oblivious transfers of garbling done ahead (entered by `mp2ml_mpc`).
    GcOnline,
    /// Garbling and evaluation streamed per step when the tables do not fit the budget
    /// (entered by `mp2ml_mpc`).
    GcStream,
    /// The client's encryptions of its masked circuit outputs.
    Mpc2He,
    /// The server's flooded output windows.
    Output,
}

impl Phase {
    /// The phases of a session that garbles ahead, in order. A session that streams enters
    /// [`Phase::GcStream`] in place of [`Phase::GcOffline`] and [`Phase::GcOnline`].
    pub const GARBLE_AHEAD: [Phase; 8] = [
        Phase::Handshake,
        Phase::Precompute,
        Phase::GcOffline,
        Phase::Input,
        Phase::He2Mpc,
        Phase::GcOnline,
        Phase::Mpc2He,
        Phase::Output,
    ];

    /// The name the channel counts bytes under.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Handshake => "handshake",
            Phase::Precompute => "precompute",
            Phase::GcOffline => "offline",
            Phase::Input => "input",
            Phase::He2Mpc => "he2mpc",
            Phase::GcOnline => "online",
            Phase::GcStream => "stream",
            Phase::Mpc2He => "mpc2he",
            Phase::Output => "output",
        }
    }

    /// The phase of a channel phase name, if it is one of the protocol's.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::GARBLE_AHEAD
            .into_iter()
            .chain([Phase::GcStream])
            .find(|p| p.name() == name)
    }

    /// Makes `ch` count what follows under this phase.
    pub fn enter(self, ch: &mut impl Channel) {
        ch.set_phase(self.name());
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
