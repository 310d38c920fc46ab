//! `fwsim collect`: run the snapshot's commands on this host or inside a network
//! namespace and write their output, one file per command.
//!
//! Contract: [`collect`] writes every file it can and returns what it wrote and, for each
//! file it could not write, why (a tool missing, not root, the command's own error): it
//! never stops at the first failure, and never writes a file from a command that failed
//! (a missing file means "not collected"). scripts/collect-node.sh writes the same files
//! with the same commands, for nodes where only a shell is at hand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The sysctls a snapshot records, printed as `sysctl` prints them (`name = value`); the
/// same loop is in scripts/collect-node.sh. A missing `net.bridge` means br_netfilter is
/// not loaded (bridged traffic does not cross iptables), and is said in a comment.
pub const SYSCTL_SCRIPT: &str = r#"for k in net/ipv4/ip_forward net/ipv6/conf/all/forwarding net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables net/bridge/bridge-nf-call-arptables; do
  if [ -r "/proc/sys/$k" ]; then printf '%s = %s\n' "$(echo "$k" | tr / .)" "$(cat "/proc/sys/$k")"; fi
done
for d in /proc/sys/net/ipv4/conf/*; do
  n=${d##*/}
  for p in forwarding rp_filter src_valid_mark; do
    if [ -r "$d/$p" ]; then printf 'net.ipv4.conf.%s.%s = %s\n' "$n" "$p" "$(cat "$d/$p")"; fi
  done
done
if [ ! -d /proc/sys/net/bridge ]; then echo '# net.bridge: absent (br_netfilter is not loaded: bridged traffic does not cross iptables)'; fi
"#;

/// One file of the snapshot: its name, and the commands whose output (concatenated) it
/// holds.
struct Job {
    file: &'static str,
    commands: Vec<Vec<&'static str>>,
}

fn jobs() -> Vec<Job> {
    let one = |file, c: &[&'static str]| Job {
        file,
        commands: vec![c.to_vec()],
    };
    vec![
        one("iptables-legacy-save.txt", &["iptables-legacy-save"]),
        one("ip6tables-legacy-save.txt", &["ip6tables-legacy-save"]),
        one("iptables-nft-save.txt", &["iptables-nft-save"]),
        one("ip6tables-nft-save.txt", &["ip6tables-nft-save"]),
        one("ipset-save.txt", &["ipset", "save"]),
        one("nft-ruleset.json", &["nft", "-j", "list", "ruleset"]),
        one("ip-addr.json", &["ip", "-j", "addr", "show"]),
        Job {
            file: "ip-route.json",
            commands: vec![
                vec!["ip", "-j", "route", "show", "table", "all"],
                vec!["ip", "-6", "-j", "route", "show", "table", "all"],
            ],
        },
        one("ip-link.json", &["ip", "-j", "-d", "link", "show"]),
        Job {
            file: "ip-rule.json",
            commands: vec![
                vec!["ip", "-j", "rule", "show"],
                vec!["ip", "-6", "-j", "rule", "show"],
            ],
        },
        one("sysctl.txt", &["sh", "-c", SYSCTL_SCRIPT]),
    ]
}

/// What `collect` did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub dir: PathBuf,
    pub written: Vec<&'static str>,
    /// (file, why it was not written).
    pub failed: Vec<(&'static str, String)>,
}

/// Is `tool` on the PATH?
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// The Debian package a tool comes in.
fn package(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "nft" => "nftables",
        "ipset" => "ipset",
        "sh" => "dash",
        _ => "iptables",
    }
}

/// Run `argv` on the host or in `netns`: its standard output, or why not.
fn run(netns: Option<&str>, argv: &[&str]) -> Result<String, String> {
    if !on_path(argv[0]) {
        return Err(format!(
            "`{}` is not installed (Debian package {})",
            argv[0],
            package(argv[0])
        ));
    }
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", argv.join(" ")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        return Err(format!(
            "`{}` failed ({}): {first}{}",
            argv.join(" "),
            out.status,
            if root {
                ""
            } else {
                " (not root: listing rules needs CAP_NET_ADMIN)"
            }
        ));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| format!("`{}` printed text that is not UTF-8", argv.join(" ")))
}

