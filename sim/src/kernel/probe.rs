//! Probes: raw IPv4/IPv6 packets built by hand and sent from the sender namespace.
//!
//! Each probe carries a marker so that many probes can be judged after one ruleset load:
//! the IPv4 IP ID or the IPv6 flow label, and for TCP the sequence number `marker << 16`.
//! A TCP probe is a SYN (a NEW connection), a UDP probe carries 5 bytes, an ICMP probe is
//! an echo request with id and sequence number = marker. Checksums are correct (a bad one makes conntrack see INVALID).

use super::KernelError;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One probe to send.
#[derive(Clone, Debug)]
pub struct Probe {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 6 TCP, 17 UDP, 1 ICMP or 58 ICMPv6.
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// 1..=65535 (IPv4 IP ID, IPv6 flow label, TCP sequence number `marker << 16`).
    pub marker: u16,
}

fn csum(data: &[u8], initial: u32) -> u16 {
    let mut s = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        s += u32::from(*b) << 8;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn pseudo_sum(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut s = 0u32;
    for c in src.chunks_exact(2).chain(dst.chunks_exact(2)) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    s += u32::from(proto);
    s += (len as u32) & 0xffff;
    s += (len as u32) >> 16;
    s
}

/// The L4 header and payload, checksummed.
fn l4(p: &Probe, src: &[u8], dst: &[u8], v6: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    let proto = p.protocol;
    match proto {
        6 => {
            h.extend_from_slice(&p.sport.to_be_bytes());
            h.extend_from_slice(&p.dport.to_be_bytes());
            h.extend_from_slice(&(u32::from(p.marker) << 16).to_be_bytes());
            h.extend_from_slice(&0u32.to_be_bytes());
            h.push(5 << 4);
            h.push(0x02); // SYN
            h.extend_from_slice(&65535u16.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0]);
        }
        17 => {
            h.extend_from_slice(&p.sport.to_be_bytes());
            h.extend_from_slice(&p.dport.to_be_bytes());
            h.extend_from_slice(&13u16.to_be_bytes());
            h.extend_from_slice(&[0, 0]);
            h.extend_from_slice(b"fwsim");
        }
        _ => {
            h.push(if v6 { 128 } else { 8 });
            h.extend_from_slice(&[0, 0, 0]);
            // Echo id and sequence number: the marker (the id is in conntrack's tuple).
            h.extend_from_slice(&p.marker.to_be_bytes());
            h.extend_from_slice(&p.marker.to_be_bytes());
            h.extend_from_slice(b"fwsim");
        }
    }
    let initial = if proto == 1 {
        0 // ICMPv4 has no pseudo header
    } else {
        pseudo_sum(src, dst, proto, h.len())
    };
    let mut c = csum(&h, initial);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    let off = match proto {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    h[off..off + 2].copy_from_slice(&c.to_be_bytes());
    h
}

/// The whole IP packet.
pub fn build(p: &Probe) -> Vec<u8> {
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let body = l4(p, &s.octets(), &d.octets(), false);
            let mut ip = Vec::with_capacity(20 + body.len());
            ip.push(0x45);
            ip.push(0);
            ip.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&p.marker.to_be_bytes());
            ip.extend_from_slice(&[0x40, 0]); // DF: never fragmented
            ip.push(64);
            ip.push(p.protocol);
            ip.extend_from_slice(&[0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = csum(&ip, 0);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&body);
            ip
        }
        (s, d) => {
            let s6 = match s {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let d6 = match d {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let body = l4(p, &s6.octets(), &d6.octets(), true);
            let mut ip = Vec::with_capacity(40 + body.len());
            ip.extend_from_slice(&((6u32 << 28) | u32::from(p.marker)).to_be_bytes());
            ip.extend_from_slice(&(body.len() as u16).to_be_bytes());
            ip.push(p.protocol);
            ip.push(64);
            ip.extend_from_slice(&s6.octets());
            ip.extend_from_slice(&d6.octets());
            ip.extend_from_slice(&body);
            ip
        }
    }
}

/// Raw sockets opened inside a namespace; they keep sending from it whatever thread uses
/// them.
pub struct Sender {
    v4: OwnedFd,
    v6: OwnedFd,
}

fn last_os_error(what: &str) -> KernelError {
    KernelError::Tool(format!("{what}: {}", std::io::Error::last_os_error()))
}

impl Sender {
    /// Open the sockets in namespace `ns_path` (`/run/netns/NAME`), on a thread of their
    /// own: `setns` changes only the calling thread, which then ends.
    pub fn open(ns_path: &str) -> Result<Sender, KernelError> {
        let path = ns_path.to_string();
        std::thread::spawn(move || -> Result<Sender, KernelError> {
            let file = std::fs::File::open(&path)
                .map_err(|e| KernelError::Tool(format!("{path}: {e}")))?;
            // SAFETY: plain syscalls on descriptors this thread owns.
            unsafe {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(last_os_error("setns"));
                }
                let v4 = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
                if v4 < 0 {
                    return Err(last_os_error("raw IPv4 socket"));
                }
                let v4 = OwnedFd::from_raw_fd(v4);
                let one: libc::c_int = 1;
                let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                let ptr = &one as *const libc::c_int as *const libc::c_void;
                if libc::setsockopt(
                    v4.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_HDRINCL,
                    ptr,
                    size,
                ) != 0
                {
                    return Err(last_os_error("IP_HDRINCL"));
                }
                let v6 = libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW);
                if v6 < 0 {
                    return Err(last_os_error("raw IPv6 socket"));
                }
                Ok(Sender {
                    v4,
                    v6: OwnedFd::from_raw_fd(v6),
                })
            }
        })
        .join()
        .map_err(|_| KernelError::Tool("the socket thread panicked".into()))?
    }

    /// Send one probe.
    pub fn send(&self, p: &Probe) -> Result<(), KernelError> {
        let pkt = build(p);
        // SAFETY: sockaddr structs are plain data, fully initialised before use.
        let rc = unsafe {
            match p.dst {
                IpAddr::V4(d) => {
                    let mut sa: libc::sockaddr_in = std::mem::zeroed();
                    sa.sin_family = libc::AF_INET as libc::sa_family_t;
                    sa.sin_addr.s_addr = u32::from_ne_bytes(d.octets());
                    libc::sendto(
                        self.v4.as_raw_fd(),
                        pkt.as_ptr() as *const libc::c_void,
                        pkt.len(),
                        0,
                        &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
                IpAddr::V6(d) => {
                    let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sa.sin6_addr.s6_addr = d.octets();
                    libc::sendto(
                        self.v6.as_raw_fd(),
                        pkt.as_ptr() as *const libc::c_void,
                        pkt.len(),
                        0,
                        &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if rc < 0 {
            return Err(last_os_error(&format!("sendto {}", p.dst)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        // A correct IPv4 header sums to 0 (csum of it is 0).
        let p = Probe {
            src: "198.51.100.7".parse().unwrap(),
            dst: "10.200.0.2".parse().unwrap(),
            protocol: 6,
            sport: 40000,
            dport: 22,
            marker: 7,
        };
        let pkt = build(&p);
        assert_eq!(csum(&pkt[..20], 0), 0);
        assert_eq!(&pkt[4..6], &7u16.to_be_bytes());
        // TCP: the checksum over pseudo header + segment is 0 too.
        let seg = &pkt[20..];
        assert_eq!(
            csum(seg, pseudo_sum(&pkt[12..16], &pkt[16..20], 6, seg.len())),
            0
        );
        let mut u = p.clone();
        u.protocol = 17;
        let pkt = build(&u);
        let seg = &pkt[20..];
        assert_eq!(
            csum(seg, pseudo_sum(&pkt[12..16], &pkt[16..20], 17, seg.len())),
            0
        );
        let mut i = p.clone();
        i.protocol = 1;
        let pkt = build(&i);
        assert_eq!(csum(&pkt[20..], 0), 0);
        let mut v6 = p;
        v6.src = "2001:db8::5".parse().unwrap();
        v6.dst = "fd00:200::2".parse().unwrap();
        v6.protocol = 58;
        let pkt = build(&v6);
        assert_eq!(pkt[0] >> 4, 6);
        let seg = &pkt[40..];
        assert_eq!(
            csum(seg, pseudo_sum(&pkt[8..24], &pkt[24..40], 58, seg.len())),
            0
        );
    }
}
