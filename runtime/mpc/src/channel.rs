//! Byte channels between the two parties: TCP for real runs, in-memory pairs for tests.
//!
//! A [`Channel`] moves raw bytes (`send`/`recv`/`flush`) and length-prefixed frames
//! (`send_frame`/`recv_frame`, 4-byte little-endian length, bounded by
//! [`Channel::max_frame`]). Every channel counts the bytes it sends and receives per named phase
//! ([`Channel::set_phase`]), readable as [`ChannelStats`]. A peer that closes its end is reported
//! as [`MpcError::Closed`], one that stalls longer than the configured timeout as
//! [`MpcError::Timeout`]; neither hangs nor panics. A per-read timeout alone does not bound a
//! phase (a peer may send one byte just before each timeout), so a channel also takes an
//! absolute deadline ([`Channel::set_deadline`]): past it every read and write fails with
//! [`MpcError::Deadline`].
//!
//! `recv` flushes pending output before it blocks, so a protocol cannot deadlock on bytes it
//! buffered itself.

use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::error::{MpcError, Result};

/// Bytes sent and received during one phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseStats {
    /// Phase name as given to [`Channel::set_phase`] (`"default"` before any call).
    pub phase: String,
    /// Bytes this side sent.
    pub sent: u64,
    /// Bytes this side received.
    pub received: u64,
}

/// Per-phase byte counts of one channel, in the order the phases were first entered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// One entry per phase name.
    pub phases: Vec<PhaseStats>,
}

impl ChannelStats {
    /// Counts for `phase` (zero if the phase was never entered).
    pub fn phase(&self, phase: &str) -> PhaseStats {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .cloned()
            .unwrap_or_else(|| PhaseStats {
                phase: phase.to_owned(),
                ..PhaseStats::default()
            })
    }

    /// Total bytes sent over all phases.
    pub fn sent(&self) -> u64 {
        self.phases.iter().map(|p| p.sent).sum()
    }

    /// Total bytes received over all phases.
    pub fn received(&self) -> u64 {
        self.phases.iter().map(|p| p.received).sum()
    }
}

/// The per-phase counter every channel embeds.
#[derive(Clone, Debug)]
struct Counter {
    stats: ChannelStats,
    current: usize,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            stats: ChannelStats {
                phases: vec![PhaseStats {
                    phase: "default".into(),
                    sent: 0,
                    received: 0,
                }],
            },
            current: 0,
        }
    }
}

impl Counter {
    fn set_phase(&mut self, phase: &str) {
        if let Some(i) = self.stats.phases.iter().position(|p| p.phase == phase) {
            self.current = i;
        } else {
            self.stats.phases.push(PhaseStats {
                phase: phase.to_owned(),
                sent: 0,
                received: 0,
            });
            self.current = self.stats.phases.len() - 1;
        }
    }

    fn name(&self) -> String {
        self.stats
            .phases
            .get(self.current)
            .map(|p| p.phase.clone())
            .unwrap_or_default()
    }

    fn add_sent(&mut self, n: usize) {
        if let Some(p) = self.stats.phases.get_mut(self.current) {
            p.sent += n as u64;
        }
    }

    fn add_received(&mut self, n: usize) {
        if let Some(p) = self.stats.phases.get_mut(self.current) {
            p.received += n as u64;
        }
    }
}

/// Piece size of the default [`Channel::exchange`] (below any socket buffer).
pub const EXCHANGE_PIECE: usize = 16 << 10;

/// A reliable, ordered byte channel to the other party.
pub trait Channel {
    /// Queues `bytes` for sending (buffered; see [`Channel::flush`]).
    fn send(&mut self, bytes: &[u8]) -> Result<()>;

    /// Fills `buf` completely with the next bytes from the peer, flushing pending output first.
    fn recv(&mut self, buf: &mut [u8]) -> Result<()>;

    /// Pushes buffered output to the peer.
    fn flush(&mut self) -> Result<()>;

