//! The `bpf()` syscalls the switch needs, and nothing more: an XSKMAP, the 6-instruction
//! redirect program (or, for a measuring sink, a variant that first stamps each frame's arrival
//! time into its metadata), and a BPF link attaching it to an interface; for the XDP shortcut
//! ([`crate::shortcut`]), a hash map, a memory-mapped array and the program that forwards by
//! them before it redirects. For the packet harness, also a cross-connect program that sends
//! every frame out of one other interface.
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
use std::sync::atomic::AtomicU64;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `map_flags`: a hash map allocates its elements as they are added.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `map_flags`: an array map user space may map into its memory.
const BPF_F_MMAPABLE: u32 = 1 << 10;
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

/// Creates a map of `kind` with the given sizes and flags, named `name` (at most 15 bytes).
fn create_map(
    kind: u32,
    sizes: (u32, u32),
    entries: u32,
    flags: u32,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, kind)
        .u32(4, sizes.0)
        .u32(8, sizes.1)
        .u32(12, entries.max(1))
        .u32(16, flags);
    let name = &name[..name.len().min(15)];
    a.0[28..28 + name.len()].copy_from_slice(name);
    owned(bpf(BPF_MAP_CREATE, &mut a)?)
}

/// Creates an XSKMAP with `entries` slots (one per queue).
pub fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    create_map(BPF_MAP_TYPE_XSKMAP, (4, 4), entries, 0, b"qswitch_xsks")
}

/// Creates a hash map of at most `entries` elements, allocated as they are added.
pub fn create_hash(key: u32, value: u32, entries: u32, name: &[u8]) -> io::Result<OwnedFd> {
    create_map(
        BPF_MAP_TYPE_HASH,
        (key, value),
        entries,
        BPF_F_NO_PREALLOC,
        name,
    )
}

/// An array map of `entries` values of `value` bytes (a multiple of 8), mapped into this
/// process's memory: its values are read and written as atomics, with no syscall, while BPF
/// programs update them.
pub struct MappedArray {
    fd: OwnedFd,
    ptr: core::ptr::NonNull<u8>,
    len: usize,
    value: usize,
    entries: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics; the pointer stays valid
// until `drop` unmaps it, which `&mut self` makes exclusive.
unsafe impl Send for MappedArray {}
// SAFETY: as above: every access through `&self` is an atomic load or store.
unsafe impl Sync for MappedArray {}

impl core::fmt::Debug for MappedArray {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MappedArray")
            .field("entries", &self.entries)
            .field("value", &self.value)
            .finish()
    }
}

impl MappedArray {
    /// Creates the map and maps it.
    pub fn create(value: u32, entries: u32, name: &[u8]) -> io::Result<MappedArray> {
        if value == 0 || !value.is_multiple_of(8) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "value size"));
        }
        let fd = create_map(
            BPF_MAP_TYPE_ARRAY,
            (4, value),
            entries,
            BPF_F_MMAPABLE,
            name,
        )?;
        let entries = entries.max(1) as usize;
        let bytes = value as usize * entries;
        // SAFETY: page size never fails to read on Linux.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = bytes.div_ceil(page) * page;
        // SAFETY: a shared mapping of the map's fd at offset 0, of the size the kernel allots it
        // (its values, rounded up to pages); the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = core::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(MappedArray {
            fd,
            ptr,
            len,
            value: value as usize,
            entries,
        })
    }

    /// The map, for a program that uses it.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The number of values.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The `word`th 64-bit word of value `index`, if both are in range.
    pub fn word(&self, index: usize, word: usize) -> Option<&AtomicU64> {
        if index >= self.entries || word >= self.value / 8 {
            return None;
        }
        let off = index * self.value + word * 8;
        // SAFETY: `off` is in the mapping (checked above) and 8-byte aligned (values are a
        // multiple of 8 bytes and the mapping is page-aligned); the memory lives as long as
        // `self`, and it is only ever accessed atomically, here and by BPF programs.
        Some(unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() })
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `create` and no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sets `key` of `map` to `value` (both of the map's sizes).
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64)
        .u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// Reads `key` of `map` into `value` (of the map's value size): false if there is none.
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_mut_ptr() as u64);
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes `key` from `map`: false if it was not there.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64);
    match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Points queue `queue` of the map at socket `sock`.
