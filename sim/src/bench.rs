//! `fwsim bench`: the reference engine's speed on a generated cluster, as CSV rows in
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
pub struct BenchArgs {
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

/// One measured row.
struct Row {
    benchmark: &'static str,
    threads: usize,
    verdicts: u64,
    seconds: f64,
}

pub fn run(args: &BenchArgs) -> Result<String, String> {
    if args.namespaces == 0 || args.pods == 0 {
        return Err("--namespaces and --pods must be at least 1".into());
    }
    let mut summary = String::new();
    let shape = ClusterShape {
        nodes: args.nodes,
        namespaces: args.namespaces,
        pods: args.pods,
        policies: args.policies,
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

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let new = !args.out.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .map_err(|e| format!("cannot open {}: {e}", args.out.display()))?;
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
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    f.write_all(&bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let _ = writeln!(summary, "rows appended to {}", args.out.display());
    Ok(summary)
}