    /// Starts counting bytes under `phase` (phases may be re-entered; counts accumulate).
    fn set_phase(&mut self, phase: &str);

    /// Byte counts so far, per phase.
    fn stats(&self) -> ChannelStats;

    /// Largest frame [`Channel::recv_frame`] accepts.
    fn max_frame(&self) -> usize;

    /// Sets (or, with `None`, clears) an absolute deadline: once it has passed, `recv`, `send`
    /// and `flush` fail with [`MpcError::Deadline`], and no wait extends beyond it. The default
    /// ignores deadlines (for wrappers that do not forward them).
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        let _ = deadline;
    }

    /// Sends a frame: a 4-byte little-endian length, then `data`.
    fn send_frame(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.max_frame() || u32::try_from(data.len()).is_err() {
            return Err(MpcError::FrameTooLarge {
                len: data.len() as u64,
                max: self.max_frame(),
            });
        }
        self.send(&(data.len() as u32).to_le_bytes())?;
        self.send(data)
    }

    /// Receives a frame sent by [`Channel::send_frame`]; a length above
    /// [`Channel::max_frame`] is an error and nothing is allocated for it.
    fn recv_frame(&mut self) -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.recv(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len as usize > self.max_frame() {
            return Err(MpcError::FrameTooLarge {
                len: u64::from(len),
                max: self.max_frame(),
            });
        }
        let mut data = vec![0u8; len as usize];
        self.recv(&mut data)?;
        Ok(data)
    }

    /// Sends 128-bit blocks, little-endian, without framing.
    fn send_blocks(&mut self, blocks: &[u128]) -> Result<()> {
        const CHUNK: usize = 4096;
        let mut buf = Vec::with_capacity(16 * CHUNK.min(blocks.len()));
        for chunk in blocks.chunks(CHUNK) {
            buf.clear();
            for b in chunk {
                buf.extend_from_slice(&b.to_le_bytes());
            }
            self.send(&buf)?;
        }
        Ok(())
    }

    /// Receives exactly `out.len()` blocks sent by [`Channel::send_blocks`].
    fn recv_blocks(&mut self, out: &mut [u128]) -> Result<()> {
        const CHUNK: usize = 4096;
        let mut buf = vec![0u8; 16 * CHUNK.min(out.len())];
        for chunk in out.chunks_mut(CHUNK) {
            let bytes = buf
                .get_mut(..16 * chunk.len())
                .ok_or_else(|| MpcError::Protocol("block buffer".into()))?;
            self.recv(bytes)?;
            for (b, raw) in chunk.iter_mut().zip(bytes.chunks_exact(16)) {
                let mut a = [0u8; 16];
                a.copy_from_slice(raw);
                *b = u128::from_le_bytes(a);
            }
        }
        Ok(())
    }

    /// One simultaneous round: sends `out` and fills `inp` with the bytes of a peer that calls
    /// `exchange` at the same time (a GMW layer). The default alternates pieces of
    /// [`EXCHANGE_PIECE`] bytes, so neither side ever has more than one piece in flight and the
    /// round cannot deadlock on full buffers; [`TcpChannel`] writes and reads concurrently.
    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> Result<()> {
        let mut outs = out.chunks(EXCHANGE_PIECE);
        let mut ins = inp.chunks_mut(EXCHANGE_PIECE);
        loop {
            let (o, i) = (outs.next(), ins.next());
            if o.is_none() && i.is_none() {
                return Ok(());
            }
            if let Some(o) = o {
                self.send(o)?;
                self.flush()?;
            }
            if let Some(i) = i {
                self.recv(i)?;
            }
        }
    }

    /// Sends a `u64`, little-endian.
    fn send_u64(&mut self, v: u64) -> Result<()> {
        self.send(&v.to_le_bytes())
    }

    /// Receives a `u64` sent by [`Channel::send_u64`].
    fn recv_u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.recv(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// `Channel` for a pointer to a channel: every method forwards to the pointee.
macro_rules! forward_channel {
    ($ptr:ty) => {
        impl<C: Channel + ?Sized> Channel for $ptr {
            fn set_deadline(&mut self, deadline: Option<Instant>) {
                (**self).set_deadline(deadline)
            }
            fn send(&mut self, bytes: &[u8]) -> Result<()> {
                (**self).send(bytes)
            }
            fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> Result<()> {
                (**self).exchange(out, inp)
            }
            fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
                (**self).recv(buf)
            }
            fn flush(&mut self) -> Result<()> {
                (**self).flush()
            }
            fn set_phase(&mut self, phase: &str) {
                (**self).set_phase(phase)
            }
            fn stats(&self) -> ChannelStats {
                (**self).stats()
            }
            fn max_frame(&self) -> usize {
                (**self).max_frame()
            }
        }
    };
}