pub fn map_set(map: &OwnedFd, queue: u32, sock: RawFd) -> io::Result<()> {
    let val = u32::try_from(sock).map_err(|_| io::Error::other("bad fd"))?;
    map_update(map, &queue.to_ne_bytes(), &val.to_ne_bytes())
}

/// Clears queue `queue` of the map (its frames then pass to the kernel stack).
pub fn map_clear(map: &OwnedFd, queue: u32) -> io::Result<()> {
    map_delete(map, &queue.to_ne_bytes()).map(drop)
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

/// Bytes of a frame's Ethernet addresses the header-stamping program overwrites: the arrival
/// time (`CLOCK_MONOTONIC` nanoseconds, native byte order), then [`ARRIVAL_MAGIC`] (a `u32`).
pub const ARRIVAL_HEADER_LEN: usize = 12;

/// The redirect program that first writes each frame's arrival time over the frame's Ethernet
/// addresses (their first [`ARRIVAL_HEADER_LEN`] bytes), for a measuring sink where the kernel
/// allows XDP programs no metadata ([`stamping_program`]): the sink reads no address.
fn header_stamping_program(map: RawFd) -> Vec<u8> {
    let mut p = vec![
        insn(0xbf, 6, 1, 0, 0),                         // r6 = r1 (the context)
        insn(0x85, 0, 0, 0, 5),                         // call bpf_ktime_get_ns
        insn(0x61, 2, 6, 0, 0),                         // r2 = data
        insn(0x61, 3, 6, 4, 0),                         // r3 = data_end
        insn(0xbf, 4, 2, 0, 0),                         // r4 = r2
        insn(0x07, 4, 0, 0, ARRIVAL_HEADER_LEN as i32), // r4 += 12
        insn(0x2d, 4, 3, 2, 0),                         // if r4 > r3 goto redirect
        insn(0x7b, 2, 0, 0, 0),                         // *(u64 *)(r2 + 0) = r0
        insn(0x62, 2, 0, 8, ARRIVAL_MAGIC as i32),      // *(u32 *)(r2 + 8) = magic
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

/// A jump target of [`Asm`].
#[derive(Debug, Clone, Copy)]
struct Label(usize);

/// Instructions with forward jumps to labels, resolved by [`Asm::finish`].
#[derive(Default)]
struct Asm {
    code: Vec<[u8; 8]>,
    /// (instruction, label) of each jump.
    jumps: Vec<(usize, Label)>,
    /// Where each label was bound.
    at: Vec<Option<usize>>,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.code.push(insn(code, dst, src, off, imm));
    }
    fn ops(&mut self, code: &[[u8; 8]]) {
        self.code.extend_from_slice(code);
    }
    fn label(&mut self) -> Label {
        self.at.push(None);
        Label(self.at.len() - 1)
    }
    fn bind(&mut self, l: Label) {
        self.at[l.0] = Some(self.code.len());
    }
    /// A conditional jump `code` (comparing `dst` with `imm`, or with `src` for the register
    /// forms), or `ja` (0x05), to `to`.
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.jumps.push((self.code.len(), to));
        self.op(code, dst, src, 0, imm);
    }
    fn finish(mut self) -> Vec<u8> {
        for &(i, l) in &self.jumps {
            let to = self.at[l.0].expect("every label is bound");
            let off = i16::try_from(to as isize - i as isize - 1).expect("a short program");
            self.code[i][2..4].copy_from_slice(&off.to_ne_bytes());
        }
        self.code.concat()
    }
}

/// Key of the shortcut map: the ingress interface's index (native order), then the frame's
/// destination and source addresses, as they appear in the frame.
pub const SHORTCUT_KEY_LEN: usize = 16;
/// Value of the shortcut map: `u32` egress interface index, `u32` largest frame (bytes, the
/// whole frame), `u32` ingress counter index, `u32` egress counter index, `u64` frames that took
/// it (all native order).
pub const SHORTCUT_VALUE_LEN: usize = 24;
/// Value of the shortcut counters: frames and bytes received, frames and bytes sent (`u64`
/// each), by counter index.
pub const SHORTCUT_COUNTERS_LEN: usize = 32;

/// The switch's program with a shortcut in front: a frame whose (ingress, destination, source)
/// the map `shortcut` holds, and that no rule of the switch needs to see, leaves by the egress
/// interface the entry names (`bpf_redirect`), counted in the entry and in `counters`; every
/// other frame goes to its queue's socket as in [`redirect_program`]. Frames that go to the
/// switch: group destinations, ARP, RARP, VLAN tags and 802.3 lengths, IPv4 fragments and
/// malformed headers, all TCP (a flow split between two paths is reordered: its super-frames
/// must go through the switch; and the MSS watch reads its SYNs), DHCP and DHCPv6 (UDP ports
/// 67, 68, 546, 547), ICMP "destination unreachable" (path MTU), every ICMPv6 message
/// (neighbour discovery, router advertisements, "packet too big"), IPv6 extension headers,
/// frames shorter than the headers read, and frames longer than the entry's largest (the whole
/// buffer's length, `bpf_xdp_get_buff_len`). Other EtherTypes are forwarded as the switch
/// would, unread.
fn shortcut_program(xsks: RawFd, shortcut: RawFd, counters: RawFd) -> Vec<u8> {
    const PSEUDO_FD: u8 = 1;
    // Registers kept across calls: r6 the context, r7 data, r8 data_end, r9 the frame's length.
    let mut a = Asm::default();
    let (slow, lookup, ipv4, ipv6, send) = (a.label(), a.label(), a.label(), a.label(), a.label());
    let (udp4, icmp4) = (a.label(), a.label());
    a.op(0xbf, 6, 1, 0, 0); // r6 = r1
    a.op(0x85, 0, 0, 0, 188); // call bpf_xdp_get_buff_len
    a.op(0xbf, 9, 0, 0, 0); // r9 = r0
    a.op(0x61, 7, 6, 0, 0); // r7 = ctx->data
    a.op(0x61, 8, 6, 4, 0); // r8 = ctx->data_end
    a.op(0xbf, 2, 7, 0, 0); // r2 = r7
    a.op(0x07, 2, 0, 0, 14); // r2 += 14
    a.jump(0x2d, 2, 8, 0, slow); // if r2 > r8 goto slow
    a.op(0x71, 2, 7, 0, 0); // r2 = *(u8 *)(r7 + 0): the destination's first byte
    a.op(0x57, 2, 0, 0, 1); // r2 &= 1 (group bit)
    a.jump(0x55, 2, 0, 0, slow); // if r2 != 0 goto slow
    a.op(0x69, 2, 7, 12, 0); // r2 = *(u16 *)(r7 + 12): EtherType
    a.op(0xdc, 2, 0, 0, 16); // r2 = be16 r2
    a.jump(0x15, 2, 0, 0x0800, ipv4);
    a.jump(0x15, 2, 0, 0x86dd, ipv6);
    for t in [0x0806, 0x8035, 0x8100, 0x88a8, 0x9100, 0x9200] {
        a.jump(0x15, 2, 0, t, slow);
    }
    a.jump(0xa5, 2, 0, 0x0600, slow); // a length field, not an EtherType (802.3, LLC)
    a.jump(0x05, 0, 0, 0, lookup);

    a.bind(ipv4);
    a.op(0xbf, 2, 7, 0, 0);
    a.op(0x07, 2, 0, 0, 34); // the Ethernet and IPv4 headers
    a.jump(0x2d, 2, 8, 0, slow);
    a.op(0x71, 2, 7, 14, 0); // r2 = version and header length
    a.op(0xbf, 3, 2, 0, 0);
    a.op(0x57, 3, 0, 0, 0xf0);
    a.jump(0x55, 3, 0, 0x40, slow); // not version 4
    a.op(0x57, 2, 0, 0, 0x0f);
    a.op(0x67, 2, 0, 0, 2); // r2 = header length in bytes (at most 60)
    a.jump(0xa5, 2, 0, 20, slow);
    a.op(0x69, 3, 7, 20, 0); // flags and fragment offset
    a.op(0xdc, 3, 0, 0, 16);
    a.op(0x57, 3, 0, 0, 0x3fff);
    a.jump(0x55, 3, 0, 0, slow); // a fragment (more to come, or not the first)
    a.op(0x71, 3, 7, 23, 0); // r3 = protocol
    a.op(0xbf, 4, 7, 0, 0);
    a.op(0x0f, 4, 2, 0, 0); // r4 = data + header length: layer 4 is at r4 + 14
    a.op(0xbf, 5, 4, 0, 0);
    a.op(0x07, 5, 0, 0, 18); // 4 bytes of layer 4: UDP's ports, ICMP's type
    a.jump(0x2d, 5, 8, 0, slow);
    a.jump(0x15, 3, 0, 6, slow); // TCP
    a.jump(0x15, 3, 0, 17, udp4);
    a.jump(0x15, 3, 0, 1, icmp4);
    a.jump(0x05, 0, 0, 0, lookup);
    a.bind(udp4);
    udp_ports_slow(&mut a, 4, 14, [67, 68], slow);
    a.jump(0x05, 0, 0, 0, lookup);
    a.bind(icmp4);
    a.op(0x71, 2, 4, 14, 0); // ICMP type
    a.jump(0x15, 2, 0, 3, slow); // destination unreachable
    a.jump(0x05, 0, 0, 0, lookup);

    a.bind(ipv6);
    a.op(0xbf, 2, 7, 0, 0);
    a.op(0x07, 2, 0, 0, 14 + 40 + 8); // the IPv6 and UDP headers
    a.jump(0x2d, 2, 8, 0, slow);
    a.op(0x71, 3, 7, 20, 0); // next header
    a.jump(0x55, 3, 0, 17, slow); // not UDP
    udp_ports_slow(&mut a, 7, 54, [546, 547], slow);
    a.jump(0x05, 0, 0, 0, lookup);

    a.bind(lookup);
    a.op(0x61, 2, 6, 12, 0); // r2 = ctx->ingress_ifindex
    a.op(0x63, 10, 2, -16, 0); // key[0..4]
    a.op(0x61, 2, 7, 0, 0);
    a.op(0x63, 10, 2, -12, 0); // key[4..8]: destination
    a.op(0x69, 2, 7, 4, 0);
    a.op(0x6b, 10, 2, -8, 0); // key[8..10]
    a.op(0x69, 2, 7, 6, 0);
    a.op(0x6b, 10, 2, -6, 0); // key[10..12]: source
    a.op(0x61, 2, 7, 8, 0);
    a.op(0x63, 10, 2, -4, 0); // key[12..16]
    a.op(0x18, 1, PSEUDO_FD, 0, shortcut);
    a.op(0x00, 0, 0, 0, 0);
    a.op(0xbf, 2, 10, 0, 0);
    a.op(0x07, 2, 0, 0, -16);
    a.op(0x85, 0, 0, 0, 1); // call bpf_map_lookup_elem
    a.jump(0x15, 0, 0, 0, slow);
    a.op(0x61, 1, 0, 4, 0); // the entry's largest frame
    a.jump(0x2d, 9, 1, 0, slow); // if length > largest goto slow
    a.op(0xb7, 1, 0, 0, 1);
    a.op(0xdb, 0, 1, 16, 0); // lock *(u64 *)(r0 + 16) += 1
    a.op(0x61, 7, 0, 0, 0); // r7 = egress interface
    a.op(0x61, 6, 0, 12, 0); // r6 = egress counters (the context is not needed any more)
    a.op(0x61, 8, 0, 8, 0); // r8 = ingress counters
    for (reg, at, first) in [(8u8, -20i16, 0i16), (6, -24, 16)] {
        a.op(0x63, 10, reg, at, 0);
        a.op(0x18, 1, PSEUDO_FD, 0, counters);
        a.op(0x00, 0, 0, 0, 0);
        a.op(0xbf, 2, 10, 0, 0);
        a.op(0x07, 2, 0, 0, i32::from(at));
        a.op(0x85, 0, 0, 0, 1); // call bpf_map_lookup_elem
        a.jump(0x15, 0, 0, 0, send);
        a.op(0xb7, 1, 0, 0, 1);
        a.op(0xdb, 0, 1, first, 0); // frames += 1
        a.op(0xdb, 0, 9, first + 8, 0); // bytes += length
    }
    a.bind(send);
    a.op(0xbf, 1, 7, 0, 0); // r1 = egress interface
    a.op(0xb7, 2, 0, 0, 0);
    a.op(0x85, 0, 0, 0, 23); // call bpf_redirect
    a.op(0x95, 0, 0, 0, 0); // exit

    a.bind(slow);
    a.ops(&redirect_tail(xsks, 6));
    a.finish()
}

/// Jumps to `slow` if either port of the UDP header at `base + at` (register `base`, checked
/// readable) is one of `ports`.
fn udp_ports_slow(a: &mut Asm, base: u8, at: i16, ports: [i32; 2], slow: Label) {
    for off in [at, at + 2] {
        a.op(0x69, 2, base, off, 0); // a port
        a.op(0xdc, 2, 0, 0, 16);
        for p in ports {
            a.jump(0x15, 2, 0, p, slow);
        }
    }
}

/// Loads the switch's program with the shortcut ([`shortcut_program`]), frags-aware where the
/// kernel knows the flag. On failure the error carries the verifier's log.
pub fn load_shortcut_program(
    xsks: &OwnedFd,
    shortcut: &OwnedFd,
    counters: &MappedArray,
) -> io::Result<OwnedFd> {
    let prog = shortcut_program(
        xsks.as_raw_fd(),
        shortcut.as_raw_fd(),
        counters.fd().as_raw_fd(),
    );
    load_xdp(&prog, b"qswitch_short")
}

/// Runs XDP program `prog` once on `frame` (`BPF_PROG_TEST_RUN`, no interface): its return
/// code. For tests.
pub fn test_run(prog: &OwnedFd, frame: &[u8], ingress_ifindex: u32) -> io::Result<u32> {
    // `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex; the kernel wants the frame's length as data_end and an interface that
    // exists (queue 0).
    let mut ctx = [0u32; 6];
    ctx[1] = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?;
    ctx[3] = ingress_ifindex;
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(8, frame.len() as u32)
        .u64(16, frame.as_ptr() as u64)
        .u32(32, 1)
        .u32(40, core::mem::size_of_val(&ctx) as u32)
        .u64(48, ctx.as_ptr() as u64);
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(u32::from_ne_bytes([a.0[4], a.0[5], a.0[6], a.0[7]]))
}

/// `prog_flags`: the program handles multi-buffer frames (it never reads past the first buffer),
/// so generic XDP hands it a non-linear skb as it is instead of linearising 64 KB.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// Where a measuring sink's program writes each frame's arrival time, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stamp {
    /// Nowhere: the switch's ports.
    #[default]
    Off,
    /// In [`ARRIVAL_META_LEN`] bytes of metadata before the frame ([`stamping_program`]).
    Metadata,
    /// Over the frame's Ethernet addresses ([`header_stamping_program`]).
    Header,
}

