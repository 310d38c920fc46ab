//! Fuzz oracles: one function per input kind, taking arbitrary bytes. The cargo-fuzz
//! targets in `fuzz/`, the corpus replay test (`sim/tests/fuzz_corpus.rs`) and, later,
//! `fwsim fuzz` all call these, so a crash found by one replays in the others.
//!
//! Contract: an oracle returns what happened to the input ([`Outcome`]) and panics only when
//! fwsim broke one of its own promises on it:
//! - [`iptables_save`]: parsing never panics; a parsed ruleset prints to text that parses to
//!   the same syntax tree (locations and the implicit/explicit flag of protocol modules
//!   aside, as the printer always writes `-m tcp`) and prints identically again; converting
//!   it to the IR never panics; walking packets derived from the input through the IR never
//!   panics and gives the same walk twice.
//! - [`scenario_yaml`]: reading, loading and evaluating a scenario file never panics.
//! - [`ipset_save`]: parsing never panics; a parsed text prints to text that parses and
//!   prints identically; building the sets never panics and gives the same sets from the
//!   printed text; membership tests of packets derived from the input never panic and are
//!   deterministic.
//! - [`nft_text`]: parsing nft text never panics; a parsed file prints to text that parses
//!   to the same tree (locations aside) and prints identically again; converting it to the
//!   IR, writing it as JSON, and walking derived packets never panic; the printed text
//!   converts whenever the input does.
//! - [`nft_json`]: reading nft JSON never panics; what it reads prints back to JSON (or is
//!   refused with a location) that reads to the same tree and prints identically; converting
//!   it and walking derived packets never panic.
//!
//! Deterministic: the packets walked are drawn from a ChaCha8 generator seeded with the
//! FNV-1a hash of the input, so the same bytes always exercise the same paths.

use crate::netfilter::ir::{self, Match};
use crate::syntax::iptables::{self, Save, Target};
use crate::values::{CtState, Hook, Loc, Packet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// How far an input got; tests use it to check that seeds reach the stage they were written
/// for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Not UTF-8 (rejected before parsing).
    NotText,
    /// Refused by the parser (a located error).
    SyntaxError,
    /// Parsed, but refused by the conversion or loader (a located error).
    Refused,
    /// Accepted all the way: converted (and packets walked) or loaded (and evaluated).
    Accepted,
}

/// FNV-1a, 64 bits: the seed of the packets derived from an input.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The syntax tree with every location cleared and protocol modules marked explicit: what
/// printing preserves.
pub fn without_locations(save: &Save) -> Save {
    let mut s = save.clone();
    let clear_opts = |opts: &mut Vec<iptables::Opt>| {
        for o in opts {
            o.loc = Loc::default();
        }
    };
    for t in &mut s.tables {
        t.loc = Loc::default();
        for c in &mut t.chains {
            c.loc = Loc::default();
        }
        for r in &mut t.rules {
            r.loc = Loc::default();
            clear_opts(&mut r.core);
            for m in &mut r.matches {
                m.loc = Loc::default();
                m.explicit = true;
                clear_opts(&mut m.options);
            }
            match &mut r.target {
                Some(Target::Jump { options, loc, .. }) => {
                    *loc = Loc::default();
                    clear_opts(options);
                }
                Some(Target::Goto { loc, .. }) => *loc = Loc::default(),
                None => {}
            }
        }
    }
    s
}