forward_channel!(&mut C);
forward_channel!(Box<C>);

/// Settings shared by both channel kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// How long a `recv` may wait for the peer before failing with [`MpcError::Timeout`].
    pub read_timeout: Duration,
    /// How long a blocked write may wait (TCP only) before failing with [`MpcError::Timeout`].
    pub write_timeout: Duration,
    /// Largest accepted frame length.
    pub max_frame: usize,
    /// Size of the read and write buffers (TCP) or of the batches handed over (in-memory).
    pub buffer_size: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_frame: 64 << 20,
            buffer_size: 1 << 20,
        }
    }
}

fn map_io(e: std::io::Error, counter: &Counter, timeout: Duration) -> MpcError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => MpcError::Timeout {
            phase: counter.name(),
            after: timeout,
        },
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected
        | ErrorKind::WriteZero => MpcError::Closed {
            phase: counter.name(),
        },
        _ => MpcError::Io {
            phase: counter.name(),
            source: e,
        },
    }
}

/// An absolute deadline and the budget it was set with (for the error message).
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    fn new(at: Option<Instant>) -> Option<Deadline> {
        at.map(|at| Deadline {
            at,
            budget: at.saturating_duration_since(Instant::now()),
        })
    }

    fn error(&self, counter: &Counter) -> MpcError {
        MpcError::Deadline {
            phase: counter.name(),
            budget: self.budget,
        }
    }

    /// How long the next wait may last: `base`, capped by the time left before the deadline;
    /// an error once the deadline has passed.
    fn wait(d: Option<Deadline>, base: Duration, counter: &Counter) -> Result<Duration> {
        let Some(d) = d else { return Ok(base) };
        let left = d.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(d.error(counter));
        }
        Ok(left.min(base))
    }

    /// A timeout error becomes a deadline error when the deadline is what cut the wait short.
    fn refine(d: Option<Deadline>, e: MpcError, counter: &Counter) -> MpcError {
        match (d, &e) {
            (Some(d), MpcError::Timeout { .. }) if Instant::now() >= d.at => d.error(counter),
            _ => e,
        }
    }
}

/// Fills `buf` from `reader` under `deadline`: reads through the buffer, each wait capped by the
/// time left, so that a peer trickling bytes cannot stretch the read past the deadline.
fn read_by_deadline(
    reader: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    deadline: Option<Deadline>,
    read_timeout: Duration,
    counter: &Counter,
) -> Result<()> {
    let sock = |e| MpcError::Io {
        phase: counter.name(),
        source: e,
    };
    let mut filled = 0;
    while filled < buf.len() {
        if reader.buffer().is_empty() {
            let wait =
                Deadline::wait(deadline, read_timeout, counter)?.max(Duration::from_millis(1));
            reader
                .get_ref()
                .set_read_timeout(Some(wait))
                .map_err(sock)?;
        }
        let avail = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let err = map_io(e, counter, read_timeout);
                return Err(Deadline::refine(deadline, err, counter));
            }
        };
        if avail.is_empty() {
            return Err(MpcError::Closed {
                phase: counter.name(),
            });
        }
        let dst = buf.get_mut(filled..).unwrap_or_default();
        let n = avail.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), avail.get(..n)) {
            d.copy_from_slice(s);
        }
        reader.consume(n);
        filled += n;
    }
    Ok(())
}

