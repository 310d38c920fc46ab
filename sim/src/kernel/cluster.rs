//! The `kernel` dataplane of cluster scenarios: the rulesets fwsim renders for every node
//! loaded into real network namespaces wired like Calico nodes, and each flow sent as real
//! traffic (a TCP connect, a UDP datagram and its answer, an ICMP echo and its reply).
//!
//! ```text
//!   pod ns (eth0 pod-IP/32, default via 169.254.1.1 onlink)
//!      | veth
//!   node ns [caliXXXXXXXXXXX proxy_arp] [tunl0 tunnel-addr] [eth0 node-IP/32]
//!                                                               | veth
//!   switch ns [br0] ---------------- every node's eth0, and the outside's
//!                                                               | veth
//!   outside ns [eth0 169.254.0.254/32, the scenario's external addresses on lo]
//! ```
//!
//! Contract:
//! - [`ClusterKernel::new`] builds the namespaces (named `fwsim-<pid>-<n>-…`), loads each
//!   node's rendered `ipset save`, iptables-save and nft texts, and fails with the reason
//!   when it cannot (not root, a tool missing, an IPv6 node, a non-Calico layout).
//!   Everything it created is deleted when it is dropped, also on error or panic.
//! - [`ClusterKernel::flow`] sends one flow and reports what happened; Err (skipped) for a
//!   flow it cannot send (IPv6, SCTP, no port, no address). It never guesses.
//! - IPIP: where the kernel has the `ipip` driver, the real `tunl0`; where it has not (this
//!   machine's kernel is built without `CONFIG_NET_IPIP`), `tunl0` is a TUN device and a
//!   forwarder thread carries the inner packets as real IP protocol 4 packets sent from and
//!   received by the nodes' own namespaces (raw sockets), so the outer packets cross each
//!   node's OUTPUT, POSTROUTING, PREROUTING and INPUT as Calico's do. Its alias
//!   ([`crate::captured::IPIP_STAND_IN`]) says so, for snapshots of the node.
//! - VXLAN: the kernel's `vxlan.calico` (VNI 4096, no learning, static neighbour and FDB
//!   entries per other node, as felix programs them).

use super::lab::{run, Lab};
use super::{available, on_path, Backend, KernelError};
use crate::cluster::{Cluster, Endpoint, Flow, NodeId, TargetPort};
use crate::reference::Verdict;
use crate::render::net::{Cni, Tunnel, UPLINK};
use crate::render::Rendered;
use crate::values::{Cidr, Protocol};
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a flow may take before it counts as dropped.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// Connections sent to a service (all at once: kube-proxy picks an endpoint per connection).
const SERVICE_TRIES: usize = 8;
/// The outside namespace's address on the switch: every node's default gateway.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 254);
/// Calico's pod gateway (answered by proxy ARP on the cali veth).
const POD_GATEWAY: &str = "169.254.1.1";
/// Calico's MAC on every cali veth.
const CALI_MAC: &str = "ee:ee:ee:ee:ee:ee";
const OUTSIDE_MAC: &str = "02:f5:1f:ff:ff:fe";

fn node_mac(i: usize) -> String {
    format!("02:f5:10:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
}
fn vtep_mac(i: usize) -> String {
    format!("02:f5:30:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
}
fn pod_mac(i: usize) -> String {
    format!("02:f5:20:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
}

/// Run `f` on a thread that entered the network namespace `ns`: sockets it creates stay
/// in that namespace.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = Lab::path(ns);
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path)?;
            // SAFETY: setns on a valid fd; it changes only the calling thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a namespace thread panicked")))
    })
}

fn sockaddr(a: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKLEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn socket(kind: i32, proto: i32, bind: Option<Ipv4Addr>) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(a) = bind {
        let sa = sockaddr(a, 0);
        // SAFETY: sa is a valid sockaddr_in of SOCKLEN bytes.
        let rc = unsafe { libc::bind(fd.as_raw_fd(), &sa as *const _ as *const _, SOCKLEN) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Start a non-blocking connect; Ok(true) when already connected.
fn connect(fd: &OwnedFd, to: SocketAddrV4) -> io::Result<bool> {
    let sa = sockaddr(*to.ip(), to.port());
    // SAFETY: sa is a valid sockaddr_in of SOCKLEN bytes.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), &sa as *const _ as *const _, SOCKLEN) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn so_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid for getsockopt's out parameters.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut _,
            &mut len,
        )
    };
    err
}

/// poll(2) on `fds` (fd, events) for at most `wait`; the revents per fd.
fn poll(fds: &[(RawFd, i16)], wait: Duration) -> Vec<i16> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: p is a valid array of p.len() pollfds.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    p.iter().map(|x| x.revents).collect()
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// TCP handshake done / UDP or ICMP answer received.
    Answered,
    /// Refused: a TCP RST or ICMP port unreachable came back.
    Refused,
    /// Nothing came back in time.
    TimedOut,
    /// Another error (host unreachable, prohibited, …).
    Failed(String),
}

impl Outcome {
    fn ok(&self) -> bool {
        *self == Outcome::Answered
    }
    fn text(&self, protocol: Protocol) -> String {
        match self {
            Outcome::Answered => match protocol {
                Protocol::Tcp => "connected".into(),
                _ => "answered".into(),
            },
            Outcome::Refused => "refused".into(),
            Outcome::TimedOut => format!("no answer within {} ms", TIMEOUT.as_millis()),
            Outcome::Failed(e) => e.clone(),
        }
    }
    fn of_errno(e: i32) -> Outcome {
        if e == libc::ECONNREFUSED {
            Outcome::Refused
        } else {
            Outcome::Failed(io::Error::from_raw_os_error(e).to_string())
        }
    }
}

