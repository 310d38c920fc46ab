//! The `fwsim` command line. Only this file prints; the library returns values and errors.
//! Exit status: 0 all good, 1 an expectation failed or dataplanes diverged, 2 unusable input.

use clap::{Parser, Subcommand, ValueEnum};
use fwsim::run::{parse_shard, run, RunOptions};
use fwsim::scenario::Dataplane;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fwsim",
    version,
    about = "Evaluate Kubernetes NetworkPolicies and netfilter rules side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// What `fwsim parse --to` prints.
#[derive(Clone, Copy, ValueEnum)]
enum To {
    Iptables,
    Nft,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every scenario found under the paths (files, or folders searched recursively).
    Run {
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Evaluate these dataplanes instead of each scenario's own list (comma-separated).
        #[arg(long, value_delimiter = ',')]
        dataplanes: Option<Vec<String>>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Also write JUnit XML to FILE: one test case per scenario and dataplane.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Only scenarios with this tag (repeatable: any of them).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Only the K-th of N stable shards of the scenario list, e.g. 2/4.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// List passing scenarios too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Measure and write CSV into reports/: the reference engine on a generated cluster, or
    /// `bench netfilter` (the interpreter) or `bench dataplanes` (flows through the cluster path).
    Bench(fwsim::bench::BenchArgs),
    /// Validate a ruleset (format told apart by content) and print it back normalized; or,
    /// with --node, check every file of a node snapshot and summarize it.
    Parse {
        /// iptables-save / ip6tables-save output, nft text or nft JSON (`nft -j list ruleset`);
        /// may start with an `ipset save` dump.
        #[arg(required_unless_present = "node")]
        file: Option<PathBuf>,
        /// A node snapshot directory (`fwsim collect`).
        #[arg(long, value_name = "DIR", conflicts_with = "file")]
        node: Option<PathBuf>,
        /// The host's ipsets (`ipset save` output), for rules with `-m set`.
        #[arg(long, value_name = "FILE")]
        ipsets: Option<PathBuf>,
        /// Print it as: iptables (iptables-save text), nft (text) or json (nft JSON).
        /// Default: the input's own format, normalized. A translation keeps the meaning
        /// exactly or is refused, naming the rule (exit 2).
        #[arg(long, value_enum, value_name = "FORMAT")]
        to: Option<To>,
    },
    /// Check the simulator against the Linux kernel: generated rulesets are loaded into a
    /// network namespace, real packets sent through it, and the verdicts compared (root).
    KernelCheck {
        /// Seed of the generated rulesets and probes (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// (ruleset, packet) cases per backend.
        #[arg(long, default_value_t = 1000)]
        cases: usize,
        /// Packets sent through each generated ruleset.
        #[arg(long, default_value_t = 20)]
        probes_per_ruleset: usize,
        /// Backends: iptables-legacy, iptables-nft, nft (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "iptables-legacy,iptables-nft,nft"
        )]
        backends: Vec<String>,
        /// Folder where each disagreement is written as a single-host scenario.
        #[arg(long, default_value = "reports/kernel-check")]
        out: PathBuf,
        /// CSV file to append one row per backend to (agreement, cases/s).
        #[arg(long, default_value = "reports/kernel-check.csv")]
        csv: PathBuf,
        /// No connection mode (every third ruleset otherwise lets accepted probes through,
        /// and sends the replies of forwarded UDP connections).
        #[arg(long)]
        no_connections: bool,
    },
    /// Print the rulesets a dataplane renders for a cluster scenario's nodes: `ipset save`,
    /// `iptables-save` and nft text per node, beside the scenario's host firewalls.
    Render {
        /// A scenario file (with `cluster:`).
        scenario: PathBuf,
        /// calico-iptables, calico-nftables or flannel.
        #[arg(long)]
        dataplane: String,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// The scenario's name, when the file holds several.
        #[arg(long)]
        name: Option<String>,
        /// Write `<node>.ipsets`, `<node>.iptables` and `<node>.nft` into this folder
        /// instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Hunt for divergences: generated clusters, policies and flows (or rulesets and
    /// probes) on every core, each finding minimized and written as a scenario into
    /// reports/divergences/. Exit 1 when anything was found.
    Fuzz(FuzzCli),
    /// Walk one packet through a ruleset (or everything a node snapshot holds) and print
    /// every rule it touched.
    Trace {
        /// The ruleset file (may start with an `ipset save` dump), unless --node gives the
        /// rules; then the packet fields. With --node and a file, the file's rules are
        /// walked on the node's addresses, routes and ipsets (a dry run before applying).
        /// Packet fields: src=10.0.0.5 dst=10.0.0.1 protocol=tcp dport=22 iif=eth0 hook=input ...
        /// Several packets separated by `then` are a sequence: one conntrack table, so a
        /// reply is ESTABLISHED and gets its connection's NAT undone (their `ctstate` is
        /// computed, not given). Without `hook=`, the host's routes decide it (as the
        /// kernel's routing does) where --node, --addr or --route give them.
        #[arg(required = true, value_name = "[RULESET] FIELD=VALUE")]
        args: Vec<String>,
        /// A node snapshot directory (`fwsim collect`): its rules, ipsets, addresses,
        /// routes and devices.
        #[arg(long, value_name = "DIR")]
        node: Option<PathBuf>,
        /// The host's ipsets (`ipset save` output), for rules with `-m set`.
        #[arg(long, value_name = "FILE")]
        ipsets: Option<PathBuf>,
        /// A host address, with its prefix and device (repeatable): 192.168.0.1/24@eth0.
        #[arg(long = "addr", value_name = "CIDR[@DEV]")]
        addrs: Vec<String>,
        /// A route (repeatable): 10.244.0.0/16@tunl0, default@eth0.
        #[arg(long = "route", value_name = "CIDR@DEV")]
        routes: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Write a node snapshot: the output of iptables-legacy-save, iptables-nft-save (and
    /// ip6), ipset save, nft -j list ruleset, ip -j addr/route/link/rule and the sysctls
    /// that decide the path, one file per command (docs/snapshots.md). Exit 2 when some
    /// command could not run (each is named); what could be collected is written.
    Collect {
        /// Collect inside this network namespace (`ip netns exec`).
        #[arg(long, value_name = "NAME")]
        netns: Option<String>,
        /// The snapshot directory (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The node's name in node.yaml (default: the namespace's name, else the host name).
        #[arg(long)]
        name: Option<String>,
    },
}

/// A ruleset file's text; errors (unreadable, not UTF-8, located) are printed, exit 2.
fn read_or_exit(path: &PathBuf) -> Result<String, ExitCode> {
    let bytes = std::fs::read(path)
        .map_err(|e| usage_error(&format!("{}: cannot read: {e}", path.display())))?;
    match fwsim::values::Loc::utf8_text(&bytes) {
        Ok(text) => Ok(text.to_string()),
        Err((loc, message)) => {
            eprintln!(
                "{}:{loc}: error: {message} (iptables-save or nft ruleset)",
                path.display()
            );
            Err(ExitCode::from(2))
        }
    }
}

/// The ruleset file at `path` (its nft includes read beside it), with `sets` attached, or
/// else `fallback` (a snapshot's ipsets) when its rules use sets and it brings none; errors
/// printed, located in the file (exit 2).
fn read_ruleset_or_exit(
    path: &std::path::Path,
    text: &str,
    sets: Option<fwsim::netfilter::ipset::Ipsets>,
    fallback: Option<fwsim::netfilter::ipset::Ipsets>,
) -> Result<fwsim::netfilter::ir::Ruleset, ExitCode> {
    fwsim::netfilter::read_ruleset_file(text, path)
        .and_then(|mut rs| {
            let fallback = fallback.filter(|_| rs.ipsets.is_none() && rs.uses_ipsets());
            if let Some(sets) = sets.or(fallback) {
                fwsim::netfilter::attach_ipsets(&mut rs, sets)?;
            }
            Ok(rs)
        })
        .map_err(|e| {
            eprintln!("{}:{}: error: {}", path.display(), e.loc, e.message);
            ExitCode::from(2)
        })
}

/// The `--ipsets` file, read (errors located in it are printed, exit 2).
fn read_ipsets_or_exit(
    path: Option<&PathBuf>,
) -> Result<Option<fwsim::netfilter::ipset::Ipsets>, ExitCode> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = read_or_exit(path)?;
    match fwsim::netfilter::read_ipsets(&text) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            eprintln!(
                "{}:{}: error: {} (ipset save)",
                path.display(),
                e.loc,
                e.message
            );
            Err(ExitCode::from(2))
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("fwsim: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`fwsim ... | head`), as command-line tools do, instead
    // of panicking on the failed print.
    // SAFETY: setting a signal disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            dataplanes,
            format,
            junit,
            tags,
            shard,
            verbose,
        } => {
            let dataplanes = match dataplanes {
                None => None,
                Some(list) => match list.iter().map(|d| d.trim().parse::<Dataplane>()).collect() {
                    Ok(v) => Some(v),
                    Err(m) => return usage_error(&format!("--dataplanes: {m}")),
                },
            };
            let shard = match shard.as_deref().map(parse_shard).transpose() {
                Ok(s) => s,
                Err(m) => return usage_error(&format!("--shard: {m}")),
            };
            let report = run(
                &paths,
                &RunOptions {
                    dataplanes,
                    tags,
                    shard,
                },
            );
            match format {
                Format::Human => print!("{}", fwsim::report::human::human(&report, verbose)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&fwsim::report::json::json(&report))
                        .expect("JSON values serialize")
                ),
            }
            if let Some(path) = junit {
                if let Err(e) = std::fs::write(&path, fwsim::report::junit::junit(&report)) {
                    return usage_error(&format!("cannot write {}: {e}", path.display()));
                }
            }
            ExitCode::from(report.exit_code() as u8)
        }
        Command::Parse {
            file,
            node,
            ipsets,
            to,
        } => {
            let Some(file) = file else {
                return parse_node_cmd(node.as_deref().expect("clap: file or --node"));
            };
            let text = match read_or_exit(&file) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let sets = match read_ipsets_or_exit(ipsets.as_ref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            use fwsim::netfilter::Format as In;
            let rs = match read_ruleset_or_exit(&file, &text, sets, None) {
                Ok(rs) => rs,
                Err(code) => return code,
            };
            // A combined file: the ipset dump first, normalized, then the ruleset.
            let (text, combined) = match fwsim::netfilter::split_ipsets(&text) {
                Some((sets, rules)) => (rules, Some(sets)),
                None => (text, None),
            };
            let input = fwsim::netfilter::detect(&text);
            let refused = |loc: fwsim::values::Loc, message: &str| {
                eprintln!("{}:{loc}: error: {message}", file.display());
                ExitCode::from(2)
            };
            // The nft syntax tree of nft text or JSON input (read above, so it parses).
            let tree = || match input {
                Some(In::NftText) => fwsim::netfilter::parse_nft(&text, Some(&file)).ok(),
                Some(In::NftJson) => fwsim::syntax::nft_json::parse(&text).ok(),
                _ => None,
            };
            let out = match (to, input) {
                (None | Some(To::Iptables), Some(In::IptablesSave)) => {
                    match fwsim::syntax::iptables::parse(&text) {
                        Ok(save) => save.to_string(),
                        Err(e) => return refused(e.loc, &e.message),
                    }
                }
                (Some(To::Iptables), _) => match fwsim::netfilter::to_iptables::to_iptables(&rs) {
                    Ok(t) => t,
                    Err(e) => return refused(e.loc, &e.message),
                },
                (None, Some(In::NftText)) | (Some(To::Nft), Some(In::NftText)) => {
                    tree().map(|t| t.to_string()).unwrap_or_default()
                }
                (None, _) | (Some(To::Json), Some(In::NftJson)) => {
                    match tree().map(|t| fwsim::syntax::nft_json::print(&t)) {
                        Some(Ok(j)) => j,
                        Some(Err(e)) => {
                            return refused(e.loc, &format!("cannot write as JSON: {}", e.message))
                        }
                        None => String::new(),
                    }
                }
                (Some(To::Nft), Some(In::NftJson)) => {
                    let t = tree().unwrap_or_default();
                    // Statements fwsim could not read are kept as JSON: no nft text for them.
                    for (loc, what) in rs.unsupported() {
                        if what.starts_with(fwsim::syntax::nft_json::UNKNOWN) {
                            return refused(loc, &format!("cannot translate to nft text: {what} is not an nft JSON statement fwsim knows"));
                        }
                    }
                    t.to_string()
                }
                (Some(To::Nft), _) | (Some(To::Json), Some(In::IptablesSave)) => {
                    if rs.ipsets.is_some() {
                        return usage_error(
                            "--to nft/json: rules with ipsets are not translated yet (nft sets would replace them)",
                        );
                    }
                    let nft = match fwsim::netfilter::to_nft::to_nft(&rs) {
                        Ok(n) => n,
                        Err(e) => return refused(e.loc, &e.message),
                    };
                    if matches!(to, Some(To::Nft)) {
                        nft
                    } else {
                        let t = match fwsim::syntax::nft::parse(&nft) {
                            Ok(t) => t,
                            Err(e) => {
                                return refused(
                                    e.loc,
                                    &format!(
                                        "internal: the nft translation does not parse: {}",
                                        e.message
                                    ),
                                )
                            }
                        };
                        match fwsim::syntax::nft_json::print(&t) {
                            Ok(j) => j,
                            Err(e) => {
                                return refused(
                                    e.loc,
                                    &format!("cannot write as JSON: {}", e.message),
                                )
                            }
                        }
                    }
                }
                (Some(To::Json), _) => match tree().map(|t| fwsim::syntax::nft_json::print(&t)) {
                    Some(Ok(j)) => j,
                    Some(Err(e)) => {
                        return refused(e.loc, &format!("cannot write as JSON: {}", e.message))
                    }
                    None => String::new(),
                },
            };
            if let (Some(sets), None | Some(To::Iptables)) = (combined, to) {
                if let Ok(save) = fwsim::syntax::ipset::parse(&sets) {
                    print!("{save}");
                }
            }
            print!("{out}");
            for (loc, what) in rs.unsupported() {
                eprintln!("{}:{loc}: warning: not modelled: {what} (a packet reaching it is inconclusive)", file.display());
            }
            for tie in rs.priority_ties() {
                eprintln!("{}: warning: {tie}", file.display());
            }
            ExitCode::SUCCESS
        }
        Command::Render {
            scenario,
            dataplane,
            node,
            name,
            out,
        } => render_cmd(
            &scenario,
            &dataplane,
            node.as_deref(),
            name.as_deref(),
            out.as_ref(),
        ),
        Command::Fuzz(args) => fuzz_cmd(args),
        Command::Trace {
            args,
            node,
            ipsets,
            addrs,
            routes,
            format,
        } => trace_cmd(
            args,
            node.as_deref(),
            ipsets.as_ref(),
            &addrs,
            &routes,
            format,
        ),
        Command::Collect { netns, out, name } => {
            match fwsim::snapshot::collect::collect(netns.as_deref(), &out, name.as_deref()) {
                Err(e) => usage_error(&e),
                Ok(report) => {
                    println!(
                        "wrote {} of {} files into {}",
                        report.written.len(),
                        report.written.len() + report.failed.len(),
                        report.dir.display()
                    );
                    for (file, why) in &report.failed {
                        eprintln!("fwsim collect: {file} not collected: {why}");
                    }
                    if report.failed.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                }
            }
        }
        Command::KernelCheck {
            seed,
            cases,
            probes_per_ruleset,
            backends,
            out,
            csv,
            no_connections,
        } => {
            let backends = match backends
                .iter()
                .map(|b| b.trim().parse::<fwsim::kernel::Backend>())
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(b) => b,
                Err(m) => return usage_error(&format!("--backends: {m}")),
            };
            let seed = seed.unwrap_or_else(clock_seed);
            eprintln!("kernel-check: seed {seed} (replay with --seed {seed})");
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let opts = fwsim::kernel::check::CheckOptions {
                seed,
                cases,
                probes_per_ruleset,
                backends,
                out_dir: Some(out),
                connections: !no_connections,
                plant: None,
            };
            let result = fwsim::kernel::check::run(&opts, |b, done, total| {
                if tty {
                    eprint!("\r  {:<16} {done}/{total} rulesets", b.as_str());
                    if done == total {
                        eprintln!();
                    }
                }
            });
            match result {
                Ok(report) => {
                    print!("{report}");
                    if let Err(e) = fwsim::kernel::check::append_csv(&report, &csv) {
                        return usage_error(&format!("cannot write {}: {e}", csv.display()));
                    }
                    println!("rows appended to {}", csv.display());
                    if report.clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => usage_error(&e.to_string()),
            }
        }
        Command::Bench(args) => match fwsim::bench::run(&args) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(m) => usage_error(&m),
        },
    }
}

