//! Evaluating a checked scenario on its dataplanes: one result per expectation (a matrix:
//! one per checked cell) and dataplane, and the divergences between dataplanes.

use super::dataplane::Dataplane;
use super::model::{Body, ExpectKind, Scenario};
use crate::cluster::{Cluster, Endpoint, Flow};
use crate::diag::Diagnostic;
use crate::netfilter::interp::Fate;
use crate::reference::{Reference, Verdict};
use crate::syntax::matrix::Cell;
use crate::values::{Protocol, Site};
use std::collections::BTreeMap;

/// One expectation (or matrix cell) on one dataplane.
#[derive(Clone, Debug)]
pub struct ResultRow {
    pub scenario: String,
    pub dataplane: Dataplane,
    /// The flow or packet, as text.
    pub expectation: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
    pub skipped: bool,
    pub explanation: String,
    pub site: Site,
    /// A matrix cell (its matrix is in [`ScenarioResult::matrices`]).
    pub in_matrix: bool,
}

/// A matrix on one dataplane, for printing as the upstream e2e tests do.
#[derive(Clone, Debug)]
pub struct MatrixReport {
    pub dataplane: Dataplane,
    pub site: Site,
    pub port: Option<u16>,
    pub protocol: Protocol,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub expected: Vec<Vec<Cell>>,
    /// None where not checked (or skipped).
    pub observed: Vec<Vec<Option<Verdict>>>,
    /// The wrong cells: (row, col, explanation).
    pub wrong: Vec<(usize, usize, String)>,
}

/// Two dataplanes that expected the same verdict for a flow and gave different ones.
#[derive(Clone, Debug)]
pub struct Divergence {
    pub flow: String,
    pub site: Site,
    /// Each dataplane's verdict and explanation.
    pub verdicts: Vec<(Dataplane, String, String)>,
}

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub site: Site,
    pub dataplanes: Vec<Dataplane>,
    pub results: Vec<ResultRow>,
    pub matrices: Vec<MatrixReport>,
    pub divergences: Vec<Divergence>,
    pub warnings: Vec<Diagnostic>,
}

impl ScenarioResult {
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.passed && !r.skipped)
            .count()
    }
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }
    pub fn skipped(&self) -> usize {
        self.results.iter().filter(|r| r.skipped).count()
    }
    pub fn ok(&self) -> bool {
        self.failed() == 0 && self.divergences.is_empty()
    }
}

/// (expectation, cell) → the flow's text and site, and per dataplane (expected, actual,
/// explanation): what divergences are computed from.
type Seen = BTreeMap<(usize, usize), (String, Site, Vec<(Dataplane, Verdict, Verdict, String)>)>;

/// A dataplane able to evaluate cluster flows. Err: why this flow cannot be decided
/// (reported as skipped, never passed).
trait FlowEngine {
    fn evaluate(&self, flow: &Flow) -> Result<(Verdict, String), String>;
}

impl FlowEngine for Reference<'_> {
    fn evaluate(&self, flow: &Flow) -> Result<(Verdict, String), String> {
        let (outcome, why) = self.explain(flow);
        Ok((outcome.verdict(), why.to_string()))
    }
}

impl FlowEngine for crate::path::ClusterPath<'_> {
    fn evaluate(&self, flow: &Flow) -> Result<(Verdict, String), String> {
        let r = self.flow(flow);
        match r.verdict {
            Ok(v) => Ok((v, r.explanation)),
            Err(why) => Err(format!("inconclusive: {why}\n{}", r.explanation)),
        }
    }
}

impl FlowEngine for crate::kernel::cluster::ClusterKernel<'_> {
    fn evaluate(&self, flow: &Flow) -> Result<(Verdict, String), String> {
        self.flow(flow)
    }
}