/// The IPIP forwarder (TUN `tunl0` per node; outer packets as raw protocol-4 packets).
struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;

/// Open a TUN device named `name` in the calling thread's namespace.
fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: a valid C string; the fd is owned at once.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: name[16], then the flags (short), padded to 40 bytes.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: ifr is a 40-byte ifreq, as TUNSETIFF reads and writes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Carry packets between the nodes' TUN devices and their raw IPIP sockets until stopped.
fn forward(
    tuns: Vec<OwnedFd>,
    raws: Vec<OwnedFd>,
    routes: Vec<(u32, u8, usize)>,
    node_ips: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
) {
    let n = tuns.len();
    let mut fds: Vec<(RawFd, i16)> = tuns.iter().map(|f| (f.as_raw_fd(), libc::POLLIN)).collect();
    fds.extend(raws.iter().map(|f| (f.as_raw_fd(), libc::POLLIN)));
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let ready = poll(&fds, Duration::from_millis(50));
        for (k, r) in ready.iter().enumerate() {
            if r & libc::POLLIN == 0 {
                continue;
            }
            loop {
                // SAFETY: buf is valid for buf.len() bytes.
                let got = unsafe { libc::read(fds[k].0, buf.as_mut_ptr() as *mut _, buf.len()) };
                if got <= 0 {
                    break;
                }
                let pkt = &buf[..got as usize];
                if k < n {
                    // An inner packet out of node k's tunl0: to the node owning its destination.
                    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
                        continue;
                    }
                    let dst = u32::from_be_bytes([pkt[16], pkt[17], pkt[18], pkt[19]]);
                    let Some(&(_, _, to)) = routes
                        .iter()
                        .filter(|(net, len, _)| {
                            let mask = if *len == 0 { 0 } else { u32::MAX << (32 - len) };
                            dst & mask == *net
                        })
                        .max_by_key(|r| r.1)
                    else {
                        continue;
                    };
                    let sa = sockaddr(node_ips[to], 0);
                    // SAFETY: pkt and sa are valid for their lengths.
                    unsafe {
                        libc::sendto(
                            raws[k].as_raw_fd(),
                            pkt.as_ptr() as *const _,
                            pkt.len(),
                            0,
                            &sa as *const _ as *const _,
                            SOCKLEN,
                        )
                    };
                } else {
                    // An outer packet node k-n accepted: decapsulate into its tunl0.
                    let ihl = ((pkt[0] & 0x0f) as usize) * 4;
                    if pkt.len() <= ihl {
                        continue;
                    }
                    let inner = &pkt[ihl..];
                    // SAFETY: inner is valid for its length.
                    unsafe {
                        libc::write(
                            tuns[k - n].as_raw_fd(),
                            inner.as_ptr() as *const _,
                            inner.len(),
                        )
                    };
                }
            }
        }
    }
}

/// The namespaces of one cluster, deleted on drop.
struct Namespaces {
    names: Vec<String>,
    forwarder: Option<Forwarder>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // The forwarder first: its TUN devices and sockets live in the namespaces.
        self.forwarder.take();
        for n in &self.names {
            let _ = run(&["ip", "netns", "del", n], None);
        }
    }
}

/// The kernel dataplane for one cluster: its namespaces, loaded, ready to send flows.
pub struct ClusterKernel<'c> {
    cluster: &'c Cluster,
    ns: Namespaces,
    node_ns: Vec<String>,
    /// Per pod, its namespace (None: an IPv6 pod, not built).
    pod_ns: Vec<Option<String>>,
    outside: String,
    /// External addresses already present in the outside namespace.
    externals: Mutex<Vec<Ipv4Addr>>,
    /// How IPIP is carried, for explanations.
    tunnel_note: Option<&'static str>,
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn batch(ns: &str, lines: &[String]) -> Result<(), KernelError> {
    if lines.is_empty() {
        return Ok(());
    }
    let text = lines.join("\n") + "\n";
    run(&["ip", "-n", ns, "-batch", "-"], Some(&text)).map(|_| ())
}

fn in_ns_tool(ns: &str, args: &[&str], stdin: Option<&str>) -> Result<String, KernelError> {
    let net = format!("--net={}", Lab::path(ns));
    let mut all = vec!["nsenter", net.as_str(), "--"];
    all.extend_from_slice(args);
    run(&all, stdin)
}

