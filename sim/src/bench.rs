//! `fwsim bench`: the reference engine's speed on a generated cluster, and (`fwsim bench
//! netfilter`) the netfilter interpreter's on generated rulesets, as CSV rows in
//! `reports/`. Tests never assert times; this is where they are measured.

use crate::gen::{generate_cluster, ClusterShape};
use crate::reference::Reference;
use crate::values::Protocol;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another benchmark than the reference engine's.
    #[command(subcommand)]
    pub what: Option<BenchWhat>,
    /// Random seed of the generated cluster and traffic (printed; replays exactly).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 100)]
    pub namespaces: usize,
    #[arg(long, default_value_t = 5000)]
    pub pods: usize,
    #[arg(long, default_value_t = 2000)]
    pub policies: usize,
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// Verdicts in the single-core throughput run.
    #[arg(long, default_value_t = 20_000_000)]
    pub verdicts: usize,
    /// CSV file to append rows to (created with a header if missing).
    #[arg(long, default_value = "reports/bench-reference.csv")]
    pub out: PathBuf,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum BenchWhat {
    /// Packets per second through the netfilter interpreter (`netfilter::interp::walk`):
    /// linear INPUT chains of 1k, 10k and 100k rules and a Calico-like ruleset.
    Netfilter(NetfilterArgs),
    /// Flows per second through the full cluster packet path of each rendered dataplane
    /// (render, parse, then walk every node each flow crosses), on a generated cluster.
    Dataplanes(DataplanesArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct DataplanesArgs {
    /// Random seed of the generated cluster and flows (printed; replays exactly).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    #[arg(long, default_value_t = 40)]
    pub namespaces: usize,
    #[arg(long, default_value_t = 2000)]
    pub pods: usize,
    #[arg(long, default_value_t = 1000)]
    pub policies: usize,
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// Flows per dataplane (one in ten to a service).
    #[arg(long, default_value_t = 5000)]
    pub flows: usize,
    /// Dataplanes (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "calico-iptables,calico-nftables,flannel"
    )]
    pub dataplanes: Vec<String>,
    /// CSV file to append rows to (created with a header if missing).
    #[arg(long, default_value = "reports/bench-dataplanes.csv")]
    pub out: PathBuf,
}

#[derive(clap::Args, Clone, Debug)]
pub struct NetfilterArgs {
    /// Random seed of the generated rulesets and packets (printed; replays exactly).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Packets per case (default: 20 million rule evaluations' worth for the linear
    /// chains, 50,000 for the Calico-like ruleset).
    #[arg(long)]
    pub packets: Option<usize>,
    /// Sizes of the linear chains (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
    pub linear: Vec<usize>,
    /// Endpoints of the Calico-like ruleset (0: leave the case out).
    #[arg(long, default_value_t = 500)]
    pub calico_endpoints: usize,
    /// CSV file to append rows to (created with a header if missing).
    #[arg(long, default_value = "reports/bench-netfilter.csv")]
    pub out: PathBuf,
}

/// One measured row.
struct Row {
    benchmark: &'static str,
    threads: usize,
    verdicts: u64,
    seconds: f64,
}