fn engine<'c>(
    dp: Dataplane,
    cluster: &'c Cluster,
    hosts: &[crate::render::HostFirewall],
    snapshots: &'c [Option<crate::snapshot::Snapshot>],
) -> Result<Box<dyn FlowEngine + 'c>, String> {
    let flavor = match dp {
        Dataplane::CalicoIptables => Some(crate::render::Flavor::CalicoIptables),
        Dataplane::CalicoNftables => Some(crate::render::Flavor::CalicoNftables),
        Dataplane::Flannel => Some(crate::render::Flavor::Flannel),
        _ => None,
    };
    if let Some(flavor) = flavor {
        let rendered = crate::render::render(cluster, flavor, hosts)
            .map_err(|e| format!("cannot render {dp}: {e}"))?;
        let path = crate::path::ClusterPath::new(cluster, &rendered)
            .map_err(|e| format!("the rendered {dp} rules do not read back: {e}"))?;
        return Ok(Box::new(path));
    }
    match dp {
        Dataplane::Reference => Ok(Box::new(Reference::new(cluster))),
        Dataplane::Kernel => {
            // The kernel is compared with calico-iptables: the same rendered texts, loaded
            // into namespaces wired like Calico nodes.
            let rendered =
                crate::render::render(cluster, crate::render::Flavor::CalicoIptables, hosts)
                    .map_err(|e| format!("cannot render calico-iptables for the kernel: {e}"))?;
            let lab = crate::kernel::cluster::ClusterKernel::new(cluster, &rendered)
                .map_err(|e| e.to_string())?;
            Ok(Box::new(lab))
        }
        Dataplane::Captured => {
            if snapshots.is_empty() {
                return Err(
                    "no node snapshots: the captured dataplane needs `nodes:` (each node's snapshot, written by `fwsim collect`)"
                        .into(),
                );
            }
            let mut snaps = Vec::new();
            for (i, s) in snapshots.iter().enumerate() {
                match s {
                    Some(s) => snaps.push(s),
                    None => {
                        return Err(format!(
                            "node {} has no snapshot in `nodes:`: the captured dataplane needs every node's",
                            cluster.nodes[i].name
                        ))
                    }
                }
            }
            Ok(Box::new(crate::captured::path(cluster, &snaps)?))
        }
        Dataplane::Netfilter => Err(
            "the netfilter dataplane evaluates single-host scenarios (`ruleset:`), not clusters"
                .into(),
        ),
        other => Err(other.unavailable().unwrap_or("not available").to_string()),
    }
}

fn cell_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => ".",
        Verdict::Deny => "X",
        Verdict::Partial => "~",
    }
}