/// `fwsim render`.
fn render_cmd(
    path: &PathBuf,
    dataplane: &str,
    node: Option<&str>,
    name: Option<&str>,
    out: Option<&PathBuf>,
) -> ExitCode {
    use fwsim::render::Flavor;
    let flavor = match dataplane {
        "calico-iptables" => Flavor::CalicoIptables,
        "calico-nftables" => Flavor::CalicoNftables,
        "flannel" => Flavor::Flannel,
        other => {
            return usage_error(&format!(
                "--dataplane: `{other}` renders nothing: expected calico-iptables, calico-nftables or flannel"
            ))
        }
    };
    let found = fwsim::scenario::discover(std::slice::from_ref(path));
    for d in &found.errors {
        eprintln!("{d}");
    }
    if !found.errors.is_empty() {
        return ExitCode::from(2);
    }
    let mut chosen = None;
    for doc in &found.docs {
        match fwsim::scenario::load(doc) {
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                return ExitCode::from(2);
            }
            Ok(s) => {
                let wanted = name.is_none_or(|n| n == s.name);
                if wanted && matches!(s.body, fwsim::scenario::Body::Cluster { .. }) {
                    chosen = Some(s);
                    break;
                }
            }
        }
    }
    let Some(s) = chosen else {
        return usage_error(&format!(
            "{}: no cluster scenario{} found",
            path.display(),
            name.map(|n| format!(" named `{n}`")).unwrap_or_default()
        ));
    };
    let fwsim::scenario::Body::Cluster { cluster, hosts, .. } = &s.body else {
        unreachable!("chosen for its cluster")
    };
    if let Some(n) = node {
        if cluster.node(n).is_none() {
            return usage_error(&format!("--node: the scenario has no node `{n}`"));
        }
    }
    let rendered = match fwsim::render::render(cluster, flavor, hosts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot render {dataplane}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage_error(&format!("cannot create {}: {e}", dir.display()));
        }
    }
    for n in &rendered.nodes {
        if node.is_some_and(|want| want != n.name) {
            continue;
        }
        for (ext, what, text) in [
            ("ipsets", "ipset save", &n.ipsets),
            ("iptables", "iptables-save", &n.iptables),
            ("nft", "nft list ruleset", &n.nft),
        ] {
            let Some(text) = text else { continue };
            match out {
                Some(dir) => {
                    let file = dir.join(format!("{}.{ext}", n.name));
                    if let Err(e) = std::fs::write(&file, text) {
                        return usage_error(&format!("cannot write {}: {e}", file.display()));
                    }
                    println!("{}", file.display());
                }
                None => {
                    println!("### node {}: {what}", n.name);
                    print!("{text}");
                    if !text.ends_with('\n') {
                        println!();
                    }
                }
            }
        }
    }
    ExitCode::SUCCESS
}

