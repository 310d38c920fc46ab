//! The lab: three network namespaces joined by veths, made for one check and deleted when
//! the [`Lab`] is dropped (also on panic).
//!
//! ```text
//! snd [snd0 10.200.0.1 fd00:200::1] <-veth-> [dut0 10.200.0.2 fd00:200::2] dut
//! dut [dut1 10.201.0.1 fd00:201::1] <-veth-> [rcv0 10.201.0.2 fd00:201::2] rcv
//! ```
//!
//! The sender sends raw packets (any source address) to the device under test (`dut`),
//! whose ruleset is checked; packets to the DUT's own addresses take the input path, packets
//! to 10.201.0.0/24 and fd00:201::/64 the forward path (out of `dut1`). Neighbours are
//! static (no ARP or ND), rp_filter is off, ICMP rate limits are off, redirects are off
//! (docs/kernel-harness-notes.md, §1 and §6).

use super::KernelError;
use std::process::{Command, Stdio};

/// The three namespaces of one check.
pub struct Lab {
    pub snd: String,
    pub dut: String,
    pub rcv: String,
}

/// How a lab's DUT looks beyond the fixed layout: the names of its two interfaces, and
/// the addresses a scenario's packets need (made local, or routed out of `out`).
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// The interface probes arrive on (default `dut0`).
    pub iif: String,
    /// The interface forwarded packets leave by (default `dut1`).
    pub oif: String,
    /// Extra addresses of the DUT (on `lo`): destinations of input packets.
    pub local: Vec<std::net::IpAddr>,
    /// Extra host routes out of `oif`: destinations of forwarded packets.
    pub forward: Vec<std::net::IpAddr>,
    /// Extra addresses with their prefix, on `iif`.
    pub local_nets: Vec<crate::values::Cidr>,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            iif: DUT_IN.into(),
            oif: DUT_OUT.into(),
            local: Vec::new(),
            forward: Vec::new(),
            local_nets: Vec::new(),
        }
    }
}

pub const SND_ADDR4: &str = "10.200.0.1";
pub const DUT_ADDRS: [&str; 4] = ["10.200.0.2", "10.201.0.1", "fd00:200::2", "fd00:201::1"];
/// The interface packets from the sender arrive on, and the one forwarded packets leave by.
pub const DUT_IN: &str = "dut0";
pub const DUT_OUT: &str = "dut1";

const MAC_SND: &str = "02:f5:00:00:00:01";
const MAC_DUT0: &str = "02:f5:00:00:00:02";
const MAC_DUT1: &str = "02:f5:00:00:01:01";
const MAC_RCV: &str = "02:f5:00:00:01:02";