/// A channel over a TCP connection (`TCP_NODELAY`, buffered both ways, with timeouts).
#[derive(Debug)]
pub struct TcpChannel {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    counter: Counter,
    config: ChannelConfig,
    deadline: Option<Deadline>,
    /// The write timeout currently set on the socket (lowered as a deadline approaches).
    write_timeout: Duration,
}

impl TcpChannel {
    /// Wraps a connected stream: sets `TCP_NODELAY` and the read/write timeouts.
    pub fn new(stream: TcpStream, config: ChannelConfig) -> Result<Self> {
        let counter = Counter::default();
        let setup = |e| MpcError::Io {
            phase: "setup".into(),
            source: e,
        };
        stream.set_nodelay(true).map_err(setup)?;
        stream
            .set_read_timeout(Some(config.read_timeout.max(Duration::from_millis(1))))
            .map_err(setup)?;
        stream
            .set_write_timeout(Some(config.write_timeout.max(Duration::from_millis(1))))
            .map_err(setup)?;
        let write_half = stream.try_clone().map_err(setup)?;
        Ok(TcpChannel {
            reader: BufReader::with_capacity(config.buffer_size.max(4096), stream),
            writer: BufWriter::with_capacity(config.buffer_size.max(4096), write_half),
            counter,
            config,
            deadline: None,
            write_timeout: config.write_timeout.max(Duration::from_millis(1)),
        })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<std::net::SocketAddr> {
        self.reader.get_ref().peer_addr().map_err(|e| MpcError::Io {
            phase: self.counter.name(),
            source: e,
        })
    }

    fn sock_err(&self, e: std::io::Error) -> MpcError {
        MpcError::Io {
            phase: self.counter.name(),
            source: e,
        }
    }

    /// Before a write: fails past the deadline, and caps the socket's write timeout by the
    /// time left (a peer that stops reading is dropped at the deadline, too).
    fn arm_write(&mut self) -> Result<()> {
        let want = Deadline::wait(self.deadline, self.config.write_timeout, &self.counter)?
            .max(Duration::from_millis(1));
        if want < self.write_timeout || want > self.write_timeout + Duration::from_secs(1) {
            self.writer
                .get_ref()
                .set_write_timeout(Some(want))
                .map_err(|e| self.sock_err(e))?;
            self.write_timeout = want;
        }
        Ok(())
    }

    fn write_err(&self, e: std::io::Error) -> MpcError {
        Deadline::refine(
            self.deadline,
            map_io(e, &self.counter, self.config.write_timeout),
            &self.counter,
        )
    }

    /// `recv` under a deadline.
    fn recv_by_deadline(&mut self, buf: &mut [u8]) -> Result<()> {
        read_by_deadline(
            &mut self.reader,
            buf,
            self.deadline,
            self.config.read_timeout,
            &self.counter,
        )
    }

    /// Connects to `addr`.
    pub fn connect(addr: impl ToSocketAddrs, config: ChannelConfig) -> Result<Self> {
        let stream = TcpStream::connect(addr).map_err(|e| MpcError::Io {
            phase: "connect".into(),
            source: e,
        })?;
        Self::new(stream, config)
    }

    /// Accepts one connection on `listener`, failing with [`MpcError::Timeout`] if no peer
    /// connects within `wait`.
    pub fn accept_within(
        listener: &TcpListener,
        config: ChannelConfig,
        wait: Duration,
    ) -> Result<Self> {
        let io = |e| MpcError::Io {
            phase: "accept".into(),
            source: e,
        };
        listener.set_nonblocking(true).map_err(io)?;
        let deadline = std::time::Instant::now() + wait;
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break Ok(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        break Err(MpcError::Timeout {
                            phase: "accept".into(),
                            after: wait,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => break Err(io(e)),
            }
        };
        listener.set_nonblocking(false).map_err(io)?;
        let stream = accepted?;
        stream.set_nonblocking(false).map_err(io)?;
        Self::new(stream, config)
    }

    /// Accepts one connection on `listener` (blocks until a peer connects).
    pub fn accept(listener: &TcpListener, config: ChannelConfig) -> Result<Self> {
        let (stream, _) = listener.accept().map_err(|e| MpcError::Io {
            phase: "accept".into(),
            source: e,
        })?;
        Self::new(stream, config)
    }
}

impl Channel for TcpChannel {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if self.deadline.is_some() {
            self.arm_write()?;
        }
        self.writer
            .write_all(bytes)
            .map_err(|e| self.write_err(e))?;
        self.counter.add_sent(bytes.len());
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.flush()?;
        if self.deadline.is_some() {
            self.recv_by_deadline(buf)?;
        } else {
            self.reader
                .read_exact(buf)
                .map_err(|e| map_io(e, &self.counter, self.config.read_timeout))?;
        }
        self.counter.add_received(buf.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.deadline.is_some() {
            self.arm_write()?;
        }
        self.writer.flush().map_err(|e| self.write_err(e))
    }

    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> Result<()> {
        self.flush()?;
        if out.len() <= EXCHANGE_PIECE {
            // Fits in any socket buffer: no thread needed.
            self.send(out)?;
            return self.recv(inp);
        }
        if self.deadline.is_some() {
            self.arm_write()?;
        }
        let (writer, reader, counter, config, deadline) = (
            &mut self.writer,
            &mut self.reader,
            &self.counter,
            &self.config,
            self.deadline,
        );
        // Full duplex: a scoped thread writes while this one reads, so a round of any size
        // cannot deadlock with both sides blocked in `write`.
        let (wrote, read) = std::thread::scope(|sc| {
            let w = sc.spawn(|| writer.write_all(out).and_then(|()| writer.flush()));
            let r = if deadline.is_some() {
                read_by_deadline(reader, inp, deadline, config.read_timeout, counter)
            } else {
                reader
                    .read_exact(inp)
                    .map_err(|e| map_io(e, counter, config.read_timeout))
            };
            (w.join(), r)
        });
        let wrote =
            wrote.map_err(|_| MpcError::Protocol("channel writer thread panicked".into()))?;
        read?;
        wrote.map_err(|e| {
            Deadline::refine(deadline, map_io(e, counter, config.write_timeout), counter)
        })?;
        self.counter.add_sent(out.len());
        self.counter.add_received(inp.len());
        Ok(())
    }

    fn set_phase(&mut self, phase: &str) {
        self.counter.set_phase(phase);
    }

    fn stats(&self) -> ChannelStats {
        self.counter.stats.clone()
    }

    fn max_frame(&self) -> usize {
        self.config.max_frame
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = Deadline::new(deadline);
        if deadline.is_none() {
            // Back to the plain timeouts (a failure here surfaces at the next read or write).
            let read = self.config.read_timeout.max(Duration::from_millis(1));
            let _ = self.reader.get_ref().set_read_timeout(Some(read));
            let write = self.config.write_timeout.max(Duration::from_millis(1));
            if self.writer.get_ref().set_write_timeout(Some(write)).is_ok() {
                self.write_timeout = write;
            }
        }
    }
}

/// One end of an in-memory channel pair (for tests and single-process simulation).
///
/// Output is handed to the peer in batches of up to `buffer_size` bytes on `flush` (or when
/// the batch fills). The queue between the ends is unbounded: a sender that runs far ahead of
/// its receiver holds its output in memory.
#[derive(Debug)]
pub struct MemChannel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    pos: usize,
    counter: Counter,
    config: ChannelConfig,
    deadline: Option<Deadline>,
}

impl MemChannel {
    /// Two connected ends with the given settings.
    pub fn pair(config: ChannelConfig) -> (MemChannel, MemChannel) {
        let (tx_a, rx_b) = mpsc::channel();
        let (tx_b, rx_a) = mpsc::channel();
        let end = |tx, rx| MemChannel {
            tx,
            rx,
            out: Vec::new(),
            inbuf: Vec::new(),
            pos: 0,
            counter: Counter::default(),
            config,
            deadline: None,
        };
        (end(tx_a, rx_a), end(tx_b, rx_b))
    }
}

impl Channel for MemChannel {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.extend_from_slice(bytes);
        self.counter.add_sent(bytes.len());
        if self.out.len() >= self.config.buffer_size {
            self.flush()?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.flush()?;
        let mut filled = 0;
        while filled < buf.len() {
            if self.pos >= self.inbuf.len() {
                let wait = Deadline::wait(self.deadline, self.config.read_timeout, &self.counter)?;
                self.inbuf = match self.rx.recv_timeout(wait) {
                    Ok(v) => v,
                    Err(RecvTimeoutError::Timeout) => {
                        let err = MpcError::Timeout {
                            phase: self.counter.name(),
                            after: self.config.read_timeout,
                        };
                        return Err(Deadline::refine(self.deadline, err, &self.counter));
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(MpcError::Closed {
                            phase: self.counter.name(),
                        })
                    }
                };
                self.pos = 0;
                continue;
            }
            let avail = self.inbuf.get(self.pos..).unwrap_or_default();
            let dst = buf.get_mut(filled..).unwrap_or_default();
            let n = avail.len().min(dst.len());
            if let (Some(d), Some(s)) = (dst.get_mut(..n), avail.get(..n)) {
                d.copy_from_slice(s);
            }
            self.pos += n;
            filled += n;
        }
        self.counter.add_received(buf.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        Deadline::wait(self.deadline, self.config.write_timeout, &self.counter)?;
        let batch = std::mem::take(&mut self.out);
        self.tx.send(batch).map_err(|_| MpcError::Closed {
            phase: self.counter.name(),
        })
    }

    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> Result<()> {
        // The queue is unbounded: send everything, then read.
        self.send(out)?;
        self.flush()?;
        self.recv(inp)
    }

    fn set_phase(&mut self, phase: &str) {
        self.counter.set_phase(phase);
    }

    fn stats(&self) -> ChannelStats {
        self.counter.stats.clone()
    }

    fn max_frame(&self) -> usize {
        self.config.max_frame
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = Deadline::new(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> ChannelConfig {
        ChannelConfig {
            read_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
            ..Default::default()
        }
    }

    fn exercise(mut a: impl Channel + Send + 'static, mut b: impl Channel) {
        let t = std::thread::spawn(move || -> Result<ChannelStats> {
            a.set_phase("p1");
            a.send_frame(b"hello")?;
            a.send_blocks(&[1, u128::MAX, 42])?;
            a.flush()?;
            a.set_phase("p2");
            let f = a.recv_frame()?;
            assert_eq!(f, b"world!");
            Ok(a.stats())
        });
        b.set_phase("p1");
        assert_eq!(b.recv_frame().expect("frame"), b"hello");
        let mut blocks = [0u128; 3];
        b.recv_blocks(&mut blocks).expect("blocks");
        assert_eq!(blocks, [1, u128::MAX, 42]);
        b.set_phase("p2");
        b.send_frame(b"world!").expect("send");
        b.flush().expect("flush");
        let sa = t.join().expect("thread").expect("peer");
        let sb = b.stats();
        assert_eq!(sa.phase("p1").sent, 4 + 5 + 48);
        assert_eq!(sb.phase("p1").received, 4 + 5 + 48);
        assert_eq!(sa.phase("p2").received, 10);
        assert_eq!(sb.phase("p2").sent, 10);
        assert_eq!(sa.sent(), sb.received());
    }

    #[test]
    fn mem_round_trip_and_counts() {
        let (a, b) = MemChannel::pair(quick());
        exercise(a, b);
    }

    #[test]
    fn tcp_round_trip_and_counts() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let t = std::thread::spawn(move || TcpChannel::connect(addr, quick()));
        let b = TcpChannel::accept(&listener, quick()).expect("accept");
        let a = t.join().expect("thread").expect("connect");
        exercise(a, b);
    }

    #[test]
    fn oversized_frame_is_rejected() {
        let cfg = ChannelConfig {
            max_frame: 16,
            ..quick()
        };
        let (mut a, mut b) = MemChannel::pair(cfg);
        a.send(&1000u32.to_le_bytes()).expect("send");
        a.flush().expect("flush");
        assert!(matches!(
            b.recv_frame(),
            Err(MpcError::FrameTooLarge { len: 1000, max: 16 })
        ));
        assert!(matches!(
            a.send_frame(&[0u8; 17]),
            Err(MpcError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn closed_and_stalled_peers_fail_fast() {
        let (a, mut b) = MemChannel::pair(quick());
        let start = Instant::now();
        let mut buf = [0u8; 4];
        assert!(matches!(b.recv(&mut buf), Err(MpcError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_millis(300 + 500));
        drop(a);
        assert!(matches!(b.recv(&mut buf), Err(MpcError::Closed { .. })));

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let peer = TcpStream::connect(addr).expect("connect");
        let mut c = TcpChannel::accept(&listener, quick()).expect("accept");
        let start = Instant::now();
        assert!(matches!(c.recv(&mut buf), Err(MpcError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_millis(300 + 500));
        drop(peer);
        assert!(matches!(c.recv(&mut buf), Err(MpcError::Closed { .. })));

        let start = Instant::now();
        let r = TcpChannel::accept_within(&listener, quick(), Duration::from_millis(200));
        assert!(matches!(r, Err(MpcError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_millis(200 + 500));
    }

    /// A peer that sends one byte every 100 ms never trips a 300 ms read timeout (the control:
    /// without a deadline the read completes), but a deadline drops it on time.
    #[test]
    fn trickling_peer_misses_the_deadline() {
        let trickle = |addr: std::net::SocketAddr, bytes: usize| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                for _ in 0..bytes {
                    if s.write_all(&[7]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let t = trickle(addr, 6);
        let mut c = TcpChannel::accept(&listener, quick()).expect("accept");
        let mut buf = [0u8; 6];
        c.recv(&mut buf)
            .expect("a slow but steady peer passes the read timeout");
        assert_eq!(buf, [7; 6]);
        t.join().expect("trickler");

        let t = trickle(addr, 100);
        let mut c = TcpChannel::accept(&listener, quick()).expect("accept");
        c.set_phase("slow");
        let start = Instant::now();
        c.set_deadline(Some(start + Duration::from_millis(700)));
        let mut buf = [0u8; 100];
        let err = c
            .recv(&mut buf)
            .expect_err("the deadline must cut the trickle");
        let took = start.elapsed();
        assert!(
            matches!(&err, MpcError::Deadline { phase, .. } if phase == "slow"),
            "{err}"
        );
        assert!(
            took >= Duration::from_millis(650) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        // Past the deadline, writes fail too; clearing it restores the plain channel.
        assert!(matches!(c.send(&[1]), Err(MpcError::Deadline { .. })));
        c.set_deadline(None);
        c.send(&[1]).expect("no deadline");
        drop(c);
        t.join().expect("trickler");

        let (mut a, mut b) = MemChannel::pair(quick());
        let start = Instant::now();
        b.set_deadline(Some(start + Duration::from_millis(200)));
        let pump = std::thread::spawn(move || {
            for _ in 0..10 {
                if a.send(&[1]).and_then(|()| a.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut buf = [0u8; 10];
        assert!(matches!(b.recv(&mut buf), Err(MpcError::Deadline { .. })));
        assert!(start.elapsed() < Duration::from_millis(800));
        drop(b);
        pump.join().expect("pump");
    }
}