/// Loads the redirect program for `map` (a stamping one as `stamp` says), frags-aware where the
/// kernel knows the flag (5.18 and later), else without it. On failure the error carries the
/// verifier's log.
pub fn load_redirect_program(map: &OwnedFd, stamp: Stamp) -> io::Result<OwnedFd> {
    let fd = map.as_raw_fd();
    let prog = match stamp {
        Stamp::Off => redirect_program(fd),
        Stamp::Metadata => stamping_program(fd),
        Stamp::Header => header_stamping_program(fd),
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

    /// Asserts that each branch of `prog` (at, opcode) lands on its redirect tail, its last six
    /// instructions (offsets count from the next instruction).
    fn assert_branches_redirect(prog: &[u8], branches: &[(usize, u8)]) {
        let p: Vec<[u8; 8]> = prog.chunks(8).map(|c| c.try_into().unwrap()).collect();
        let redirect = p.len() - 6;
        assert_eq!(p[redirect], [0x61, 0x62, 16, 0, 0, 0, 0, 0]);
        for &(at, code) in branches {
            assert_eq!(p[at][0], code);
            let off = i16::from_ne_bytes([p[at][2], p[at][3]]);
            assert_eq!(at as i16 + 1 + off, redirect as i16);
        }
    }

    #[test]
    fn stamping_programs_jump_to_their_redirect() {
        assert_branches_redirect(&stamping_program(7), &[(6, 0x55), (11, 0x2d)]);
        assert_branches_redirect(&header_stamping_program(7), &[(6, 0x2d)]);
    }
}