pub fn run(args: &BenchArgs) -> Result<String, String> {
    match &args.what {
        Some(BenchWhat::Netfilter(n)) => return netfilter(n),
        Some(BenchWhat::Dataplanes(d)) => return dataplanes(d),
        None => {}
    }
    if args.namespaces == 0 || args.pods == 0 {
        return Err("--namespaces and --pods must be at least 1".into());
    }
    let mut summary = String::new();
    let shape = ClusterShape {
        nodes: args.nodes,
        namespaces: args.namespaces,
        pods: args.pods,
        policies: args.policies,
        services: 0,
    };
    let _ = writeln!(
        summary,
        "seed {}: {} namespaces, {} pods, {} policies, {} nodes",
        args.seed, args.namespaces, args.pods, args.policies, args.nodes
    );
    let t = Instant::now();
    let cluster = generate_cluster(args.seed, shape);
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let engine = Reference::new(&cluster);
    let index_s = t.elapsed().as_secs_f64();
    let _ = writeln!(
        summary,
        "generated in {gen_s:.2} s, indexed in {index_s:.2} s"
    );
    let mut rows = vec![Row {
        benchmark: "index",
        threads: rayon::current_num_threads(),
        verdicts: 0,
        seconds: index_s,
    }];

    // Single core: random pod pairs and ports, drawn before timing.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    let n = cluster.pods.len() as u32;
    const PORTS: [(u16, Protocol); 5] = [
        (80, Protocol::Tcp),
        (8080, Protocol::Tcp),
        (8050, Protocol::Tcp),
        (53, Protocol::Udp),
        (9090, Protocol::Tcp),
    ];
    let sample: Vec<(u32, u32, u8)> = (0..args.verdicts.min(50_000_000))
        .map(|_| {
            (
                rng.random_range(0..n),
                rng.random_range(0..n),
                rng.random_range(0..PORTS.len() as u8),
            )
        })
        .collect();
    let t = Instant::now();
    let mut allowed = 0u64;
    for &(s, d, p) in &sample {
        let (port, proto) = PORTS[p as usize];
        allowed += u64::from(engine.pod_to_pod(s, d, Some(port), proto));
    }
    let single_s = t.elapsed().as_secs_f64();
    let _ = writeln!(
        summary,
        "single core: {} verdicts in {single_s:.3} s = {:.2} M verdicts/s ({allowed} allowed)",
        sample.len(),
        sample.len() as f64 / single_s / 1e6
    );
    rows.push(Row {
        benchmark: "verdicts-single-core",
        threads: 1,
        verdicts: sample.len() as u64,
        seconds: single_s,
    });

    // The full pod × pod matrix on 80/TCP, rows in parallel on every core.
    let t = Instant::now();
    let allowed: u64 = (0..n)
        .into_par_iter()
        .map(|s| {
            (0..n)
                .filter(|&d| engine.pod_to_pod(s, d, Some(80), Protocol::Tcp))
                .count() as u64
        })
        .sum();
    let matrix_s = t.elapsed().as_secs_f64();
    let cells = u64::from(n) * u64::from(n);
    let _ = writeln!(
        summary,
        "full matrix {n} x {n} on 80/TCP with {} threads: {matrix_s:.3} s = {:.2} M verdicts/s ({allowed} allowed)",
        rayon::current_num_threads(),
        cells as f64 / matrix_s / 1e6
    );
    rows.push(Row {
        benchmark: "full-matrix",
        threads: rayon::current_num_threads(),
        verdicts: cells,
        seconds: matrix_s,
    });

    let new = !args.out.exists();
    let mut w = csv::Writer::from_writer(Vec::new());
    if new {
        w.write_record([
            "benchmark",
            "seed",
            "namespaces",
            "pods",
            "policies",
            "threads",
            "verdicts",
            "seconds",
            "verdicts_per_second",
        ])
        .map_err(|e| e.to_string())?;
    }
    for r in &rows {
        w.write_record([
            r.benchmark.to_string(),
            args.seed.to_string(),
            args.namespaces.to_string(),
            args.pods.to_string(),
            args.policies.to_string(),
            r.threads.to_string(),
            r.verdicts.to_string(),
            format!("{:.6}", r.seconds),
            if r.verdicts > 0 {
                format!("{:.0}", r.verdicts as f64 / r.seconds)
            } else {
                String::new()
            },
        ])
        .map_err(|e| e.to_string())?;
    }
    append(&args.out, w)?;
    let _ = writeln!(summary, "rows appended to {}", args.out.display());
    Ok(summary)
}