impl<'c> ClusterKernel<'c> {
    /// Build and load the cluster (rendered as calico-iptables or calico-nftables).
    pub fn new(
        cluster: &'c Cluster,
        rendered: &Rendered,
    ) -> Result<ClusterKernel<'c>, KernelError> {
        available(&[Backend::Legacy])?;
        let net = &rendered.net;
        if net.cni != Cni::Calico {
            return Err(KernelError::Unavailable(
                "the kernel dataplane builds Calico's node layout only".into(),
            ));
        }
        if cluster.nodes.iter().any(|n| !n.ip.is_ipv4()) {
            return Err(KernelError::Unavailable(
                "the kernel dataplane builds IPv4 clusters only".into(),
            ));
        }
        let uses = |f: fn(&crate::render::NodeRules) -> bool| rendered.nodes.iter().any(f);
        if uses(|n| n.ipsets.is_some()) && !on_path("ipset") {
            return Err(KernelError::Unavailable(
                "missing tools: ipset (Debian package ipset)".into(),
            ));
        }
        if cluster
            .externals
            .values()
            .any(|a| IpAddr::V4(GATEWAY) == *a)
            || cluster.pods.iter().any(|p| p.ip == IpAddr::V4(GATEWAY))
        {
            return Err(KernelError::Unavailable(format!(
                "the cluster uses {GATEWAY}, the lab's gateway address"
            )));
        }
        static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let tag = format!(
            "fwsim-{}-{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let node_ns: Vec<String> = (0..cluster.nodes.len())
            .map(|i| format!("{tag}-n{i}"))
            .collect();
        let pod_ns: Vec<Option<String>> = cluster
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| p.ip.is_ipv4().then(|| format!("{tag}-p{i}")))
            .collect();
        let mut k = ClusterKernel {
            cluster,
            ns: Namespaces {
                names: Vec::new(),
                forwarder: None,
            },
            node_ns,
            pod_ns,
            outside: format!("{tag}-out"),
            externals: Mutex::new(Vec::new()),
            tunnel_note: None,
        };
        k.build(&format!("{tag}-sw"), rendered)?;
        k.load(rendered)?;
        Ok(k)
    }

    /// The network namespace that is node `n` (for `fwsim collect --netns`).
    pub fn node_namespace(&self, n: NodeId) -> &str {
        &self.node_ns[n as usize]
    }

    fn add_ns(&mut self, name: &str) -> Result<(), KernelError> {
        let _ = run(&["ip", "netns", "del", name], None);
        run(&["ip", "netns", "add", name], None)?;
        self.ns.names.push(name.to_string());
        run(&["ip", "-n", name, "link", "set", "lo", "up"], None)?;
        Ok(())
    }

    fn build(&mut self, switch: &str, rendered: &Rendered) -> Result<(), KernelError> {
        let c = self.cluster;
        let net = &rendered.net;
        let tunnel = net.nodes.first().and_then(|n| n.tunnel);
        let ipip = tunnel == Some(Tunnel::Ipip);
        self.add_ns(switch)?;
        let outside = self.outside.clone();
        self.add_ns(&outside)?;
        for n in self.node_ns.clone() {
            self.add_ns(&n)?;
        }
        for p in self.pod_ns.clone().into_iter().flatten() {
            self.add_ns(&p)?;
        }
        // The switch: a bridge with every node's uplink and the outside's.
        let mut sw = vec![
            "link add br0 type bridge".to_string(),
            "link set br0 up".to_string(),
        ];
        for (i, n) in self.node_ns.iter().enumerate() {
            run(
                &[
                    "ip",
                    "-n",
                    switch,
                    "link",
                    "add",
                    &format!("n{i}"),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    UPLINK,
                    "address",
                    &node_mac(i),
                    "netns",
                    n,
                ],
                None,
            )?;
        }
        run(
            &[
                "ip",
                "-n",
                switch,
                "link",
                "add",
                "out",
                "type",
                "veth",
                "peer",
                "name",
                UPLINK,
                "address",
                OUTSIDE_MAC,
                "netns",
                &outside,
            ],
            None,
        )?;
        for i in 0..self.node_ns.len() {
            sw.push(format!("link set n{i} master br0"));
            sw.push(format!("link set n{i} up"));
        }
        sw.push("link set out master br0".into());
        sw.push("link set out up".into());
        batch(switch, &sw)?;
        // Pods: eth0 in the pod, the cali veth on its node.
        for (p, pod) in c.pods.iter().enumerate() {
            let Some(ns) = &self.pod_ns[p] else { continue };
            let node = &self.node_ns[pod.node as usize];
            run(
                &[
                    "ip",
                    "-n",
                    ns,
                    "link",
                    "add",
                    "eth0",
                    "address",
                    &pod_mac(p),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &net.pod_iface[p],
                    "address",
                    CALI_MAC,
                    "netns",
                    node,
                ],
                None,
            )?;
            batch(
                ns,
                &[
                    format!("addr add {}/32 dev eth0", pod.ip),
                    "link set eth0 up".into(),
                    format!("route add {POD_GATEWAY} dev eth0 scope link"),
                    format!("route add default via {POD_GATEWAY} dev eth0 onlink"),
                    format!("neigh replace {POD_GATEWAY} lladdr {CALI_MAC} dev eth0 nud permanent"),
                ],
            )?;
        }
        // IPIP: the real tunl0 where the kernel has it, else a TUN device and the forwarder.
        let mut tuns = Vec::new();
        let mut raws = Vec::new();
        if ipip {
            let real = run(
                &["ip", "-n", &self.node_ns[0], "link", "show", "tunl0"],
                None,
            )
            .is_ok();
            for n in &self.node_ns {
                if !real {
                    let (tun, raw) = in_ns(n, || {
                        Ok((
                            open_tun("tunl0")?,
                            socket(libc::SOCK_RAW, libc::IPPROTO_IPIP, None)?,
                        ))
                    })
                    .map_err(|e| KernelError::Tool(format!("cannot make tunl0 in {n}: {e}")))?;
                    // Said on the device, so that a snapshot of the node reads it as the
                    // IPIP tunnel it stands in for (crate::captured).
                    run(
                        &[
                            "ip",
                            "-n",
                            n,
                            "link",
                            "set",
                            "tunl0",
                            "alias",
                            crate::captured::IPIP_STAND_IN,
                        ],
                        None,
                    )?;
                    tuns.push(tun);
                    raws.push(raw);
                }
            }
            self.tunnel_note = Some(if real {
                "IPIP through the kernel's tunl0"
            } else {
                "IPIP: this kernel has no ipip driver; tunl0 is a TUN device whose packets a forwarder sends as real protocol-4 packets between the nodes' namespaces"
            });
        }
        // Nodes.
        for (i, node) in c.nodes.iter().enumerate() {
            let nn = &net.nodes[i];
            let mut b = vec![
                format!("addr add {}/32 dev {UPLINK}", node.ip),
                format!("link set {UPLINK} up"),
                format!("route add default via {GATEWAY} dev {UPLINK} onlink"),
                format!("neigh replace {GATEWAY} lladdr {OUTSIDE_MAC} dev {UPLINK} nud permanent"),
            ];
            for (p, pod) in c.pods.iter().enumerate() {
                if pod.node as usize == i && self.pod_ns[p].is_some() {
                    let dev = &net.pod_iface[p];
                    b.push(format!("link set {dev} up"));
                    b.push(format!("route add {}/32 dev {dev} scope link", pod.ip));
                    b.push(format!(
                        "neigh replace {} lladdr {} dev {dev} nud permanent",
                        pod.ip,
                        pod_mac(p)
                    ));
                }
            }
            let dev = nn.tunnel_dev.as_deref().unwrap_or(UPLINK);
            let mut fdb = Vec::new();
            if let Some(Tunnel::Vxlan(port)) = tunnel {
                // Calico's vxlan.calico: VNI 4096, no learning; static neighbour and FDB
                // entries for every other node's VTEP (as felix programs them).
                b.push(format!(
                    "link add {dev} address {} type vxlan id 4096 dstport {port} local {} dev {UPLINK} nolearning",
                    vtep_mac(i),
                    node.ip
                ));
            }
            if tunnel.is_some() {
                b.push(format!("link set {dev} up"));
                if let Some(a) = nn.tunnel_addr {
                    b.push(format!("addr add {a}/32 dev {dev}"));
                }
            }
            for (j, other) in c.nodes.iter().enumerate() {
                if j == i {
                    continue;
                }
                b.push(format!("route add {}/32 dev {UPLINK} scope link", other.ip));
                b.push(format!(
                    "neigh replace {} lladdr {} dev {UPLINK} nud permanent",
                    other.ip,
                    node_mac(j)
                ));
                let mut via = other.ip;
                if let Some(Tunnel::Vxlan(_)) = tunnel {
                    via = net.nodes[j].tunnel_addr.unwrap_or(other.ip);
                    b.push(format!(
                        "neigh replace {via} lladdr {} dev {dev} nud permanent",
                        vtep_mac(j)
                    ));
                    fdb.push(format!(
                        "fdb append {} dev {dev} dst {} self permanent",
                        vtep_mac(j),
                        other.ip
                    ));
                }
                for d in remote_destinations(c, j as NodeId) {
                    b.push(format!("route replace {d} via {via} dev {dev} onlink"));
                }
            }
            batch(&self.node_ns[i], &b)?;
            if !fdb.is_empty() {
                let text = fdb.join("\n") + "\n";
                run(
                    &["bridge", "-n", &self.node_ns[i], "-batch", "-"],
                    Some(&text),
                )?;
            }
        }
        // The outside: the gateway, the externals, routes to every node and pod network.
        let mut b = vec![
            format!("addr add {GATEWAY}/32 dev {UPLINK}"),
            format!("link set {UPLINK} up"),
        ];
        let mut ext = Vec::new();
        for a in c.externals.values().filter_map(|a| v4(*a)) {
            if !ext.contains(&a) {
                b.push(format!("addr add {a}/32 dev lo"));
                ext.push(a);
            }
        }
        *self.externals.lock().expect("lock") = ext;
        for (j, node) in c.nodes.iter().enumerate() {
            b.push(format!("route add {}/32 dev {UPLINK} scope link", node.ip));
            b.push(format!(
                "neigh replace {} lladdr {} dev {UPLINK} nud permanent",
                node.ip,
                node_mac(j)
            ));
            for d in remote_destinations(c, j as NodeId) {
                b.push(format!(
                    "route replace {d} via {} dev {UPLINK} onlink",
                    node.ip
                ));
            }
        }
        // Services are reached through the first node (as the packet path sends them).
        if let Some(first) = c.nodes.first() {
            for s in &c.services {
                if let Some(IpAddr::V4(a)) = s.cluster_ip {
                    b.push(format!(
                        "route replace {a}/32 via {} dev {UPLINK} onlink",
                        first.ip
                    ));
                }
            }
        }
        batch(&outside, &b)?;
        // Sysctls: forwarding on nodes, no reverse-path filter, no redirects, no ICMP rate
        // limit, ping sockets for root, no IPv6 (no ND/MLD chatter); proxy ARP on cali.
        let common = "set -e\n\
            echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter\n\
            echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter\n\
            for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done\n\
            for f in /proc/sys/net/ipv4/conf/*/send_redirects; do echo 0 > $f; done\n\
            echo 0 > /proc/sys/net/ipv4/icmp_ratelimit\n\
            echo 0 > /proc/sys/net/ipv4/icmp_ratemask\n\
            echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range\n\
            echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6\n\
            echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6\n";
        let mut scripts: Vec<(String, String)> = Vec::new();
        scripts.push((
            switch.to_string(),
            format!("{common}for f in /proc/sys/net/bridge/bridge-nf-call-*; do echo 0 > $f 2>/dev/null || true; done\n"),
        ));
        scripts.push((outside.clone(), common.to_string()));
        for (i, n) in self.node_ns.iter().enumerate() {
            let mut s = format!("{common}echo 1 > /proc/sys/net/ipv4/ip_forward\n");
            for (p, pod) in c.pods.iter().enumerate() {
                if pod.node as usize == i && self.pod_ns[p].is_some() {
                    let _ = writeln!(
                        s,
                        "echo 1 > /proc/sys/net/ipv4/conf/{}/proxy_arp",
                        net.pod_iface[p]
                    );
                }
            }
            scripts.push((n.clone(), s));
        }
        for p in self.pod_ns.iter().flatten() {
            scripts.push((p.clone(), common.to_string()));
        }
        for (ns, s) in &scripts {
            run(&["ip", "netns", "exec", ns, "sh", "-c", s], None)?;
        }
        if !tuns.is_empty() {
            let stop = Arc::new(AtomicBool::new(false));
            let mut routes = Vec::new();
            for (j, node) in c.nodes.iter().enumerate() {
                if let Some(Cidr::V4(n)) = node.pod_cidr {
                    routes.push((u32::from(n.network()), n.prefix_len(), j));
                }
            }
            for pod in &c.pods {
                if let IpAddr::V4(a) = pod.ip {
                    routes.push((u32::from(a), 32, pod.node as usize));
                }
            }
            let ips: Vec<Ipv4Addr> = c.nodes.iter().filter_map(|n| v4(n.ip)).collect();
            let s2 = stop.clone();
            let thread = std::thread::Builder::new()
                .name("fwsim-ipip".into())
                .spawn(move || forward(tuns, raws, routes, ips, s2))
                .map_err(|e| KernelError::Tool(format!("cannot start the IPIP forwarder: {e}")))?;
            self.ns.forwarder = Some(Forwarder {
                stop,
                thread: Some(thread),
            });
        }
        Ok(())
    }

    /// Load every node's rendered texts: ipsets, then iptables, then nft.
    fn load(&self, rendered: &Rendered) -> Result<(), KernelError> {
        for (i, n) in rendered.nodes.iter().enumerate() {
            let ns = &self.node_ns[i];
            let ctx = |e: KernelError| KernelError::Tool(format!("node {}: {e}", n.name));
            if let Some(sets) = &n.ipsets {
                in_ns_tool(ns, &["ipset", "restore"], Some(sets)).map_err(ctx)?;
            }
            if let Some(text) = &n.iptables {
                let tool = if crate::netfilter::from_iptables::Backend::of_text(text)
                    == crate::netfilter::from_iptables::Backend::Nft
                {
                    "iptables-nft-restore"
                } else {
                    "iptables-legacy-restore"
                };
                in_ns_tool(ns, &[tool], Some(text)).map_err(ctx)?;
            }
            if let Some(text) = &n.nft {
                in_ns_tool(ns, &["nft", "-f", "-"], Some(text)).map_err(ctx)?;
            }
        }
        Ok(())
    }

    /// The namespace an endpoint sends from or listens in, with the address a source binds
    /// to (externals: the outside holds several).
    fn place(&self, e: &Endpoint) -> Result<(String, Option<Ipv4Addr>), String> {
        match e {
            Endpoint::Pod(p) => self.pod_ns[*p as usize]
                .clone()
                .map(|n| (n, None))
                .ok_or_else(|| "the kernel dataplane builds IPv4 pods only".to_string()),
            Endpoint::Node(n) => Ok((self.node_ns[*n as usize].clone(), None)),
            Endpoint::External(a, _) => {
                let a = v4(*a).ok_or("the kernel dataplane sends IPv4 flows only")?;
                let mut have = self.externals.lock().expect("lock");
                if !have.contains(&a) {
                    run(
                        &[
                            "ip",
                            "-n",
                            &self.outside,
                            "addr",
                            "add",
                            &format!("{a}/32"),
                            "dev",
                            "lo",
                        ],
                        None,
                    )
                    .map_err(|e| e.to_string())?;
                    have.push(a);
                }
                Ok((self.outside.clone(), Some(a)))
            }
            Endpoint::Service(_) => Err("a service does not send".into()),
        }
    }

    /// Send one flow; the verdict and what happened.
    pub fn flow(&self, flow: &Flow) -> Result<(Verdict, String), String> {
        let c = self.cluster;
        if let (Endpoint::Pod(a), Endpoint::Pod(b)) = (&flow.from, &flow.to) {
            if a == b {
                return Ok((
                    Verdict::Allow,
                    "kernel: not sent (a pod's traffic to itself never leaves its network namespace)"
                        .into(),
                ));
            }
        }
        if flow.protocol == Protocol::Sctp {
            return Err("the kernel dataplane does not send SCTP yet".into());
        }
        let (Some(src), Some(dst)) = (flow.from.ip(c), flow.to.ip(c)) else {
            return Err("an endpoint of the flow has no address".into());
        };
        let (Some(_), Some(dst4)) = (v4(src), v4(dst)) else {
            return Err("the kernel dataplane sends IPv4 flows only".into());
        };
        let port = if flow.protocol.has_ports() {
            Some(flow.port.ok_or("a flow without a port cannot be sent")?)
        } else {
            None
        };
        let (src_ns, bind) = self.place(&flow.from)?;
        // Who answers: (name, namespace, address listened on).
        let mut targets: Vec<(String, String, SocketAddrV4)> = Vec::new();
        let tries;
        match &flow.to {
            Endpoint::Service(s) => {
                tries = SERVICE_TRIES;
                let svc = &c.services[*s as usize];
                if let Some(sp) = svc
                    .ports
                    .iter()
                    .find(|p| p.protocol == flow.protocol && Some(p.port) == port)
                {
                    for pod in c.service_endpoints(*s) {
                        let pd = &c.pods[pod as usize];
                        let target = match &sp.target {
                            TargetPort::Number(n) => Some(*n),
                            TargetPort::Name(n) => pd.named_port(n, sp.protocol),
                        };
                        if let (Some(t), Some(ns), Some(ip)) =
                            (target, &self.pod_ns[pod as usize], v4(pd.ip))
                        {
                            targets.push((c.pod_name(pod), ns.clone(), SocketAddrV4::new(ip, t)));
                        }
                    }
                }
            }
            to => {
                tries = 1;
                let (ns, _) = self.place(to)?;
                targets.push((
                    to.display(c),
                    ns,
                    SocketAddrV4::new(dst4, port.unwrap_or(0)),
                ));
            }
        }
        let to = SocketAddrV4::new(dst4, port.unwrap_or(0));
        let started = Instant::now();
        let (outcomes, reached) = match flow.protocol {
            Protocol::Tcp => tcp(&src_ns, bind, to, &targets, tries),
            Protocol::Udp => udp(&src_ns, bind, to, &targets, tries),
            Protocol::Icmp => icmp(&src_ns, bind, dst4, tries),
            Protocol::Sctp => unreachable!("refused above"),
        }
        .map_err(|e| format!("kernel: cannot send the flow: {e}"))?;
        let ms = started.elapsed().as_millis();
        let ok = outcomes.iter().filter(|o| o.ok()).count();
        let verdict = if ok == outcomes.len() {
            Verdict::Allow
        } else if ok == 0 {
            Verdict::Deny
        } else {
            Verdict::Partial
        };
        let what = match flow.protocol {
            Protocol::Tcp => "TCP connect",
            Protocol::Udp => "UDP datagram (answered by the receiver)",
            _ => "ICMP echo request",
        };
        let from = match bind {
            Some(a) => format!("{} ({a}, namespace {src_ns})", flow.from.display(c)),
            None => format!("{} (namespace {src_ns})", flow.from.display(c)),
        };
        let mut out = format!(
            "kernel: {what} from {from} to {}{}",
            flow.to.display(c),
            match port {
                Some(p) => format!(" {dst4}:{p}"),
                None => format!(" {dst4}"),
            }
        );
        if tries == 1 {
            let _ = write!(out, ": {} ({ms} ms)", outcomes[0].text(flow.protocol));
        } else {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for o in &outcomes {
                let t = o.text(flow.protocol);
                match counts.iter_mut().find(|x| x.0 == t) {
                    Some(x) => x.1 += 1,
                    None => counts.push((t, 1)),
                }
            }
            let list: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
            let _ = write!(
                out,
                ": {} connections at once (sampled: kube-proxy picks an endpoint at random per connection), {} ({ms} ms)",
                outcomes.len(),
                list.join(", ")
            );
            let names: Vec<String> = targets.iter().map(|t| t.0.clone()).collect();
            let _ = write!(
                out,
                "; listening endpoints: {}",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            );
        }
        let hit: Vec<String> = reached
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("{} ×{n}", targets[i].0))
            .collect();
        if !hit.is_empty() {
            let _ = write!(out, "; received by {}", hit.join(", "));
        }
        if let Some(note) = self.tunnel_note {
            let _ = write!(out, " [{note}]");
        }
        Ok((verdict, out))
    }
}

