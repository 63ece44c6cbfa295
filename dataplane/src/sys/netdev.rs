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