/// Append the CSV rows written into `w` to the file at `path` (its folder made if missing).
fn append(path: &std::path::Path, w: csv::Writer<Vec<u8>>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Today's date (UTC), from the system clock: `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The checked-out commit, or `unknown` outside a git work tree.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `fwsim bench netfilter`.
/// `fwsim bench dataplanes`.
fn dataplanes(args: &DataplanesArgs) -> Result<String, String> {
    use crate::cluster::{Endpoint, Flow};
    use crate::render::Flavor;
    if args.namespaces == 0 || args.pods < 2 {
        return Err("--namespaces must be at least 1 and --pods at least 2".into());
    }
    let mut summary = String::new();
    let shape = ClusterShape {
        nodes: args.nodes,
        namespaces: args.namespaces,
        pods: args.pods,
        policies: args.policies,
        services: args.services,
    };
    let _ = writeln!(
        summary,
        "seed {}: {} nodes, {} namespaces, {} pods, {} policies, {} services, {} flows per dataplane",
        args.seed, args.nodes, args.namespaces, args.pods, args.policies, args.services, args.flows
    );
    let cluster = generate_cluster(args.seed, shape);
    let reference = Reference::new(&cluster);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0xf10e);
    let n = cluster.pods.len() as u32;
    const PORTS: [(u16, Protocol); 4] = [
        (80, Protocol::Tcp),
        (8080, Protocol::Tcp),
        (9090, Protocol::Tcp),
        (53, Protocol::Udp),
    ];
    let flows: Vec<Flow> = (0..args.flows)
        .map(|_| {
            let from = Endpoint::Pod(rng.random_range(0..n));
            if !cluster.services.is_empty() && rng.random_range(0..10) == 0 {
                let s = rng.random_range(0..cluster.services.len() as u32);
                return Flow {
                    from,
                    to: Endpoint::Service(s),
                    port: Some(80),
                    protocol: Protocol::Tcp,
                };
            }
            let (port, protocol) = PORTS[rng.random_range(0..PORTS.len())];
            Flow {
                from,
                to: Endpoint::Pod(rng.random_range(0..n)),
                port: Some(port),
                protocol,
            }
        })
        .collect();
    let expected: Vec<_> = flows.iter().map(|f| reference.verdict(f)).collect();
    let date = today();
    let commit = commit();
    let mut w = csv::Writer::from_writer(Vec::new());
    if !args.out.exists() {
        w.write_record([
            "date",
            "commit",
            "seed",
            "dataplane",
            "nodes",
            "pods",
            "policies",
            "services",
            "rules",
            "render_seconds",
            "parse_seconds",
            "flows",
            "threads",
            "seconds",
            "flows_per_sec",
            "agree",
            "differ",
            "inconclusive",
        ])
        .map_err(|e| e.to_string())?;
    }
    for name in &args.dataplanes {
        let flavor = match name.as_str() {
            "calico-iptables" => Flavor::CalicoIptables,
            "calico-nftables" => Flavor::CalicoNftables,
            "flannel" => Flavor::Flannel,
            other => return Err(format!("unknown rendered dataplane `{other}`")),
        };
        let t = Instant::now();
        let rendered =
            crate::render::render(&cluster, flavor, &[]).map_err(|e| format!("{name}: {e}"))?;
        let render_s = t.elapsed().as_secs_f64();
        let rules: usize = rendered
            .nodes
            .iter()
            .map(|n| {
                n.iptables
                    .as_deref()
                    .map_or(0, |t| t.matches("\n-A ").count())
                    + n.nft.as_deref().map_or(0, |t| t.lines().count())
            })
            .sum();
        let t = Instant::now();
        let path = crate::path::ClusterPath::new(&cluster, &rendered)
            .map_err(|e| format!("{name}: {e}"))?;
        let parse_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let results: Vec<Result<crate::reference::Verdict, String>> =
            flows.par_iter().map(|f| path.flow(f).verdict).collect();
        let secs = t.elapsed().as_secs_f64();
        let (mut agree, mut differ, mut inconclusive) = (0usize, 0usize, 0usize);
        let mut examples = String::new();
        for ((r, want), f) in results.iter().zip(&expected).zip(&flows) {
            let example = match r {
                Ok(v) if v == want => {
                    agree += 1;
                    None
                }
                Ok(v) => {
                    differ += 1;
                    (differ <= 3).then(|| format!("{} vs reference {}", v.as_str(), want.as_str()))
                }
                Err(why) => {
                    inconclusive += 1;
                    (inconclusive <= 3).then(|| format!("inconclusive: {why}"))
                }
            };
            if let Some(e) = example {
                let _ = writeln!(examples, "  {}: {e}", f.display(&cluster));
            }
        }
        let threads = rayon::current_num_threads();
        let _ = writeln!(
            summary,
            "{name}: rendered {rules} rules in {render_s:.2} s, parsed in {parse_s:.2} s; {} flows in {secs:.2} s on {threads} threads = {:.0} flows/s; vs reference: {agree} agree, {differ} differ, {inconclusive} inconclusive",
            flows.len(),
            flows.len() as f64 / secs
        );
        summary.push_str(&examples);
        w.write_record([
            date.clone(),
            commit.clone(),
            args.seed.to_string(),
            name.clone(),
            args.nodes.to_string(),
            args.pods.to_string(),
            args.policies.to_string(),
            args.services.to_string(),
            rules.to_string(),
            format!("{render_s:.3}"),
            format!("{parse_s:.3}"),
            flows.len().to_string(),
            threads.to_string(),
            format!("{secs:.3}"),
            format!("{:.0}", flows.len() as f64 / secs),
            agree.to_string(),
            differ.to_string(),
            inconclusive.to_string(),
        ])
        .map_err(|e| e.to_string())?;
    }
    append(&args.out, w)?;
    let _ = writeln!(summary, "rows appended to {}", args.out.display());
    Ok(summary)
}

