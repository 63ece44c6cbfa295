//! Interface lookups: index, RX queue count, MTU, operational state and driver, from the kernel.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

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

/// The name of the driver behind interface `name` (`veth`, `tun`, a NIC's driver), as
/// `ethtool -i` reads it (`SIOCETHTOOL`, `ETHTOOL_GDRVINFO`); `None` if the kernel does not say.
pub fn driver(name: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 3;
    /// `struct ethtool_drvinfo`.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        counts: [u32; 5],
    }
    /// `struct ifreq` with its `ifr_data` member.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut DrvInfo,
        _rest: [u8; 16],
    }
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        counts: [0; 5],
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut info,
        _rest: [0; 16],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: plain socket creation; the result is checked and owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: `req` is a complete `struct ifreq` whose name is NUL-terminated and whose data
    // pointer points to `info`, a complete `struct ethtool_drvinfo` that outlives the call; the
    // kernel writes only within it.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if r < 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    std::str::from_utf8(&info.driver[..end])
        .ok()
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
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
