//! Interface lookups: index, RX queue count, MTU and operational state, from the kernel.

use std::ffi::CString;
use std::io;

/// The index of interface `name`, or `None` if it does not exist.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The names of the host's interfaces (in this network namespace), from one directory read.
pub fn names() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn sysfs(name: &str, file: &str) -> io::Result<String> {
    if name.contains('/') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/{file}")).map(|s| s.trim().to_owned())
}

/// The number of RX queues of `name` (at least 1): every one needs a socket, or frames arriving
/// on it would bypass the switch.
pub fn rx_queues(name: &str) -> io::Result<u32> {
    if name.contains('/') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let n = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n).unwrap_or(1).max(1))
}

/// The MTU of `name`.
pub fn mtu(name: &str) -> io::Result<u32> {
    sysfs(name, "mtu")?
        .parse()
        .map_err(|_| io::Error::other("unreadable mtu"))
}

/// Is interface `name` administratively up (`IFF_UP`)?
pub fn is_up(name: &str) -> bool {
    sysfs(name, "flags")
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & 1 != 0)
}

/// How long the link must be quiet after an event before [`LinkEvents::wait`] returns.
const QUIET: std::time::Duration = std::time::Duration::from_millis(2);
/// The longest [`LinkEvents::wait`] waits for quiet after an event.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// A socket that hears the kernel announce interfaces appearing, changing and going (the
/// rtnetlink link group, `RTMGRP_LINK`), in this network namespace: a wait on it ends as soon as
/// a VM's device is created, where a look at the interface list every so often would find it
/// only at its next look.
#[derive(Debug)]
pub struct LinkEvents {
    fd: std::os::fd::OwnedFd,
}

impl LinkEvents {
    /// Opens the socket and joins the link group.
    pub fn open() -> io::Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: socket(2) with constant arguments; the descriptor is owned just below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; all zeroes is a valid value of it.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: `sa` is a valid sockaddr_nl and the length given is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Waits until the kernel announces a link event or `timeout` passes; true if one came.
    /// After an event it waits for the link to be quiet for [`QUIET`] (at most [`SETTLE`]): a
    /// device being created is announced before it is finished (a veth sets its queue count
    /// right after registering both ends), and one creation brings several events. Whatever is
    /// queued is read and dropped (the caller looks at the interfaces itself; an overflowed
    /// queue counts as an event).
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        if !self.readable(timeout) {
            return false;
        }
        let end = std::time::Instant::now() + SETTLE;
        loop {
            self.drain();
            if std::time::Instant::now() >= end || !self.readable(QUIET) {
                return true;
            }
        }
    }

    /// Whether something arrives within `timeout`.
    fn readable(&self, timeout: std::time::Duration) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // Not a wait that can end early: wait it out, never spin.
            std::thread::sleep(timeout);
        }
        n > 0
    }

    /// Reads and drops what is queued.
    fn drain(&self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is writable memory of the length given; the socket does not block.
            let r =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r <= 0 {
                break;
            }
        }
    }
}
