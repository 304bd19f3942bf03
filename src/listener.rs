//! Closing the listening socket without dropping queued connections.
//!
//! A client's connection is complete (and its request often already sent)
//! once the kernel has queued it on the listening socket, before authd
//! accepts it. Closing a listener resets every connection still in that
//! queue: a client that "got a connection" loses its request. actix-server
//! simply drops the listener when it stops, so under load a few queued
//! connections were reset at every graceful shutdown.
//!
//! The gate closes the door first and empties the room second:
//! 1. a socket filter on the listener drops new SYNs (the client retries
//!    its SYN after about a second, and by then finds the port closed:
//!    connection refused, nothing lost), while handshakes already under
//!    way still complete;
//! 2. actix keeps accepting until the kernel's accept queue is empty and
//!    has stayed empty for longer than a local round trip;
//! 3. only then does the caller stop the server, which closes the socket
//!    with nothing queued.
//!
//! Hand-written: neither actix-server nor any crate offers "stop taking
//! new connections but serve the queued ones" (Linux has no
//! `shutdown(SHUT_RD)` for that: on a listener it resets the queue too).
//! The filter is set with `socket2`; the queue length is read with
//! `getsockopt(TCP_INFO)`, which socket2 does not wrap.
use std::net::TcpListener;
use std::time::{Duration, Instant};

use socket2::Socket;

/// How long the queue must stay empty before the listener may close: well
/// over a round trip to the proxy in front of authd, so a handshake whose
/// SYN-ACK left before the filter went on has finished.
const QUIET: Duration = Duration::from_millis(100);
/// Never wait longer than this for the queue (accepting stalled).
const LIMIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// A second handle on the server's listening socket (the same kernel
/// socket: actix holds the other). Drop it before the server stops: while
/// it lives, the socket keeps listening even after actix closed its handle.
pub struct AcceptGate {
    socket: Socket,
}

/// What [`AcceptGate::close`] saw, for the shutdown log line.
#[derive(Debug, Clone, Copy)]
pub struct Closing {
    /// Whether new SYNs were refused (false where the filter is not
    /// available; the listener then closes the old way).
    pub filtered: bool,
    /// Connections queued when the filter went on.
    pub queued_at_start: u32,
    /// How long until the queue had been empty for [`QUIET`].
    pub waited: Duration,
}

impl AcceptGate {
    pub fn new(listener: &TcpListener) -> std::io::Result<Self> {
        Ok(Self {
            socket: Socket::from(listener.try_clone()?),
        })
    }

