//! A POSIX message queue, non-blocking under tokio: the queue descriptor
//! is a file descriptor on Linux, so [`AsyncFd`] wakes berth when a
//! message can be received or sent, and nothing blocks a worker thread.

use std::io;
use std::time::Duration;

use nix::errno::Errno;
use nix::mqueue::{mq_close, mq_getattr, mq_open, mq_receive, mq_send, MQ_OFlag, MqAttr, MqdT};
use nix::sys::stat::Mode;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An open queue, closed on drop.
pub(crate) struct Queue {
    fd: AsyncFd<Descriptor>,
    /// The queue's message size: the longest message it holds.
    pub msgsize: usize,
}

struct Descriptor(Option<MqdT>);

impl std::os::fd::AsRawFd for Descriptor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_ref().map_or(-1, std::os::fd::AsRawFd::as_raw_fd)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            let _ = mq_close(queue);
        }
    }
}

fn limit(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}")).map_or("?".into(), |t| t.trim().to_string())
}

/// Why a queue could not be opened, in the terms of the flags.
fn open_error(name: &str, errno: Errno, (msgsize, maxmsg): (usize, usize)) -> String {
    match errno {
        Errno::EINVAL => format!(
            "--mq {name}: the system does not allow {maxmsg} messages of {msgsize} bytes (limits: \
             fs.mqueue.msg_max = {}, fs.mqueue.msgsize_max = {}); give a smaller --mq-msgsize or \
             --mq-maxmsg, or raise the limits (sysctl -w fs.mqueue.msgsize_max=...)",
            limit("msg_max"),
            limit("msgsize_max")
        ),
        Errno::EACCES => format!("--mq {name}: permission denied (the queue exists and is not berth's to read)"),
        Errno::ENOSPC | Errno::EMFILE => format!(
            "--mq {name}: the system's queue limit is reached (fs.mqueue.queues_max = {}, or RLIMIT_MSGQUEUE)",
            limit("queues_max")
        ),
        Errno::ENOSYS => "--mq: this kernel has no POSIX message queues (CONFIG_POSIX_MQUEUE)".to_string(),
        other => format!("--mq {name}: {}", other.desc()),
    }
}

impl Queue {
    /// Opens (creating it with `mode` and `(msgsize, maxmsg)`) the queue
    /// berth receives requests on. The attributes are always passed: nix's
    /// `mq_open` without them passes no mode either, and O_CREAT then
    /// reads garbage.
    pub fn listen(name: &str, mode: u32, (msgsize, maxmsg): (usize, usize)) -> Result<Queue, String> {
        let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let wanted = MqAttr::new(0, maxmsg as _, msgsize as _, 0);
        let mode = Mode::from_bits_truncate(mode as _);
        let queue = mq_open(name, flags, mode, Some(&wanted)).map_err(|e| open_error(name, e, (msgsize, maxmsg)))?;
        Queue::wrap(queue, Interest::READABLE).map_err(|e| format!("--mq {name}: {e}"))
    }

    /// Opens an existing queue to send to (a client's reply queue).
    pub fn connect(name: &str) -> Result<Queue, String> {
        let flags = MQ_OFlag::O_WRONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let queue = mq_open(name, flags, Mode::empty(), None).map_err(|e| match e {
            Errno::ENOENT => format!("reply queue {name} does not exist; create it before sending the request"),
            Errno::EACCES => format!("reply queue {name}: berth may not write to it (give it mode 0620 or so)"),
            other => format!("reply queue {name}: {}", other.desc()),
        })?;
        Queue::wrap(queue, Interest::WRITABLE).map_err(|e| format!("reply queue {name}: {e}"))
    }

    fn wrap(queue: MqdT, interest: Interest) -> io::Result<Queue> {
        let msgsize = mq_getattr(&queue).map(|a| usize::try_from(a.msgsize()).unwrap_or(0)).map_err(io::Error::from)?;
        // SAFETY: the descriptor is open and owned by `Descriptor`, which
        // closes it only when dropped, after the AsyncFd deregistered it.
        let fd = unsafe { AsyncFd::register_with_interest(Descriptor(Some(queue)), interest) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Queue { fd, msgsize })
    }

    /// The next message.
    pub async fn receive(&self) -> io::Result<Vec<u8>> {
        let mut buffer = vec![0u8; self.msgsize];
        loop {
            let mut ready = self.fd.readable().await?;
            let queue = ready.get_inner().0.as_ref().expect("open");
            let mut priority = 0;
            match mq_receive(queue, &mut buffer, &mut priority) {
                Ok(len) => {
                    buffer.truncate(len);
                    return Ok(buffer);
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Sends `messages` in order, waiting up to `patience` in all for room.
    pub async fn send_all(&self, messages: &[Vec<u8>], patience: Duration) -> io::Result<()> {
        tokio::time::timeout(patience, async {
            for message in messages {
                loop {
                    let mut ready = self.fd.writable().await?;
                    let queue = ready.get_inner().0.as_ref().expect("open");
                    match mq_send(queue, message, 0) {
                        Ok(()) => break,
                        Err(Errno::EAGAIN) => ready.clear_ready(),
                        Err(Errno::EINTR) => {}
                        Err(errno) => return Err(io::Error::from(errno)),
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the queue stayed full"))?
    }
}