#[derive(clap::Args)]
struct FuzzCli {
    /// Targets (comma-separated): calico-iptables, calico-nftables, iptables-vs-nft,
    /// reference-fast. Default: all.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Seed of the run (default: from the clock, printed); case i uses a seed derived
    /// from it and i.
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Where minimized findings are written.
    #[arg(long, default_value = "reports/divergences")]
    out: PathBuf,
    /// Findings minimized and written per target (the rest are counted).
    #[arg(long, default_value_t = 10)]
    max_written: usize,
    /// Stop each target at its first finding (time to find).
    #[arg(long)]
    stop_at_first: bool,
    /// Switch on a known-wrong semantics, to measure the fuzzers (see `fwsim fuzz
    /// --planted list`).
    #[arg(long, value_name = "BUG")]
    planted: Option<String>,
    /// Run one case of one target from its case seed and print what it found.
    #[arg(long, value_name = "CASE_SEED")]
    replay: Option<u64>,
    /// CSV file to append one row per target to.
    #[arg(long, default_value = "reports/fuzz.csv")]
    csv: PathBuf,
}

/// `fwsim fuzz`.
fn fuzz_cmd(a: FuzzCli) -> ExitCode {
    use fwsim::divergence::{campaign, Target};
    if a.planted.as_deref() == Some("list") {
        for b in fwsim::planted::Bug::ALL {
            println!("{}", b.name());
        }
        return ExitCode::SUCCESS;
    }
    let planted = match a
        .planted
        .as_deref()
        .map(fwsim::planted::Bug::parse)
        .transpose()
    {
        Ok(p) => p,
        Err(m) => return usage_error(&format!("--planted: {m}")),
    };
    let targets: Vec<Target> = if a.target.is_empty() {
        Target::ALL.to_vec()
    } else {
        match a.target.iter().map(|t| Target::parse(t.trim())).collect() {
            Ok(t) => t,
            Err(m) => return usage_error(&format!("--target: {m}")),
        }
    };
    if a.seconds.is_nan() || a.seconds <= 0.0 {
        return usage_error("--seconds: expected a positive number");
    }
    fwsim::planted::set(planted);
    if let Some(cs) = a.replay {
        if targets.len() != 1 {
            return usage_error("--replay: name exactly one --target");
        }
        print!("{}", campaign::replay(targets[0], cs));
        return ExitCode::SUCCESS;
    }
    let seed = a.seed.unwrap_or_else(clock_seed);
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!(
        "fuzz: seed {seed} (replay with --seed {seed}), {jobs} jobs, {} s per target{}",
        a.seconds,
        planted
            .map(|b| format!(", planted bug {}", b.name()))
            .unwrap_or_default()
    );
    let opts = campaign::Options {
        targets,
        seconds: a.seconds,
        seed,
        jobs,
        out_dir: Some(a.out.clone()),
        max_written: a.max_written,
        stop_at_first: a.stop_at_first,
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if tty {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let started = std::sync::Mutex::new((None::<Target>, std::time::Instant::now()));
    let progress = |t: Target, cases: u64, found: u64| {
        let mut s = started.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 != Some(t) {
            *s = (Some(t), std::time::Instant::now());
        }
        let rate = cases as f64 / s.1.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{t}: {cases} cases ({rate:.0}/s), {found} diverging"
        ));
        bar.tick();
    };
    let reports = campaign::run(&opts, &progress);
    bar.finish_and_clear();
    fwsim::planted::set(None);
    let mut any = false;
    for r in &reports {
        let t = r.target.expect("target");
        println!(
            "{t}: {} cases in {:.1} s ({:.0} cases/s), {} compared, {} diverging cases, {} inconclusive, {} known differences, {} refused by the loader",
            r.cases,
            r.seconds,
            r.cases_per_second(),
            r.compared,
            r.failing_cases,
            r.inconclusive,
            r.known,
            r.refused
        );
        for w in &r.written {
            any = true;
            println!(
                "  case seed {} (after {} cases, {:.2} s): {}{}",
                w.case_seed,
                w.after_cases,
                w.after_seconds,
                w.summary,
                w.path
                    .as_ref()
                    .map(|p| format!(
                        "\n    written: {} ({} pods, {} policies)",
                        p.display(),
                        w.pods,
                        w.policies
                    ))
                    .unwrap_or_default()
            );
        }
        any |= r.failing_cases > 0;
    }
    if let Err(e) = append_fuzz_csv(&a.csv, seed, planted, &reports) {
        return usage_error(&format!("cannot write {}: {e}", a.csv.display()));
    }
    println!("rows appended to {}", a.csv.display());
    if any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn append_fuzz_csv(
    path: &PathBuf,
    seed: u64,
    planted: Option<fwsim::planted::Bug>,
    reports: &[fwsim::divergence::campaign::TargetReport],
) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(f, "date,commit,target,seed,planted,seconds,cases,cases_per_sec,compared,diverging_cases,inconclusive,known,refused,first_found_after_cases,first_found_after_seconds")?;
    }
    for r in reports {
        let first = r.written.first();
        writeln!(
            f,
            "{},{},{},{seed},{},{:.1},{},{:.1},{},{},{},{},{},{},{}",
            fwsim::bench::today(),
            fwsim::bench::commit(),
            r.target.map(|t| t.name()).unwrap_or(""),
            planted.map(|b| b.name()).unwrap_or(""),
            r.seconds,
            r.cases,
            r.cases_per_second(),
            r.compared,
            r.failing_cases,
            r.inconclusive,
            r.known,
            r.refused,
            first.map(|w| w.after_cases.to_string()).unwrap_or_default(),
            first
                .map(|w| format!("{:.2}", w.after_seconds))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// A seed from the clock, for runs not given one (printed, so they replay).
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// A node snapshot, read; its error printed (exit 2).
fn read_snapshot_or_exit(dir: &std::path::Path) -> Result<fwsim::snapshot::Snapshot, ExitCode> {
    fwsim::snapshot::read(dir).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(2)
    })
}