/// Evaluate `scenario` on `dataplanes` (default: the scenario's own list).
pub fn evaluate(scenario: &Scenario, dataplanes: Option<&[Dataplane]>) -> ScenarioResult {
    let dataplanes: Vec<Dataplane> = dataplanes
        .map(<[Dataplane]>::to_vec)
        .unwrap_or_else(|| scenario.dataplanes.clone());
    let mut out = ScenarioResult {
        name: scenario.name.clone(),
        site: scenario.site.clone(),
        dataplanes: dataplanes.clone(),
        results: Vec::new(),
        matrices: Vec::new(),
        divergences: Vec::new(),
        warnings: scenario.warnings.clone(),
    };
    match &scenario.body {
        Body::Cluster {
            cluster,
            expects,
            hosts,
            snapshots,
        } => {
            // (expectation, cell) -> per dataplane (expected, actual, explanation)
            let mut seen: Seen = BTreeMap::new();
            for &dp in &dataplanes {
                let eng = engine(dp, cluster, hosts, snapshots);
                for (ei, e) in expects.iter().enumerate() {
                    let expected_for = |base: Verdict| {
                        e.except
                            .iter()
                            .find(|(d, _)| *d == dp)
                            .map(|(_, v)| *v)
                            .unwrap_or(base)
                    };
                    match &e.kind {
                        ExpectKind::Flow { flow, verdict } => {
                            let text = flow.display(cluster);
                            let expected = expected_for(*verdict);
                            let row = match &eng {
                                Err(why) => {
                                    skipped_row(scenario, dp, &text, expected, why, &e.site)
                                }
                                Ok(eng) => match eng.evaluate(flow) {
                                    Err(why) => {
                                        skipped_row(scenario, dp, &text, expected, &why, &e.site)
                                    }
                                    Ok((actual, why)) => {
                                        seen.entry((ei, 0))
                                            .or_insert_with(|| {
                                                (text.clone(), e.site.clone(), Vec::new())
                                            })
                                            .2
                                            .push((dp, expected, actual, why.clone()));
                                        result_row(
                                            scenario, dp, &text, expected, actual, why, &e.site,
                                        )
                                    }
                                },
                            };
                            out.results.push(row);
                        }
                        ExpectKind::Matrix {
                            port,
                            protocol,
                            rows,
                            cols,
                            cells,
                        } => {
                            let names = |v: &[Endpoint]| -> Vec<String> {
                                v.iter().map(|e| e.display(cluster)).collect()
                            };
                            let mut report = MatrixReport {
                                dataplane: dp,
                                site: e.site.clone(),
                                port: *port,
                                protocol: *protocol,
                                rows: names(rows),
                                cols: names(cols),
                                expected: vec![vec![Cell::Unchecked; cols.len()]; rows.len()],
                                observed: vec![vec![None; cols.len()]; rows.len()],
                                wrong: Vec::new(),
                            };
                            for (ci, cell) in cells.iter().enumerate() {
                                report.expected[cell.row][cell.col] = cell.expected;
                                let base = match cell.expected {
                                    Cell::Allow => Verdict::Allow,
                                    Cell::Deny => Verdict::Deny,
                                    Cell::Unchecked => continue,
                                };
                                let expected = expected_for(base);
                                if expected != base {
                                    report.expected[cell.row][cell.col] = match expected {
                                        Verdict::Allow => Cell::Allow,
                                        _ => Cell::Deny,
                                    };
                                }
                                let flow = Flow {
                                    from: rows[cell.row].clone(),
                                    to: cols[cell.col].clone(),
                                    port: *port,
                                    protocol: *protocol,
                                };
                                let text = flow.display(cluster);
                                let row = match &eng {
                                    Err(why) => {
                                        skipped_row(scenario, dp, &text, expected, why, &cell.site)
                                    }
                                    Ok(eng) => match eng.evaluate(&flow) {
                                        Err(why) => skipped_row(
                                            scenario, dp, &text, expected, &why, &cell.site,
                                        ),
                                        Ok((actual, why)) => {
                                            report.observed[cell.row][cell.col] = Some(actual);
                                            if actual != expected {
                                                report.wrong.push((
                                                    cell.row,
                                                    cell.col,
                                                    why.clone(),
                                                ));
                                            }
                                            seen.entry((ei, ci))
                                                .or_insert_with(|| {
                                                    (text.clone(), cell.site.clone(), Vec::new())
                                                })
                                                .2
                                                .push((dp, expected, actual, why.clone()));
                                            result_row(
                                                scenario, dp, &text, expected, actual, why,
                                                &cell.site,
                                            )
                                        }
                                    },
                                };
                                let row = ResultRow {
                                    in_matrix: true,
                                    ..row
                                };
                                out.results.push(row);
                            }
                            if eng.is_ok() {
                                out.matrices.push(report);
                            }
                        }
                    }
                }
            }
            for (_, (flow, site, verdicts)) in seen {
                let Some(reference) = verdicts.iter().find(|v| v.0 == Dataplane::Reference) else {
                    continue;
                };
                let differs = verdicts.iter().any(|v| {
                    v.0 != Dataplane::Reference && v.1 == reference.1 && v.2 != reference.2
                });
                if differs {
                    out.divergences.push(Divergence {
                        flow,
                        site,
                        verdicts: verdicts
                            .iter()
                            .map(|(d, _, a, w)| (*d, a.as_str().to_string(), w.clone()))
                            .collect(),
                    });
                }
            }
        }
        Body::Host {
            packets,
            ruleset,
            ruleset_text,
            ipsets_text,
            host,
            ..
        } => {
            for &dp in &dataplanes {
                if dp == Dataplane::Kernel {
                    kernel_rows(
                        scenario,
                        ruleset_text,
                        ipsets_text.as_deref(),
                        host.as_deref(),
                        packets,
                        &mut out.results,
                    );
                    continue;
                }
                // The ruleset to walk, or why this dataplane cannot evaluate the scenario.
                let engine: Result<&crate::netfilter::ir::Ruleset, &str> = match (dp, ruleset) {
                    (Dataplane::Netfilter, Ok(rs)) => Ok(rs),
                    (Dataplane::Netfilter, Err(why)) => Err(why.as_str()),
                    (other, _) => Err(other.unavailable().unwrap_or(
                        "this dataplane evaluates clusters; a single-host scenario is evaluated by `netfilter`",
                    )),
                };
                // One conntrack table per sequence, carried from packet to packet.
                let mut tables: std::collections::BTreeMap<
                    usize,
                    crate::netfilter::interp::Conntrack,
                > = std::collections::BTreeMap::new();
                for p in packets {
                    let expected = p
                        .except
                        .iter()
                        .find(|(d, _)| *d == dp)
                        .map(|(_, v)| *v)
                        .unwrap_or(p.verdict);
                    let mut row = ResultRow {
                        scenario: scenario.name.clone(),
                        dataplane: dp,
                        expectation: p.packet.to_string(),
                        expected: expected.as_str().into(),
                        actual: "skipped".into(),
                        passed: false,
                        skipped: true,
                        explanation: String::new(),
                        site: p.site.clone(),
                        in_matrix: false,
                    };
                    match engine {
                        Err(why) => row.explanation = why.into(),
                        Ok(rs) => {
                            let walk = match p.seq {
                                Some(id) => crate::netfilter::interp::walk_seq(
                                    rs,
                                    &p.packet,
                                    host.as_deref(),
                                    tables.entry(id).or_default(),
                                ),
                                None => crate::netfilter::interp::walk_on(
                                    rs,
                                    &p.packet,
                                    host.as_deref(),
                                ),
                            };
                            row.actual = walk.fate.as_str().into();
                            row.explanation = walk.to_string();
                            // Inconclusive is "could not evaluate": skipped, never passed.
                            row.skipped = matches!(walk.fate, Fate::Inconclusive(_));
                            row.passed = !row.skipped && row.actual == expected.as_str();
                        }
                    }
                    out.results.push(row);
                }
            }
        }
    }
    out
}