/// The destinations a node owns beyond its address: its podCIDR, and its pods outside it.
fn remote_destinations(c: &Cluster, node: NodeId) -> Vec<String> {
    let n = &c.nodes[node as usize];
    let mut out = Vec::new();
    if let Some(cidr @ Cidr::V4(_)) = n.pod_cidr {
        out.push(cidr.to_string());
    }
    for p in c.pods.iter().filter(|p| p.node == node) {
        if p.ip.is_ipv4() && !n.pod_cidr.is_some_and(|cidr| cidr.contains(&p.ip)) {
            out.push(format!("{}/32", p.ip));
        }
    }
    out
}

/// Per listener, how many connections or datagrams it received.
type Reached = Vec<usize>;

fn tcp(
    src_ns: &str,
    bind: Option<Ipv4Addr>,
    to: SocketAddrV4,
    targets: &[(String, String, SocketAddrV4)],
    tries: usize,
) -> io::Result<(Vec<Outcome>, Reached)> {
    let mut listeners = Vec::new();
    for (_, ns, addr) in targets {
        let l = in_ns(ns, || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        listeners.push(l);
    }
    let socks: Vec<OwnedFd> = in_ns(src_ns, || {
        (0..tries)
            .map(|_| socket(libc::SOCK_STREAM, 0, bind))
            .collect()
    })?;
    let mut out: Vec<Option<Outcome>> = vec![None; tries];
    for (i, s) in socks.iter().enumerate() {
        match connect(s, to) {
            Ok(true) => out[i] = Some(Outcome::Answered),
            Ok(false) => {}
            Err(e) => out[i] = Some(Outcome::of_errno(e.raw_os_error().unwrap_or(0))),
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    while out.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let pending: Vec<usize> = (0..tries).filter(|&i| out[i].is_none()).collect();
        let fds: Vec<(RawFd, i16)> = pending
            .iter()
            .map(|&i| (socks[i].as_raw_fd(), libc::POLLOUT))
            .collect();
        let ready = poll(&fds, deadline - now);
        for (k, &i) in pending.iter().enumerate() {
            if ready[k] != 0 {
                let e = so_error(socks[i].as_raw_fd());
                out[i] = Some(if e == 0 {
                    Outcome::Answered
                } else {
                    Outcome::of_errno(e)
                });
            }
        }
    }
    let outcomes: Vec<Outcome> = out
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::TimedOut))
        .collect();
    // Which listener got the connections (the handshake's last ACK may still be on its way).
    let mut reached = vec![0; listeners.len()];
    let expect = outcomes.iter().filter(|o| o.ok()).count();
    let until = Instant::now() + Duration::from_millis(200);
    while reached.iter().sum::<usize>() < expect && Instant::now() < until {
        for (i, l) in listeners.iter().enumerate() {
            while l.accept().is_ok() {
                reached[i] += 1;
            }
        }
        if reached.iter().sum::<usize>() < expect {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok((outcomes, reached))
}

fn udp(
    src_ns: &str,
    bind: Option<Ipv4Addr>,
    to: SocketAddrV4,
    targets: &[(String, String, SocketAddrV4)],
    tries: usize,
) -> io::Result<(Vec<Outcome>, Reached)> {
    let mut servers = Vec::new();
    for (_, ns, addr) in targets {
        let s = in_ns(ns, || {
            let s = UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        servers.push(s);
    }
    let from = SocketAddrV4::new(bind.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    let clients: Vec<UdpSocket> = in_ns(src_ns, || {
        (0..tries)
            .map(|_| {
                let s = UdpSocket::bind(from)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .collect()
    })?;
    let mut out: Vec<Option<Outcome>> = vec![None; tries];
    for (i, s) in clients.iter().enumerate() {
        if let Err(e) = s.connect(to).and_then(|_| s.send(b"fwsim")) {
            out[i] = Some(Outcome::of_errno(e.raw_os_error().unwrap_or(0)));
        }
    }
    let mut reached = vec![0; servers.len()];
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 2048];
    while out.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut fds: Vec<(RawFd, i16)> = servers
            .iter()
            .map(|s| (s.as_raw_fd(), libc::POLLIN))
            .collect();
        fds.extend(clients.iter().map(|s| (s.as_raw_fd(), libc::POLLIN)));
        let ready = poll(&fds, deadline - now);
        for (i, s) in servers.iter().enumerate() {
            if ready[i] != 0 {
                while let Ok((n, peer)) = s.recv_from(&mut buf) {
                    reached[i] += 1;
                    let _ = s.send_to(&buf[..n], peer);
                }
            }
        }
        for (i, s) in clients.iter().enumerate() {
            if out[i].is_none() && ready[servers.len() + i] != 0 {
                match s.recv(&mut buf) {
                    Ok(_) => out[i] = Some(Outcome::Answered),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => out[i] = Some(Outcome::of_errno(e.raw_os_error().unwrap_or(0))),
                }
            }
        }
    }
    Ok((
        out.into_iter()
            .map(|o| o.unwrap_or(Outcome::TimedOut))
            .collect(),
        reached,
    ))
}

fn icmp(
    src_ns: &str,
    bind: Option<Ipv4Addr>,
    to: Ipv4Addr,
    tries: usize,
) -> io::Result<(Vec<Outcome>, Reached)> {
    let socks: Vec<OwnedFd> = in_ns(src_ns, || {
        (0..tries)
            .map(|_| socket(libc::SOCK_DGRAM, libc::IPPROTO_ICMP, bind))
            .collect()
    })?;
    let mut out: Vec<Option<Outcome>> = vec![None; tries];
    // Echo request, id and checksum filled in by the kernel.
    let req = [8u8, 0, 0, 0, 0, 0, 0, 1, b'f', b'w', b's', b'i', b'm'];
    for (i, s) in socks.iter().enumerate() {
        let sent = connect(s, SocketAddrV4::new(to, 0)).and_then(|_| {
            // SAFETY: req is valid for its length.
            let n = unsafe { libc::send(s.as_raw_fd(), req.as_ptr() as *const _, req.len(), 0) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        if let Err(e) = sent {
            out[i] = Some(Outcome::of_errno(e.raw_os_error().unwrap_or(0)));
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 2048];
    while out.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let fds: Vec<(RawFd, i16)> = socks
            .iter()
            .map(|s| (s.as_raw_fd(), libc::POLLIN))
            .collect();
        let ready = poll(&fds, deadline - now);
        for (i, s) in socks.iter().enumerate() {
            if out[i].is_none() && ready[i] != 0 {
                // SAFETY: buf is valid for its length.
                let n = unsafe {
                    libc::recv(
                        s.as_raw_fd(),
                        buf.as_mut_ptr() as *mut _,
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 && buf[0] == 0 {
                    out[i] = Some(Outcome::Answered);
                } else if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::WouldBlock {
                        out[i] = Some(Outcome::of_errno(e.raw_os_error().unwrap_or(0)));
                    }
                }
            }
        }
    }
    Ok((
        out.into_iter()
            .map(|o| o.unwrap_or(Outcome::TimedOut))
            .collect(),
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Flavor;

    fn cluster(yaml: &str) -> Cluster {
        crate::testing::cluster_of(yaml)
    }

    fn scenario(overlay: &str, policies: &str) -> String {
        format!(
            "apiVersion: fwsim/v1\nkind: Scenario\nname: t\ncluster:\n{overlay}  nodes:\n    - {{name: node-1, ip: 192.168.0.1, podCIDR: 10.244.1.0/24}}\n    - {{name: node-2, ip: 192.168.0.2, podCIDR: 10.244.2.0/24}}\n  namespaces: {{x: {{}}, y: {{}}}}\n  pods:\n    - {{name: x/a, node: node-1, ip: 10.244.1.10, labels: {{app: a}}}}\n    - {{name: x/b, node: node-2, ip: 10.244.2.10, labels: {{app: b}}}}\n    - {{name: x/c, node: node-1, ip: 10.244.1.11, labels: {{app: c}}}}\n    - {{name: y/web, node: node-2, ip: 10.244.2.20, labels: {{app: web}}}}\n    - {{name: y/web2, node: node-1, ip: 10.244.1.20, labels: {{app: web}}}}\n  services:\n    - {{name: y/web, clusterIP: 10.96.0.20, selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080, protocol: TCP}}]}}\n  externals: {{internet: 203.0.113.7}}\n{policies}expect: []\n"
        )
    }

    const DENY_X: &str = "policies:\n  - apiVersion: networking.k8s.io/v1\n    kind: NetworkPolicy\n    metadata: {name: deny, namespace: x}\n    spec:\n      podSelector: {matchLabels: {app: b}}\n      policyTypes: [Ingress]\n";

    fn ep(c: &Cluster, s: &str) -> Endpoint {
        if let Some(n) = s.strip_prefix("node:") {
            return Endpoint::Node(c.node(n).unwrap());
        }
        if let Some(n) = s.strip_prefix("svc:") {
            return Endpoint::Service(c.service(n).unwrap());
        }
        if s.starts_with("ext:") {
            return Endpoint::External("203.0.113.7".parse().unwrap(), Some("internet".into()));
        }
        Endpoint::Pod(c.pod(s).unwrap())
    }

    fn flow(c: &Cluster, from: &str, to: &str, protocol: Protocol, port: Option<u16>) -> Flow {
        Flow {
            from: ep(c, from),
            to: ep(c, to),
            port,
            protocol,
        }
    }

    /// The lab, or None (printed) where it cannot run.
    fn lab<'c>(c: &'c Cluster) -> Option<ClusterKernel<'c>> {
        let rendered = crate::render::render(c, Flavor::CalicoIptables, &[]).unwrap();
        match ClusterKernel::new(c, &rendered) {
            Ok(k) => Some(k),
            Err(KernelError::Unavailable(why)) => {
                eprintln!("skipped: {why}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn exists(ns: &str) -> bool {
        std::path::Path::new(&Lab::path(ns)).exists()
    }

    fn check(
        c: &Cluster,
        k: &ClusterKernel,
        from: &str,
        to: &str,
        p: Protocol,
        port: Option<u16>,
        want: Verdict,
    ) {
        // A send that fails outright (not a verdict) is retried once: seen once in a
        // loaded test run, with no message kept.
        let f = flow(c, from, to, p, port);
        let (v, why) = k
            .flow(&f)
            .or_else(|e| {
                eprintln!("{from} -> {to} {p:?} {port:?}: {e}; retrying once");
                k.flow(&f)
            })
            .unwrap_or_else(|e| panic!("{from} -> {to} {p:?} {port:?}: {e}"));
        assert_eq!(v, want, "{from} -> {to} {p:?} {port:?}: {why}");
    }

    #[test]
    fn ipip_cluster_traffic_follows_the_policies() {
        let c = cluster(&scenario("", DENY_X));
        let Some(k) = lab(&c) else { return };
        let names = k.ns.names.clone();
        use Protocol::*;
        use Verdict::*;
        // Same node, across nodes (IPIP), UDP, ICMP, to a node, from outside.
        check(&c, &k, "x/a", "x/c", Tcp, Some(80), Allow);
        check(&c, &k, "x/a", "y/web", Tcp, Some(8080), Allow);
        check(&c, &k, "y/web", "x/a", Udp, Some(53), Allow);
        check(&c, &k, "x/c", "y/web", Icmp, None, Allow);
        check(&c, &k, "x/a", "node:node-2", Tcp, Some(10250), Allow);
        check(&c, &k, "node:node-1", "y/web", Tcp, Some(8080), Allow);
        check(&c, &k, "ext:internet", "y/web", Tcp, Some(8080), Allow);
        check(&c, &k, "x/a", "ext:internet", Tcp, Some(443), Allow);
        // The default-deny-ingress policy on x/b: denied from the same and another node…
        check(&c, &k, "x/a", "x/b", Tcp, Some(80), Deny);
        check(&c, &k, "y/web", "x/b", Udp, Some(53), Deny);
        // …but x/b's own connections get their replies (established).
        check(&c, &k, "x/b", "x/a", Tcp, Some(80), Allow);
        check(&c, &k, "x/b", "y/web2", Tcp, Some(8080), Allow);
        // A service through kube-proxy's DNAT, endpoints on both nodes.
        let (v, why) = k
            .flow(&flow(&c, "x/a", "svc:y/web", Tcp, Some(80)))
            .unwrap();
        assert_eq!(v, Allow, "{why}");
        assert!(why.contains("received by"), "{why}");
        // A pod to itself is not sent.
        check(&c, &k, "x/a", "x/a", Tcp, Some(80), Allow);
        assert!(k.flow(&flow(&c, "x/a", "x/b", Sctp, Some(80))).is_err());
        assert!(names.iter().all(|n| exists(n)));
        drop(k);
        assert!(
            names.iter().all(|n| !exists(n)),
            "namespaces left: {names:?}"
        );
    }

    #[test]
    fn vxlan_overlay() {
        let c = cluster(&scenario("  overlay: vxlan\n", DENY_X));
        let Some(k) = lab(&c) else { return };
        check(
            &c,
            &k,
            "x/a",
            "y/web",
            Protocol::Tcp,
            Some(8080),
            Verdict::Allow,
        );
        check(
            &c,
            &k,
            "node:node-2",
            "x/c",
            Protocol::Udp,
            Some(53),
            Verdict::Allow,
        );
        check(&c, &k, "x/c", "x/b", Protocol::Tcp, Some(80), Verdict::Deny);
        check(
            &c,
            &k,
            "x/b",
            "x/c",
            Protocol::Tcp,
            Some(80),
            Verdict::Allow,
        );
    }

    #[test]
    fn direct_routing_without_overlay() {
        let c = cluster(&scenario("  overlay: none\n", DENY_X));
        let Some(k) = lab(&c) else { return };
        check(
            &c,
            &k,
            "x/a",
            "y/web",
            Protocol::Tcp,
            Some(8080),
            Verdict::Allow,
        );
        check(&c, &k, "x/c", "x/b", Protocol::Tcp, Some(80), Verdict::Deny);
        check(
            &c,
            &k,
            "x/b",
            "x/c",
            Protocol::Tcp,
            Some(80),
            Verdict::Allow,
        );
    }
}