/// The first line a tool prints for its version, or None.
fn version(netns: Option<&str>, argv: &[&str]) -> Option<String> {
    let _ = netns;
    if !on_path(argv[0]) {
        return None;
    }
    let out = Command::new(argv[0]).args(&argv[1..]).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Collect a snapshot of this host (or of `netns`) into `out` (created if needed). `name`:
/// the node's name for node.yaml (default: the namespace's name, else the host name).
pub fn collect(netns: Option<&str>, out: &Path, name: Option<&str>) -> Result<Report, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let mut report = Report {
        dir: out.to_path_buf(),
        ..Report::default()
    };
    if let Some(ns) = netns {
        if !Path::new("/run/netns").join(ns).exists() {
            return Err(format!(
                "network namespace `{ns}` does not exist (expected one `ip netns list` shows)"
            ));
        }
    }
    for job in jobs() {
        let mut text = String::new();
        let mut failure = None;
        for c in &job.commands {
            match run(netns, c) {
                Ok(t) => {
                    text.push_str(&t);
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                }
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            }
        }
        match failure {
            Some(why) => report.failed.push((job.file, why)),
            None => match std::fs::write(out.join(job.file), text) {
                Ok(()) => report.written.push(job.file),
                Err(e) => report.failed.push((job.file, format!("cannot write: {e}"))),
            },
        }
    }
    // node.yaml.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let name = name
        .map(str::to_string)
        .or_else(|| netns.map(str::to_string))
        .unwrap_or(hostname);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut yaml = format!(
        "# Written by fwsim collect {}\nname: {}\ncollected_at: {}\nkernel: {}\n",
        env!("CARGO_PKG_VERSION"),
        q(&name),
        q(&utc_now()),
        q(&kernel)
    );
    if let Some(ns) = netns {
        yaml.push_str(&format!("netns: {}\n", q(ns)));
    }
    yaml.push_str("tools:\n");
    for (tool, argv) in [
        ("iptables", &["iptables", "--version"][..]),
        ("nft", &["nft", "--version"]),
        ("ipset", &["ipset", "--version"]),
        ("ip", &["ip", "-V"]),
    ] {
        if let Some(v) = version(netns, argv) {
            yaml.push_str(&format!("  {tool}: {}\n", q(&v)));
        }
    }
    match std::fs::write(out.join("node.yaml"), yaml) {
        Ok(()) => report.written.push("node.yaml"),
        Err(e) => report
            .failed
            .push(("node.yaml", format!("cannot write: {e}"))),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    /// `fwsim collect` and scripts/collect-node.sh write the same files (comments and
    /// node.yaml's time aside) from a namespace holding rules of every backend, and the
    /// snapshot reads.
    #[test]
    fn the_shell_fallback_writes_the_same_snapshot() {
        let Some(ns) = crate::testing::Netns::new("collect") else {
            return;
        };
        let missing: Vec<&str> = ["iptables-legacy-restore", "iptables-nft-restore", "ipset"]
            .into_iter()
            .filter(|t| !super::on_path(t))
            .collect();
        if !missing.is_empty() {
            eprintln!("skipped: missing {missing:?}");
            return;
        }
        for (argv, stdin) in [
            (&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"][..], None),
            (&["ip", "addr", "add", "192.168.0.1/24", "dev", "eth0"], None),
            (&["ip", "link", "set", "eth0", "up"], None),
            (&["ipset", "create", "s", "hash:ip"], None),
            (&["iptables-legacy-restore"], Some("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set s src -j DROP\nCOMMIT\n")),
            (&["iptables-nft-restore"], Some("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 192.168.0.9\nCOMMIT\n")),
            (&["nft", "add", "table", "inet", "mine"], None),
        ] {
            ns.run(argv, stdin).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let report = super::collect(Some(ns.name()), a.path(), Some("n1")).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/collect-node.sh");
        let out = std::process::Command::new("sh")
            .arg(&script)
            .args(["--netns", ns.name(), "--name", "n1", "--out"])
            .arg(b.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let strip = |t: String| -> String {
            t.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("collected_at:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (file, _) in crate::snapshot::FILES {
            let x = std::fs::read_to_string(a.path().join(file))
                .unwrap_or_else(|_| panic!("fwsim collect wrote no {file}"));
            let y = std::fs::read_to_string(b.path().join(file))
                .unwrap_or_else(|_| panic!("collect-node.sh wrote no {file}"));
            assert_eq!(strip(x), strip(y), "{file}");
        }
        let s = crate::snapshot::read(a.path()).unwrap();
        assert_eq!(s.name(), "n1");
        assert!(s.ruleset.ipsets.is_some());
        assert!(s.sysctl("net.ipv4.ip_forward").is_some(), "{:?}", s.sysctl);
        assert!(s.addrs.iter().any(|x| x.dev == "eth0"));
    }

    #[test]
    fn utc_dates_are_civil() {
        let now = super::utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20"), "{now}");
        assert!(now.ends_with('Z'));
    }
}