fn netfilter(args: &NetfilterArgs) -> Result<String, String> {
    use crate::gen::bench_rulesets::{
        calico, calico_ipset, linear, CalicoShape, Expected, Generated,
    };
    use crate::netfilter::interp::{walk, Fate};
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "seed {}: netfilter interpreter, linear chains {:?}, Calico-like with {} endpoints",
        args.seed, args.linear, args.calico_endpoints
    );
    let mut cases: Vec<(String, Box<dyn Fn() -> Generated>)> = Vec::new();
    for &n in &args.linear {
        let packets = args
            .packets
            .unwrap_or_else(|| (20_000_000 / n.max(1)).clamp(100, 50_000));
        let seed = args.seed;
        cases.push((
            format!("linear-{n}"),
            Box::new(move || linear(seed, n, packets)),
        ));
    }
    if args.calico_endpoints > 0 {
        let shape = CalicoShape {
            endpoints: args.calico_endpoints,
            ..CalicoShape::default()
        };
        let packets = args.packets.unwrap_or(50_000);
        let seed = args.seed;
        cases.push((
            format!("calico-{}ep", args.calico_endpoints),
            Box::new(move || calico(seed, shape, packets)),
        ));
        cases.push((
            format!("calico-ipset-{}ep", args.calico_endpoints),
            Box::new(move || calico_ipset(seed, shape, packets)),
        ));
    }
    let date = today();
    let commit = commit();
    let mut w = csv::Writer::from_writer(Vec::new());
    let new = !args.out.exists();
    if new {
        w.write_record([
            "date",
            "commit",
            "seed",
            "case",
            "rules",
            "packets",
            "seconds",
            "packets_per_sec",
            "rule_evals_per_sec",
            "parse_seconds",
        ])
        .map_err(|e| e.to_string())?;
    }
    for (name, make) in cases {
        let g = make();
        let t = Instant::now();
        let mut rs = crate::netfilter::read_ruleset(&g.text)
            .map_err(|e| format!("generated ruleset {name}: {}: {}", e.loc, e.message))?;
        if let Some(sets) = &g.ipsets {
            let sets = crate::netfilter::read_ipsets(sets)
                .map_err(|e| format!("generated ipsets {name}: {}: {}", e.loc, e.message))?;
            crate::netfilter::attach_ipsets(&mut rs, sets)
                .map_err(|e| format!("generated ruleset {name}: {}: {}", e.loc, e.message))?;
        }
        let parse_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut evals = 0usize;
        let (mut agree, mut inconclusive) = (0usize, 0usize);
        for (p, want) in &g.packets {
            let walked = walk(&rs, p);
            evals += walked.trace.len();
            match (&walked.fate, want) {
                (Fate::Accept, Expected::Accept) | (Fate::Drop, Expected::Drop) => agree += 1,
                (Fate::Inconclusive(_), _) => inconclusive += 1,
                _ => {}
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let n = g.packets.len();
        let _ = writeln!(
            summary,
            "{name}: {} rules, {} bytes parsed+converted in {parse_s:.3} s; {n} packets in {secs:.3} s = {:.0} packets/s, {:.2} M rule evaluations/s ({agree} as generated, {inconclusive} inconclusive)",
            g.rules,
            g.text.len() + g.ipsets.as_ref().map_or(0, String::len),
            n as f64 / secs,
            evals as f64 / secs / 1e6,
        );
        w.write_record([
            date.clone(),
            commit.clone(),
            args.seed.to_string(),
            name.clone(),
            g.rules.to_string(),
            n.to_string(),
            format!("{secs:.6}"),
            format!("{:.0}", n as f64 / secs),
            format!("{:.0}", evals as f64 / secs),
            format!("{parse_s:.6}"),
        ])
        .map_err(|e| e.to_string())?;
    }
    append(&args.out, w)?;
    let _ = writeln!(summary, "rows appended to {}", args.out.display());
    Ok(summary)
}