/// Packets to walk through `rs`, drawn from `seed`, using the addresses, interfaces and
/// marks the ruleset mentions (so that rules match now and then) and random ones.
pub fn packets_for(rs: &ir::Ruleset, seed: u64, count: usize) -> Vec<Packet> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut ifaces: Vec<String> = vec!["eth0".into(), "lo".into()];
    let mut marks: Vec<u32> = vec![0];
    let mut ports: Vec<u16> = vec![22, 53, 80, 443];
    for t in &rs.tables {
        for c in &t.chains {
            for r in &c.rules {
                for m in &r.matches {
                    match m {
                        Match::Addr { nets, .. } => {
                            addrs.extend(nets.iter().take(4).map(|n| n.addr()))
                        }
                        Match::Iface { name, .. } => {
                            ifaces.push(name.trim_end_matches('+').to_string() + "0")
                        }
                        Match::Mark { value, .. } | Match::ConnMark { value, .. } => {
                            marks.push(*value)
                        }
                        Match::Port { ranges, .. } | Match::AnyPort { ranges, .. } => {
                            ports.extend(ranges.iter().take(4).map(|r| r.0))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let v6 = rs.tables.iter().any(|t| {
        t.family == ir::Family::Ip6 && !rs.tables.iter().any(|u| u.family == ir::Family::Ip)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let addr = |rng: &mut ChaCha8Rng| -> IpAddr {
        let same_family: Vec<&IpAddr> = addrs.iter().filter(|a| a.is_ipv6() == v6).collect();
        if !same_family.is_empty() && rng.random_bool(0.7) {
            *same_family[rng.random_range(0..same_family.len())]
        } else if v6 {
            IpAddr::V6(Ipv6Addr::from(rng.random::<u128>()))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
        }
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let protocol = [6u8, 17, 1, 58, 132, 47][rng.random_range(0..6)];
        let ported = matches!(protocol, 6 | 17 | 132);
        let port = |rng: &mut ChaCha8Rng| -> Option<u16> {
            if !ported {
                None
            } else if rng.random_bool(0.7) {
                Some(ports[rng.random_range(0..ports.len())])
            } else {
                Some(rng.random())
            }
        };
        let sport = port(&mut rng);
        let dport = port(&mut rng);
        let hook = [Hook::Input, Hook::Forward, Hook::Output][rng.random_range(0..3)];
        let iface = |rng: &mut ChaCha8Rng| -> Option<String> {
            rng.random_bool(0.8)
                .then(|| ifaces[rng.random_range(0..ifaces.len())].clone())
        };
        let iif = if hook == Hook::Output {
            None
        } else {
            iface(&mut rng)
        };
        let oif = if hook == Hook::Input {
            None
        } else {
            iface(&mut rng)
        };
        let ctstate = [
            CtState::New,
            CtState::Established,
            CtState::Related,
            CtState::Invalid,
            CtState::Untracked,
        ][rng.random_range(0..5)];
        let mark = marks[rng.random_range(0..marks.len())];
        out.push(Packet {
            src: addr(&mut rng),
            dst: addr(&mut rng),
            protocol,
            sport,
            dport,
            iif,
            oif,
            hook,
            ctstate,
            mark,
        });
    }
    out
}

/// The iptables-save oracle (see the module contract).
pub fn iptables_save(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let save = match iptables::parse(text) {
        Ok(s) => s,
        Err(_) => {
            // The IR reader must refuse it too, without panicking.
            let _ = crate::netfilter::read_ruleset(text);
            return Outcome::SyntaxError;
        }
    };
    let printed = save.to_string();
    let again = match iptables::parse(&printed) {
        Ok(s) => s,
        Err(e) => {
            panic!("printed ruleset does not parse: {e}\n--- input\n{text}\n--- printed\n{printed}")
        }
    };
    assert_eq!(
        without_locations(&again),
        without_locations(&save),
        "print → parse changed the syntax tree\n--- input\n{text}\n--- printed\n{printed}"
    );
    assert_eq!(again.to_string(), printed, "printing is not stable");
    let rs = match crate::netfilter::read_ruleset(text) {
        Ok(rs) => rs,
        Err(_) => return Outcome::Refused,
    };
    // The printed text means the same.
    match crate::netfilter::read_ruleset(&printed) {
        Ok(rs2) => assert_eq!(
            rs2.tables.len(),
            rs.tables.len(),
            "the printed ruleset converts to other tables\n--- printed\n{printed}"
        ),
        Err(e) => panic!(
            "the input converts but its printed form does not: {}: {}\n--- printed\n{printed}",
            e.loc, e.message
        ),
    }
    let _ = rs.unsupported();
    for p in packets_for(&rs, fnv1a(data), 4) {
        let w = crate::netfilter::interp::walk(&rs, &p);
        let _ = w.to_string();
        assert_eq!(
            crate::netfilter::interp::walk(&rs, &p),
            w,
            "walk is not deterministic for {p}"
        );
    }
    Outcome::Accepted
}

/// The ipset save oracle (see the module contract).
pub fn ipset_save(data: &[u8]) -> Outcome {
    use crate::netfilter::ipset::{build, View};
    use crate::syntax::ipset;
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let save = match ipset::parse(text) {
        Ok(s) => s,
        Err(_) => {
            assert!(crate::netfilter::read_ipsets(text).is_err());
            return Outcome::SyntaxError;
        }
    };
    let printed = save.to_string();
    let again = match ipset::parse(&printed) {
        Ok(s) => s,
        Err(e) => {
            panic!("printed ipsets do not parse: {e}\n--- input\n{text}\n--- printed\n{printed}")
        }
    };
    assert_eq!(again.to_string(), printed, "printing is not stable");
    let sets = match build(&save) {
        Ok(s) => s,
        Err(_) => return Outcome::Refused,
    };
    let sets2 = match build(&again) {
        Ok(s) => s,
        Err(e) => panic!(
            "the input builds but its printed form does not: {}: {}\n--- printed\n{printed}",
            e.loc, e.message
        ),
    };
    let shape = |s: &crate::netfilter::ipset::Ipsets| -> Vec<String> {
        s.sets
            .values()
            .map(|x| format!("{} {:?} {} {:?}", x.name, x.ty, x.v6, x.index))
            .collect()
    };
    assert_eq!(
        shape(&sets),
        shape(&sets2),
        "the printed ipsets build other sets"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(data));
    for name in sets.sets.keys() {
        for _ in 0..4 {
            let v6 = rng.random_bool(0.3);
            let addr = |rng: &mut ChaCha8Rng| -> IpAddr {
                if v6 {
                    IpAddr::V6(Ipv6Addr::from(rng.random::<u128>()))
                } else {
                    IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
                }
            };
            let proto = [6u8, 17, 1, 58, 47, 132][rng.random_range(0..6)];
            let view = View {
                src: addr(&mut rng),
                dst: addr(&mut rng),
                proto,
                sport: rng.random_bool(0.9).then(|| rng.random()),
                dport: rng.random_bool(0.9).then(|| rng.random()),
                iif: Ok(Some("eth0")),
                oif: if rng.random_bool(0.5) {
                    Ok(None)
                } else {
                    Err(())
                },
            };
            let dirs: Vec<ir::Dir> = (0..rng.random_range(1..4))
                .map(|_| {
                    if rng.random_bool(0.5) {
                        ir::Dir::Src
                    } else {
                        ir::Dir::Dst
                    }
                })
                .collect();
            let nm = rng.random_bool(0.2);
            let r = sets.test(name, &view, &dirs, nm);
            assert_eq!(
                r,
                sets.test(name, &view, &dirs, nm),
                "membership is not deterministic"
            );
        }
    }
    Outcome::Accepted
}

/// Where [`scenario_yaml`] writes its input: the loader reads the scenario file itself (for
/// inline tables and rulesets), so the oracle goes through a real file, one per process and
/// thread.
fn scratch_file() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let dir = std::env::temp_dir().join(format!("fwsim-fuzz-{}-{thread}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join("input.yaml")
}

/// The scenario YAML oracle (see the module contract). Inputs naming files under `/dev`,
/// `/proc` or `/sys` are skipped (reading `/dev/zero` never ends: not a parser bug).
pub fn scenario_yaml(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return Outcome::NotText;
    }
    if crate::syntax::yaml::parse_documents(text).is_err() {
        return Outcome::SyntaxError;
    }
    let path = scratch_file();
    if std::fs::write(&path, data).is_err() {
        return Outcome::NotText;
    }
    let found = crate::scenario::discover(std::slice::from_ref(&path));
    let mut outcome = if found.errors.is_empty() {
        Outcome::Accepted
    } else {
        Outcome::Refused
    };
    for doc in &found.docs {
        match crate::scenario::load(doc) {
            Ok(s) => {
                let r = crate::scenario::evaluate(&s, None);
                let _ = r.ok();
            }
            Err(_) => outcome = Outcome::Refused,
        }
    }
    if found.docs.is_empty() && outcome == Outcome::Accepted {
        outcome = Outcome::Refused;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

/// A Debug rendering without `loc: Loc {..}` fields: what printing preserves.
pub fn debug_without_locations<T: std::fmt::Debug>(x: &T) -> String {
    let d = format!("{x:?}");
    let mut out = String::with_capacity(d.len());
    let mut rest = d.as_str();
    while let Some(i) = rest.find("loc: Loc {") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        rest = &tail[tail.find('}').map_or(tail.len(), |j| j + 1)..];
    }
    out.push_str(rest);
    out
}

fn walk_some(rs: &ir::Ruleset, data: &[u8]) {
    let _ = rs.unsupported();
    for p in packets_for(rs, fnv1a(data), 4) {
        let w = crate::netfilter::interp::walk(rs, &p);
        let _ = w.to_string();
        assert_eq!(
            crate::netfilter::interp::walk(rs, &p),
            w,
            "walk is not deterministic for {p}"
        );
    }
}

/// The nft text oracle (see the module contract).
pub fn nft_text(data: &[u8]) -> Outcome {
    use crate::syntax::nft;
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let file = match nft::parse(text) {
        Ok(f) => f,
        Err(_) => {
            let _ = crate::netfilter::read_ruleset(text);
            return Outcome::SyntaxError;
        }
    };
    let printed = file.to_string();
    let again = match nft::parse(&printed) {
        Ok(f) => f,
        Err(e) => {
            panic!("printed nft does not parse: {e}\n--- input\n{text}\n--- printed\n{printed}")
        }
    };
    assert_eq!(
        debug_without_locations(&again),
        debug_without_locations(&file),
        "print → parse changed the nft tree\n--- input\n{text}\n--- printed\n{printed}"
    );
    assert_eq!(again.to_string(), printed, "printing nft is not stable");
    let _ = crate::syntax::nft_json::print(&file);
    let rs = match crate::netfilter::from_nft::convert(&file) {
        Ok(rs) => rs,
        Err(_) => return Outcome::Refused,
    };
    match crate::netfilter::from_nft::convert(&again) {
        Ok(rs2) => assert_eq!(
            rs2.tables.len(),
            rs.tables.len(),
            "the printed nft converts to other tables\n--- printed\n{printed}"
        ),
        Err(e) => {
            panic!("the input converts but its printed form does not: {e}\n--- printed\n{printed}")
        }
    }
    walk_some(&rs, data);
    Outcome::Accepted
}

/// The nft JSON oracle (see the module contract).
pub fn nft_json(data: &[u8]) -> Outcome {
    use crate::syntax::nft_json;
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let file = match nft_json::parse(text) {
        Ok(f) => f,
        Err(_) => {
            let _ = crate::netfilter::read_ruleset(text);
            return Outcome::SyntaxError;
        }
    };
    let _ = file.to_string();
    if let Ok(printed) = nft_json::print(&file) {
        let again = match nft_json::parse(&printed) {
            Ok(f) => f,
            Err(e) => {
                panic!("printed JSON does not read: {e}\n--- input\n{text}\n--- printed\n{printed}")
            }
        };
        assert_eq!(
            debug_without_locations(&again),
            debug_without_locations(&file),
            "print → read changed the tree\n--- input\n{text}\n--- printed\n{printed}"
        );
        assert_eq!(
            nft_json::print(&again).ok().as_deref(),
            Some(printed.as_str()),
            "printing JSON is not stable"
        );
    }
    let rs = match crate::netfilter::from_nft::convert(&file) {
        Ok(rs) => rs,
        Err(_) => return Outcome::Refused,
    };
    walk_some(&rs, data);
    Outcome::Accepted
}

/// The planted bug named by the `FWSIM_PLANTED` environment variable, switched on once per
/// process (cargo-fuzz targets measure how fast they find each planted bug this way).
fn plant_from_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(name) = std::env::var("FWSIM_PLANTED") {
            match crate::planted::Bug::parse(name.trim()) {
                Ok(b) => crate::planted::set(Some(b)),
                Err(m) => panic!("FWSIM_PLANTED: {m}"),
            }
        }
    });
}

/// The divergence oracle of a Calico dataplane: the bytes drive the case generator
/// (`gen::case`, through `arbitrary`); the reference and the dataplane must agree on every
/// flow but the documented differences (`divergence::check_case`). Panics with the case
/// as a scenario file on a divergence (or when the rendered rules do not read back).
pub fn calico_divergence(data: &[u8], flavor: crate::render::Flavor) -> Outcome {
    plant_from_env();
    let mut src = crate::gen::case::Bytes(arbitrary::Unstructured::new(data));
    let case = crate::gen::case::Case::generate(&mut src);
    let r = crate::divergence::check_case(&case, flavor);
    if let Some(b) = &r.broken {
        panic!(
            "{b}\n{}",
            case.to_yaml("fuzz", "", &["reference", "calico-iptables"], None)
        );
    }
    if let Some(f) = r.findings.first() {
        panic!(
            "divergence on {}: reference {}, {flavor:?} {}\n{}",
            f.flow,
            f.reference.as_str(),
            f.dataplane.as_str(),
            case.to_yaml("fuzz", "", &["reference"], None)
        );
    }
    if r.loaded {
        Outcome::Accepted
    } else {
        Outcome::Refused
    }
}

/// iptables vs nft readings of one generated ruleset (seeded by the bytes' FNV-1a hash):
/// every probe, and every packet of a connection sequence, gets the same fate from both.
pub fn iptables_vs_nft(data: &[u8]) -> Outcome {
    plant_from_env();
    match crate::divergence::campaign::iptables_vs_nft_case(fnv1a(data)) {
        Some(report) => panic!("{report}"),
        None => Outcome::Accepted,
    }
}

/// The reference engine's fast path vs its full evaluation on a small cluster generated
/// from the bytes' FNV-1a hash: every pod pair on five ports agrees.
pub fn reference_fast(data: &[u8]) -> Outcome {
    if let (Some(m), _) = crate::divergence::campaign::reference_fast(fnv1a(data)) {
        panic!("{m}");
    }
    Outcome::Accepted
}