/// `fwsim parse --node DIR`: every file of the snapshot checked, then a summary.
fn parse_node_cmd(dir: &std::path::Path) -> ExitCode {
    let s = match read_snapshot_or_exit(dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let info = &s.info;
    println!(
        "node {} (collected {}, kernel {})",
        s.name(),
        info.collected_at.as_deref().unwrap_or("at an unknown time"),
        info.kernel.as_deref().unwrap_or("unknown")
    );
    let mut files: Vec<&str> = s.table_files.clone();
    files.dedup();
    for f in files {
        let tables: Vec<&fwsim::netfilter::ir::Table> = s
            .ruleset
            .tables
            .iter()
            .zip(&s.table_files)
            .filter(|(_, tf)| **tf == f)
            .map(|(t, _)| t)
            .collect();
        let chains: usize = tables.iter().map(|t| t.chains.len()).sum();
        let rules: usize = tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum();
        println!(
            "  {f}: {} table{} ({}), {chains} chains, {rules} rules",
            tables.len(),
            if tables.len() == 1 { "" } else { "s" },
            tables
                .iter()
                .map(|t| format!("{} {}", t.family.as_str(), t.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for t in tables {
            let one = fwsim::netfilter::ir::Ruleset {
                tables: vec![t.clone()],
                ipsets: None,
            };
            for (loc, what) in one.unsupported() {
                eprintln!(
                    "{}:{loc}: warning: not modelled: {what} (a packet reaching it is inconclusive)",
                    s.dir.join(f).display()
                );
            }
        }
    }
    if let Some(sets) = &s.ruleset.ipsets {
        println!("  ipset-save.txt: {} sets", sets.sets.len());
    }
    let devs: std::collections::BTreeSet<&str> = s.addrs.iter().map(|a| a.dev.as_str()).collect();
    println!(
        "  addresses: {} on {} devices; devices: {}; routes: {}",
        s.addrs.len(),
        devs.len(),
        s.links.len(),
        s.routing.routes.len()
    );
    for tie in s.ruleset.priority_ties() {
        eprintln!("{}: warning: {tie}", s.dir.display());
    }
    for n in &s.notes {
        println!("note: {n}");
    }
    ExitCode::SUCCESS
}

/// `fwsim trace`: a ruleset file or a node snapshot, the packet placed by the node's routes.
fn trace_cmd(
    args: Vec<String>,
    node: Option<&std::path::Path>,
    ipsets: Option<&PathBuf>,
    addrs: &[String],
    routes: &[String],
    format: Format,
) -> ExitCode {
    use fwsim::netfilter::interp::{walk_on, walk_seq, Conntrack};
    use fwsim::snapshot::place::{place, Given, Placed};
    let (file, fields) = match args.first() {
        Some(a) if !a.contains('=') && a != "then" => (Some(PathBuf::from(a)), &args[1..]),
        _ => (None, &args[..]),
    };
    if file.is_none() && node.is_none() {
        return usage_error(
            "trace: expected a ruleset file before the packet fields, or --node DIR (a snapshot)",
        );
    }
    if node.is_some() && (!addrs.is_empty() || !routes.is_empty()) {
        return usage_error(
            "trace: --addr and --route describe a bare ruleset's host; with --node the snapshot's addresses and routes are used",
        );
    }
    let snap = match (node, addrs.is_empty() && routes.is_empty()) {
        (Some(d), _) => match read_snapshot_or_exit(d) {
            Ok(s) => Some(s),
            Err(code) => return code,
        },
        (None, false) => match fwsim::snapshot::place::from_flags(addrs, routes) {
            Ok(s) => Some(s),
            Err(e) => return usage_error(&e),
        },
        (None, true) => None,
    };
    let sets = match read_ipsets_or_exit(ipsets) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rs = match &file {
        Some(path) => {
            let text = match read_or_exit(path) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let node_sets = snap.as_ref().and_then(|s| s.ruleset.ipsets.clone());
            match read_ruleset_or_exit(path, &text, sets, node_sets) {
                Ok(rs) => rs,
                Err(code) => return code,
            }
        }
        None => {
            let mut rs = snap.as_ref().expect("--node").ruleset.clone();
            if let Some(sets) = sets {
                if let Err(e) = fwsim::netfilter::attach_ipsets(&mut rs, sets) {
                    return usage_error(&format!("--ipsets: {}", e.message));
                }
            }
            rs
        }
    };
    if let Some(s) = snap.as_ref().filter(|_| node.is_some()) {
        for n in &s.notes {
            eprintln!("note: {n}");
        }
    }
    let mut packets = Vec::new();
    for a in fields.split(|a| a == "then") {
        match fwsim::scenario::packet_from_args(a) {
            Ok(p) => packets.push((p, Given::of_args(a))),
            Err(errors) => {
                for e in errors {
                    eprintln!("{}", e.message);
                }
                return ExitCode::from(2);
            }
        }
    }
    let seq = packets.len() > 1;
    let host = snap.as_ref().map(|s| &s.host);
    let mut ct = Conntrack::default();
    let mut json = Vec::new();
    for (i, (p, given)) in packets.into_iter().enumerate() {
        let placed = match &snap {
            Some(s) => place(s, p, given),
            None => Placed::Walk(p, Vec::new()),
        };
        let (p, notes, result) = match placed {
            Placed::Walk(p, notes) => {
                let w = if seq {
                    walk_seq(&rs, &p, host, &mut ct)
                } else {
                    walk_on(&rs, &p, host)
                };
                (p, notes, Ok(w))
            }
            Placed::Dropped(p, notes, why) => (p, notes, Err(("drop", format!("routing: {why}")))),
            Placed::Undecided(p, notes, why) => {
                (p, notes, Err(("inconclusive", format!("routing: {why}"))))
            }
        };
        match format {
            Format::Human => {
                if i > 0 {
                    println!();
                }
                println!("{p}");
                for n in &notes {
                    println!("route: {n}");
                }
                match &result {
                    Ok(w) => println!("{w}"),
                    Err((verdict, why)) => println!("verdict: {verdict} ({why})"),
                }
            }
            Format::Json => {
                let mut v = match &result {
                    Ok(w) => fwsim::report::trace::trace_json(w),
                    Err((verdict, why)) => serde_json::json!({
                        "verdict": verdict, "reason": why, "trace": [],
                    }),
                };
                v["route"] = serde_json::json!(notes);
                json.push(v);
            }
        }
    }
    if let Format::Json = format {
        let value = match json.len() {
            1 => json.into_iter().next().expect("one walk"),
            _ => serde_json::Value::Array(json),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        );
    }
    ExitCode::SUCCESS
}