/// Run a command; its failure (with stderr) is an error.
pub(crate) fn run(args: &[&str], stdin: Option<&str>) -> Result<String, KernelError> {
    use std::io::Write;
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| KernelError::Tool(format!("cannot run {}: {e}", args[0])))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // A tool that fails early closes its stdin: its exit status tells why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| KernelError::Tool(format!("{}: {e}", args[0])))?;
    if !out.status.success() {
        return Err(KernelError::Tool(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    /// Create a lab whose name no other lab of this process (or another) has: tests and the
    /// kernel dataplane create them in parallel.
    pub fn create_unique(spec: &LabSpec) -> Result<Lab, KernelError> {
        static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::create_with(&format!("{}-{n}", std::process::id()), spec)
    }

    /// Create the namespaces with the DUT shaped by `spec`; `tag` keeps concurrent labs
    /// apart (namespace names have no length limit).
    pub fn create_with(tag: &str, spec: &LabSpec) -> Result<Lab, KernelError> {
        let lab = Lab {
            snd: format!("fwsim-{tag}-snd"),
            dut: format!("fwsim-{tag}-dut"),
            rcv: format!("fwsim-{tag}-rcv"),
        };
        // Leftovers of a killed earlier run with the same tag.
        for n in [&lab.snd, &lab.dut, &lab.rcv] {
            let _ = run(&["ip", "netns", "del", n], None);
        }
        lab.setup(spec)?;
        Ok(lab)
    }

    fn setup(&self, spec: &LabSpec) -> Result<(), KernelError> {
        let (i0, i1) = (spec.iif.as_str(), spec.oif.as_str());
        let (s, d, r) = (self.snd.as_str(), self.dut.as_str(), self.rcv.as_str());
        for n in [s, d, r] {
            run(&["ip", "netns", "add", n], None)?;
            run(&["ip", "-n", n, "link", "set", "lo", "up"], None)?;
        }
        let batch = |ns: &str, lines: &[String]| -> Result<(), KernelError> {
            let text = lines.join("\n") + "\n";
            run(&["ip", "-n", ns, "-batch", "-"], Some(&text)).map(|_| ())
        };
        run(
            &[
                "ip", "-n", s, "link", "add", "snd0", "address", MAC_SND, "type", "veth", "peer",
                "name", i0, "address", MAC_DUT0, "netns", d,
            ],
            None,
        )?;
        run(
            &[
                "ip", "-n", d, "link", "add", i1, "address", MAC_DUT1, "type", "veth", "peer",
                "name", "rcv0", "address", MAC_RCV, "netns", r,
            ],
            None,
        )?;
        let l = |x: &str| x.to_string();
        batch(
            s,
            &[
                l("addr add 10.200.0.1/24 dev snd0"),
                l("addr add fd00:200::1/64 dev snd0 nodad"),
                l("link set snd0 up"),
                l("route add default via 10.200.0.2 dev snd0"),
                l("route add default via fd00:200::2 dev snd0"),
                format!("neigh replace 10.200.0.2 lladdr {MAC_DUT0} dev snd0 nud permanent"),
                format!("neigh replace fd00:200::2 lladdr {MAC_DUT0} dev snd0 nud permanent"),
            ],
        )?;
        let mut dut = vec![
            format!("addr add 10.200.0.2/24 dev {i0}"),
            format!("addr add fd00:200::2/64 dev {i0} nodad"),
            format!("addr add 10.201.0.1/24 dev {i1}"),
            format!("addr add fd00:201::1/64 dev {i1} nodad"),
            format!("link set {i0} up"),
            format!("link set {i1} up"),
            format!("route add default via 10.200.0.1 dev {i0}"),
            format!("route add default via fd00:200::1 dev {i0}"),
            format!("neigh replace 10.200.0.1 lladdr {MAC_SND} dev {i0} nud permanent"),
            format!("neigh replace fd00:200::1 lladdr {MAC_SND} dev {i0} nud permanent"),
            format!("neigh replace 10.201.0.2 lladdr {MAC_RCV} dev {i1} nud permanent"),
            format!("neigh replace fd00:201::2 lladdr {MAC_RCV} dev {i1} nud permanent"),
            // The generator's other forward destinations: a neighbour that never answers
            // would make the DUT send ICMP host-unreachable seconds later, into a later
            // batch (seen in connection mode, where forwarded probes go on).
            format!("neigh replace 10.201.0.77 lladdr {MAC_RCV} dev {i1} nud permanent"),
            format!("neigh replace fd00:201::77 lladdr {MAC_RCV} dev {i1} nud permanent"),
        ];
        for a in &spec.local {
            let len = if a.is_ipv4() { 32 } else { 128 };
            dut.push(format!("addr add {a}/{len} dev lo"));
        }
        for n in &spec.local_nets {
            let nodad = if n.addr().is_ipv6() { " nodad" } else { "" };
            dut.push(format!("addr add {n} dev {i0}{nodad}"));
        }
        for a in &spec.forward {
            let via = if a.is_ipv4() {
                "10.201.0.2"
            } else {
                "fd00:201::2"
            };
            dut.push(format!("route replace {a} via {via} dev {i1}"));
        }
        batch(d, &dut)?;
        batch(
            r,
            &[
                l("addr add 10.201.0.2/24 dev rcv0"),
                l("addr add fd00:201::2/64 dev rcv0 nodad"),
                l("link set rcv0 up"),
                l("route add default via 10.201.0.1 dev rcv0"),
                l("route add default via fd00:201::1 dev rcv0"),
                // Static, like the sender's: the DUT's output chain drops its ND answers.
                format!("neigh replace 10.201.0.1 lladdr {MAC_DUT1} dev rcv0 nud permanent"),
                format!("neigh replace fd00:201::1 lladdr {MAC_DUT1} dev rcv0 nud permanent"),
            ],
        )?;
        let dev0 = format!("net/ipv4/conf/{i0}/rp_filter=0");
        let dev1 = format!("net/ipv4/conf/{i1}/rp_filter=0");
        let red0 = format!("net/ipv4/conf/{i0}/send_redirects=0");
        let red1 = format!("net/ipv4/conf/{i1}/send_redirects=0");
        let sysctls = [
            "net/ipv4/ip_forward=1",
            "net/ipv6/conf/all/forwarding=1",
            "net/ipv4/conf/all/rp_filter=0",
            "net/ipv4/conf/default/rp_filter=0",
            &dev0,
            &dev1,
            "net/ipv4/conf/all/accept_local=1",
            "net/ipv4/conf/all/send_redirects=0",
            "net/ipv4/conf/default/send_redirects=0",
            &red0,
            &red1,
            "net/ipv4/icmp_ratelimit=0",
            "net/ipv4/icmp_ratemask=0",
            "net/ipv6/icmp/ratelimit=0",
            "net/ipv6/auto_flowlabels=0",
        ];
        let mut script = String::new();
        for kv in sysctls {
            let (k, v) = kv.split_once('=').expect("key=value");
            script.push_str(&format!("echo {v} > /proc/sys/{k}\n"));
        }
        // ratemask empty: no ICMPv6 type is rate limited (an empty write is refused on
        // some kernels; then the rate limit 0 above is enough).
        script.push_str("echo > /proc/sys/net/ipv6/icmp/ratemask 2>/dev/null || true\n");
        run(&["ip", "netns", "exec", d, "sh", "-e", "-c", &script], None)?;
        // The sender and the receiver drop whatever reaches them: their stacks never answer
        // (an answer would be a reply-direction packet through the DUT's conntrack).
        let sink = "table inet fwsim_sink {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\n";
        for n in [s, r] {
            run(&["ip", "netns", "exec", n, "nft", "-f", "-"], Some(sink))?;
        }
        Ok(())
    }

    /// The path of a namespace, for `setns` and `nsenter`.
    pub fn path(ns: &str) -> String {
        format!("/run/netns/{ns}")
    }

    /// Run a tool inside the DUT's namespace.
    pub fn in_dut(&self, args: &[&str], stdin: Option<&str>) -> Result<String, KernelError> {
        let net = format!("--net={}", Self::path(&self.dut));
        let mut all = vec!["nsenter", net.as_str(), "--"];
        all.extend_from_slice(args);
        run(&all, stdin)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in [&self.snd, &self.dut, &self.rcv] {
            let _ = run(&["ip", "netns", "del", n], None);
        }
    }
}
