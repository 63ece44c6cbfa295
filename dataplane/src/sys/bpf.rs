//! The `bpf()` syscalls the switch needs, and nothing more: an XSKMAP, the 6-instruction
//! redirect program (or, for a measuring sink, a variant that first stamps each frame's arrival
//! time into its metadata), and a BPF link attaching it to an interface. For the packet harness,
//! also a cross-connect program that sends every frame out of one other interface.
//!
//! # Design
//! The program is the one libbpf installs for AF_XDP by default:
//! ```text
//! r2 = *(u32 *)(r1 + 16)      ; ctx->rx_queue_index
//! r1 = <xskmap fd> ll         ; two instruction slots, src = BPF_PSEUDO_MAP_FD
//! r3 = 2                      ; XDP_PASS when the queue has no socket
//! call bpf_redirect_map       ; helper 51
//! exit
//! ```
//! It is assembled here as bytes, so building the switch needs no compiler for BPF, no ELF
//! loader and no C library. The program is attached with `BPF_LINK_CREATE`: the link detaches by
//! itself when its fd is closed, so a killed switch never leaves a program on an interface.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, works on every interface.
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native (driver) XDP.
pub const XDP_FLAGS_DRV_MODE: u32 = 4;

/// `union bpf_attr`, zero-padded to the size this kernel family uses.
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, 8-byte aligned, zero-padded `bpf_attr` of the size passed; every
    // pointer stored in it points to memory that outlives this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            core::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates an XSKMAP with `entries` slots (one per queue).
pub fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, BPF_MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries.max(1));
    let name = b"qswitch_xsks";
    a.0[28..28 + name.len()].copy_from_slice(name);
    owned(bpf(BPF_MAP_CREATE, &mut a)?)
}

/// Points queue `queue` of the map at socket `sock`.
pub fn map_set(map: &OwnedFd, queue: u32, sock: RawFd) -> io::Result<()> {
    let key = queue;
    let val = u32::try_from(sock).map_err(|_| io::Error::other("bad fd"))?;
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &val as *const u32 as u64)
        .u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// Clears queue `queue` of the map (its frames then pass to the kernel stack).
pub fn map_clear(map: &OwnedFd, queue: u32) -> io::Result<()> {
    let key = queue;
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64);
    bpf(BPF_MAP_DELETE_ELEM, &mut a).map(drop)
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_ne_bytes();
    let i = imm.to_ne_bytes();
    [
        code,
        (src << 4) | (dst & 0xf),
        o[0],
        o[1],
        i[0],
        i[1],
        i[2],
        i[3],
    ]
}

/// The redirect program's instructions for `map`.
fn redirect_program(map: RawFd) -> Vec<u8> {
    redirect_tail(map, 1).concat()
}

/// `r2` = the frame's RX queue (read from the context in register `ctx`), then
/// `bpf_redirect_map(map, r2, XDP_PASS)`: to the queue's socket, or up the stack without one.
fn redirect_tail(map: RawFd, ctx: u8) -> [[u8; 8]; 6] {
    const BPF_PSEUDO_MAP_FD: u8 = 1;
    [
        insn(0x61, 2, ctx, 16, 0),                // r2 = *(u32 *)(ctx + 16)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map), // r1 = map (ld_imm64, low half)
        insn(0x00, 0, 0, 0, 0),                   //            (high half)
        insn(0xb7, 3, 0, 0, 2),                   // r3 = XDP_PASS
        insn(0x85, 0, 0, 0, 51),                  // call bpf_redirect_map
        insn(0x95, 0, 0, 0, 0),                   // exit
    ]
}

/// Bytes of metadata the stamping program puts before a frame: the arrival time
/// (`CLOCK_MONOTONIC` nanoseconds, native byte order), then [`ARRIVAL_MAGIC`] (a `u32`), then
/// four zero bytes.
pub const ARRIVAL_META_LEN: usize = 16;
/// Marks metadata the stamping program wrote.
pub const ARRIVAL_MAGIC: u32 = 0x5153_5441;

/// The redirect program that first stamps each frame's arrival time into its metadata
/// ([`ARRIVAL_META_LEN`] bytes before the frame, copied into the UMEM with it), for a measuring
/// sink: the time the frame reached the interface, whenever its reader gets to it. A frame
/// whose metadata cannot grow is redirected unstamped.
fn stamping_program(map: RawFd) -> Vec<u8> {
    let meta = ARRIVAL_META_LEN as i32;
    let mut p = vec![
        insn(0xbf, 6, 1, 0, 0),                    // r6 = r1 (the context)
        insn(0x85, 0, 0, 0, 5),                    // call bpf_ktime_get_ns
        insn(0xbf, 7, 0, 0, 0),                    // r7 = r0
        insn(0xbf, 1, 6, 0, 0),                    // r1 = r6
        insn(0xb7, 2, 0, 0, -meta),                // r2 = -16
        insn(0x85, 0, 0, 0, 54),                   // call bpf_xdp_adjust_meta
        insn(0x55, 0, 0, 8, 0),                    // if r0 != 0 goto redirect
        insn(0x61, 2, 6, 0, 0),                    // r2 = data
        insn(0x61, 3, 6, 8, 0),                    // r3 = data_meta
        insn(0xbf, 4, 3, 0, 0),                    // r4 = r3
        insn(0x07, 4, 0, 0, meta),                 // r4 += 16
        insn(0x2d, 4, 2, 3, 0),                    // if r4 > r2 goto redirect
        insn(0x7b, 3, 7, 0, 0),                    // *(u64 *)(r3 + 0) = r7
        insn(0x62, 3, 0, 8, ARRIVAL_MAGIC as i32), // *(u32 *)(r3 + 8) = magic
        insn(0x62, 3, 0, 12, 0),                   // *(u32 *)(r3 + 12) = 0
    ];
    p.extend(redirect_tail(map, 6)); // redirect:
    p.concat()
}