    /// Stops new connections from arriving and waits until actix has
    /// accepted every queued one; the caller then stops the server.
    pub async fn close(&self) -> Closing {
        let start = Instant::now();
        if let Err(error) = sys::refuse_new_connections(&self.socket) {
            tracing::warn!(%error, "cannot filter new connections; closing the listener at once");
            return Closing {
                filtered: false,
                queued_at_start: 0,
                waited: Duration::ZERO,
            };
        }
        let queued_at_start = self.queued().unwrap_or(0);
        let mut empty_since: Option<Instant> = None;
        while start.elapsed() < LIMIT {
            match self.queued() {
                Ok(0) => {
                    let since = *empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= QUIET {
                        break;
                    }
                }
                Ok(_) => empty_since = None,
                Err(error) => {
                    // Cannot see the queue: wait the quiet time once.
                    tracing::warn!(%error, "cannot read the accept queue length");
                    tokio::time::sleep(QUIET).await;
                    break;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Closing {
            filtered: true,
            queued_at_start,
            waited: start.elapsed(),
        }
    }
    fn queued(&self) -> std::io::Result<u32> {
        sys::queued(&self.socket)
    }
}

/// The Linux calls: the socket filter and the accept-queue length.
#[cfg(target_os = "linux")]
mod sys {
    use socket2::{SockFilter, Socket};

    /// Classic BPF, run by the kernel on each packet for the listener with the
    /// data at the TCP header (`tcp_filter` in `tcp_v4_rcv`/`tcp_v6_rcv`).
    /// A pure SYN (SYN set, ACK clear: byte 13 of RFC 9293 §3.1 masked with
    /// 0x12 equals 0x02) is dropped; everything else is kept whole, so the
    /// final ACK of a handshake under way still completes it.
    const DROP_NEW_SYNS: [SockFilter; 5] = [
        // ldb [13]: the flags byte
        SockFilter::new(0x30, 0, 0, 13),
        // and #0x12: SYN | ACK
        SockFilter::new(0x54, 0, 0, 0x12),
        // jeq #0x02: a pure SYN → next (drop), else skip one (keep)
        SockFilter::new(0x15, 0, 1, 0x02),
        // ret #0: drop
        SockFilter::new(0x06, 0, 0, 0),
        // ret #-1: keep the whole packet
        SockFilter::new(0x06, 0, 0, u32::MAX),
    ];

    pub fn refuse_new_connections(socket: &Socket) -> std::io::Result<()> {
        socket.attach_filter(&DROP_NEW_SYNS)
    }

    /// Connections the kernel has completed and nobody accepted yet: for a
    /// listening socket, Linux reports the accept queue's length as
    /// `tcpi_unacked` (`tcp_get_info`).
    pub fn queued(socket: &Socket) -> std::io::Result<u32> {
        use std::os::fd::AsRawFd;
        // SAFETY: `tcp_info` is plain old data (all zeroes is valid), the
        // kernel writes at most `len` bytes into it, and the descriptor is
        // owned by `socket` for the duration of the call.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(info.tcpi_unacked)
    }
}

/// Elsewhere the gate cannot filter: `close` says so and the listener
/// closes at once, as actix does.
#[cfg(not(target_os = "linux"))]
mod sys {
    use socket2::Socket;

    fn unsupported() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "listener socket filters need Linux",
        )
    }

    pub fn refuse_new_connections(_: &Socket) -> std::io::Result<()> {
        Err(unsupported())
    }

    pub fn queued(_: &Socket) -> std::io::Result<u32> {
        Err(unsupported())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[tokio::test]
    async fn the_queue_length_is_read_and_new_connections_are_refused_after_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let gate = AcceptGate::new(&listener).unwrap();
        assert_eq!(gate.queued().unwrap(), 0);
        let _first = TcpStream::connect(address).unwrap();
        let _second = TcpStream::connect(address).unwrap();
        // The final ACKs may still be on their way through loopback.
        let queued_soon = || {
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                let queued = gate.queued().unwrap();
                if queued == 2 || Instant::now() > deadline {
                    return queued;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        assert_eq!(queued_soon(), 2, "two completed, none accepted");
        let _accepted = listener.accept().unwrap();
        assert_eq!(gate.queued().unwrap(), 1);
        let _accepted = listener.accept().unwrap();

        // Nobody accepts from here on: with the filter on, a new SYN is
        // dropped, so nothing more can enter the queue.
        let closing = gate.close().await;
        assert!(closing.filtered);
        assert_eq!(closing.queued_at_start, 0);
        assert!(closing.waited >= QUIET, "{closing:?}");
        let attempt = std::thread::spawn(move || {
            TcpStream::connect_timeout(&address, Duration::from_millis(300))
        });
        let result = attempt.join().unwrap();
        assert!(
            result.is_err(),
            "a new connection was completed after the gate closed"
        );
        assert_eq!(gate.queued().unwrap(), 0, "nothing was queued");

        // The gate's handle alone keeps the socket listening (why it must
        // be dropped before the server stops); once both are gone a new
        // connection is refused at once.
        drop(listener);
        let attempt = TcpStream::connect_timeout(&address, Duration::from_millis(300));
        assert!(
            !matches!(&attempt, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "still listening through the gate: {attempt:?}"
        );
        drop(gate);
        let refused = TcpStream::connect(address).expect_err("nothing listens");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