/// The `kernel` dataplane: the scenario's ruleset in a real network namespace, each packet
/// sent (skipped, with the reason, where the kernel cannot be asked).
fn kernel_rows(
    scenario: &Scenario,
    text: &str,
    ipsets: Option<&str>,
    host: Option<&crate::netfilter::interp::Host>,
    packets: &[super::model::PacketExpect],
    out: &mut Vec<ResultRow>,
) {
    let list: Vec<crate::values::Packet> = packets.iter().map(|p| p.packet.clone()).collect();
    let mut fates = crate::kernel::host::judge(text, ipsets, host, &list);
    for (p, f) in packets.iter().zip(fates.iter_mut()) {
        if p.seq.is_some() {
            *f = Err(
                "the kernel dataplane does not send sequences yet (their packets are sent alone)"
                    .into(),
            );
        }
    }
    for (p, fate) in packets.iter().zip(fates) {
        let expected = p
            .except
            .iter()
            .find(|(d, _)| *d == Dataplane::Kernel)
            .map(|(_, v)| *v)
            .unwrap_or(p.verdict);
        let mut row = ResultRow {
            scenario: scenario.name.clone(),
            dataplane: Dataplane::Kernel,
            expectation: p.packet.to_string(),
            expected: expected.as_str().into(),
            actual: "skipped".into(),
            passed: false,
            skipped: true,
            explanation: String::new(),
            site: p.site.clone(),
            in_matrix: false,
        };
        match fate {
            Err(why) => row.explanation = why,
            Ok(f) => {
                use crate::kernel::observer::KernelFate;
                row.actual = match f {
                    KernelFate::AcceptInput | KernelFate::AcceptForward => "accept",
                    KernelFate::Reject => "reject",
                    KernelFate::Drop => "drop",
                }
                .into();
                row.explanation = format!("the kernel: {}", f.as_str());
                row.skipped = false;
                row.passed = row.actual == expected.as_str();
            }
        }
        out.push(row);
    }
}

fn skipped_row(
    s: &Scenario,
    dp: Dataplane,
    text: &str,
    expected: Verdict,
    why: &str,
    site: &Site,
) -> ResultRow {
    ResultRow {
        scenario: s.name.clone(),
        dataplane: dp,
        expectation: text.to_string(),
        expected: expected.as_str().into(),
        actual: "skipped".into(),
        passed: false,
        skipped: true,
        explanation: why.to_string(),
        site: site.clone(),
        in_matrix: false,
    }
}

fn result_row(
    s: &Scenario,
    dp: Dataplane,
    text: &str,
    expected: Verdict,
    actual: Verdict,
    why: String,
    site: &Site,
) -> ResultRow {
    ResultRow {
        scenario: s.name.clone(),
        dataplane: dp,
        expectation: text.to_string(),
        expected: expected.as_str().into(),
        actual: actual.as_str().into(),
        passed: expected == actual,
        skipped: false,
        explanation: why,
        site: site.clone(),
        in_matrix: false,
    }
}

/// The text of an observed cell: `.` allowed, `X` denied, `~` partial, `?` not checked.
pub fn observed_cell(v: Option<Verdict>) -> &'static str {
    v.map(cell_text).unwrap_or("?")
}