/// The cross-connect program: every frame leaves by interface `ifindex`
/// (`bpf_redirect(ifindex, 0)`), unlooked-at. Not used by the switch: the packet harness attaches
/// it to a DUT's two ports as the ceiling of forwarding inside XDP, where no frame reaches user
/// space (`qswitch-bench run --duts xdp-redirect`).
fn cross_connect_program(ifindex: u32) -> Vec<u8> {
    [
        // A 32-bit move zero-extends: the helper reads the index as a u32.
        insn(0xb4, 1, 0, 0, ifindex as i32), // w1 = ifindex
        insn(0xb7, 2, 0, 0, 0),              // r2 = 0 (flags: XDP accepts none)
        insn(0x85, 0, 0, 0, 23),             // call bpf_redirect
        insn(0x95, 0, 0, 0, 0),              // exit
    ]
    .concat()
}

/// Loads the cross-connect program, which sends every frame it sees out of interface `ifindex`
/// (for the packet harness; the switch does not use it), frags-aware where the kernel knows the
/// flag. On failure the error carries the verifier's log.
pub fn load_cross_connect_program(ifindex: u32) -> io::Result<OwnedFd> {
    load_xdp(&cross_connect_program(ifindex), b"qswitch_xcon")
}

/// `prog_flags`: the program handles multi-buffer frames (it never reads past the first buffer),
/// so generic XDP hands it a non-linear skb as it is instead of linearising 64 KB.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// Loads the redirect program for `map` (the stamping one when `stamp`), frags-aware where the
/// kernel knows the flag (5.18 and later), else without it. On failure the error carries the
/// verifier's log.
pub fn load_redirect_program(map: &OwnedFd, stamp: bool) -> io::Result<OwnedFd> {
    let fd = map.as_raw_fd();
    let prog = if stamp {
        stamping_program(fd)
    } else {
        redirect_program(fd)
    };
    load_xdp(&prog, b"qswitch_xsk")
}

/// Loads the XDP program `prog` under `name` (at most 15 bytes), frags-aware where the kernel
/// knows the flag (5.18 and later), else without it. On failure the error carries the
/// verifier's log.
fn load_xdp(prog: &[u8], name: &[u8]) -> io::Result<OwnedFd> {
    load_program(prog, name, BPF_F_XDP_HAS_FRAGS, false)
        .or_else(|_| load_program(prog, name, 0, false))
        .or_else(|_| load_program(prog, name, 0, true))
}

/// Loads `prog` as `name`; with `log`, asks for the verifier's log. The first tries ask for
/// none: with one, a valid program whose log overflows the buffer fails to load (`ENOSPC`).
fn load_program(prog: &[u8], name: &[u8], prog_flags: u32, log: bool) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut text = vec![0u8; if log { 16384 } else { 0 }];
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, (prog.len() / 8) as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(44, prog_flags)
        .u32(68, BPF_XDP); // expected_attach_type
    if log {
        a.u32(24, 1) // log_level
            .u32(28, text.len() as u32)
            .u64(32, text.as_mut_ptr() as u64);
    }
    // `prog_name` holds 16 bytes, the last a NUL.
    let name = &name[..name.len().min(15)];
    a.0[48..48 + name.len()].copy_from_slice(name);
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            let verifier = String::from_utf8_lossy(&text[..end]);
            let verifier = verifier.trim();
            if verifier.is_empty() {
                return Err(e);
            }
            Err(io::Error::new(
                e.kind(),
                format!("{e}; verifier: {verifier}"),
            ))
        }
    }
}

/// Attaches `prog` to interface `ifindex` with a BPF link in the given mode
/// ([`XDP_FLAGS_DRV_MODE`] or [`XDP_FLAGS_SKB_MODE`]). Dropping the returned fd detaches it.
pub fn attach_xdp(prog: &OwnedFd, ifindex: u32, mode: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, mode);
    owned(bpf(BPF_LINK_CREATE, &mut a)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encodes_six_instructions() {
        let p = redirect_program(7);
        assert_eq!(p.len(), 48);
        assert_eq!(&p[8..16], &[0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&p[32..40], &[0x85, 0, 0, 0, 51, 0, 0, 0]);
    }

    #[test]
    fn cross_connect_program_redirects_to_its_interface() {
        let p = cross_connect_program(0x0102_0304);
        let want: [[u8; 8]; 4] = [
            [0xb4, 0x01, 0, 0, 4, 3, 2, 1],
            [0xb7, 0x02, 0, 0, 0, 0, 0, 0],
            [0x85, 0, 0, 0, 23, 0, 0, 0],
            [0x95, 0, 0, 0, 0, 0, 0, 0],
        ];
        assert_eq!(p, want.concat());
    }

    #[test]
    fn stamping_program_jumps_to_its_redirect() {
        let p: Vec<[u8; 8]> = stamping_program(7)
            .chunks(8)
            .map(|c| c.try_into().unwrap())
            .collect();
        let redirect = p.len() - 6;
        assert_eq!(p[redirect], [0x61, 0x62, 16, 0, 0, 0, 0, 0]);
        // Both branches land on it: offsets count from the next instruction.
        for (at, code) in [(6, 0x55), (11, 0x2d)] {
            assert_eq!(p[at][0], code);
            let off = i16::from_ne_bytes([p[at][2], p[at][3]]);
            assert_eq!(at as i16 + 1 + off, redirect as i16);
        }
    }
}
