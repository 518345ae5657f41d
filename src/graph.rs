//! The step graph: which steps wait for which, in what order they may run, and what may run
//! side by side. Edges point from a step to the steps it `needs`.

use std::fmt::Write as _;

/// A cycle in `needs`, as the ids along it, first id repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" → "))
    }
}

/// An acyclic graph of steps, indexed by position in the runbook.
#[derive(Debug, Clone)]
pub struct StepGraph {
    ids: Vec<String>,
    needs: Vec<Vec<usize>>,
    order: Vec<usize>,
    layer: Vec<usize>,
    ancestors: Vec<Vec<bool>>,
}

impl StepGraph {
    /// Builds the graph; `needs[i]` are the indices step `i` waits for (all in range).
    pub fn new(ids: Vec<String>, needs: Vec<Vec<usize>>) -> Result<StepGraph, Cycle> {
        if let Some(cycle) = find_cycle(&needs) {
            return Err(Cycle(cycle.into_iter().map(|i| ids[i].clone()).collect()));
        }
        let order = topological_order(&needs);
        let mut layer = vec![0; ids.len()];
        let mut ancestors = vec![vec![false; ids.len()]; ids.len()];
        for &i in &order {
            layer[i] = needs[i].iter().map(|&n| layer[n] + 1).max().unwrap_or(0);
            for &n in &needs[i] {
                ancestors[i][n] = true;
                let (of_n, of_i) = if n < i {
                    let (lo, hi) = ancestors.split_at_mut(i);
                    (&lo[n], &mut hi[0])
                } else {
                    let (lo, hi) = ancestors.split_at_mut(n);
                    (&hi[0], &mut lo[i])
                };
                for (dst, &src) in of_i.iter_mut().zip(of_n) {
                    *dst |= src;
                }
            }
        }
        Ok(StepGraph {
            ids,
            needs,
            order,
            layer,
            ancestors,
        })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of step `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// The steps `i` waits for.
    pub fn needs(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    /// The steps that wait for `i`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&j| self.needs[j].contains(&i))
    }

    /// A topological order; among ready steps, file order wins.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Groups of steps that may run side by side: layer k holds the steps whose longest chain of
    /// `needs` has length k.
    pub fn layers(&self) -> Vec<Vec<usize>> {
        let depth = self.layer.iter().copied().max().map_or(0, |m| m + 1);
        let mut layers = vec![Vec::new(); depth];
        for &i in &self.order {
            layers[self.layer[i]].push(i);
        }
        layers
    }

    /// Whether `a` must finish before `b` can start (directly or transitively).
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        self.ancestors[b][a]
    }

    /// Renders the graph; `label(i)` gives a step's display name and whether it is destructive.
    pub fn render(&self, format: GraphFormat, label: impl Fn(usize) -> (String, bool)) -> String {
        match format {
            GraphFormat::Text => self.render_text(label),
            GraphFormat::Dot => self.render_dot(label),
            GraphFormat::Mermaid => self.render_mermaid(label),
        }
    }

    fn render_text(&self, label: impl Fn(usize) -> (String, bool)) -> String {
        let mut out = String::new();
        for (k, layer) in self.layers().iter().enumerate() {
            let parallel = if layer.len() > 1 { "  (parallel)" } else { "" };
            let _ = writeln!(out, "layer {}{parallel}", k + 1);
            for &i in layer {
                let (name, destructive) = label(i);
                let mark = if destructive { "  [destructive]" } else { "" };
                let needs: Vec<&str> = self.needs[i].iter().map(|&n| self.id(n)).collect();
                let after = if needs.is_empty() {
                    String::new()
                } else {
                    format!("  ← {}", needs.join(", "))
                };
                let _ = writeln!(out, "  {}: {name}{mark}{after}", self.id(i));
            }
        }
        out
    }

    fn render_dot(&self, label: impl Fn(usize) -> (String, bool)) -> String {
        let mut out = String::from("digraph runbook {\n  rankdir=TB;\n  node [shape=box];\n");
        for i in 0..self.len() {
            let (name, destructive) = label(i);
            let style = if destructive {
                ", color=red, penwidth=2"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\"{style}];",
                dot_escape(self.id(i)),
                dot_escape(self.id(i)),
                dot_escape(&name)
            );
        }
        for i in 0..self.len() {
            for &n in &self.needs[i] {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\";",
                    dot_escape(self.id(n)),
                    dot_escape(self.id(i))
                );
            }
        }
        out.push_str("}\n");
        out
    }

    fn render_mermaid(&self, label: impl Fn(usize) -> (String, bool)) -> String {
        let mut out = String::from("flowchart TD\n");
        let mut destructive_ids = Vec::new();
        for i in 0..self.len() {
            let (name, destructive) = label(i);
            let _ = writeln!(
                out,
                "  {}[\"{}<br/>{}\"]",
                mermaid_id(self.id(i)),
                mermaid_escape(self.id(i)),
                mermaid_escape(&name)
            );
            if destructive {
                destructive_ids.push(mermaid_id(self.id(i)));
            }
        }
        for i in 0..self.len() {
            for &n in &self.needs[i] {
                let _ = writeln!(
                    out,
                    "  {} --> {}",
                    mermaid_id(self.id(n)),
                    mermaid_id(self.id(i))
                );
            }
        }
        if !destructive_ids.is_empty() {
            out.push_str("  classDef destructive fill:#fde2e1,stroke:#c0392b,stroke-width:2px\n");
            let _ = writeln!(out, "  class {} destructive", destructive_ids.join(","));
        }
        out
    }
}

/// Output formats of [`StepGraph::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// Layers as indented text.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Kahn's algorithm, always taking the lowest ready index so file order breaks ties.
fn topological_order(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut dependents = vec![Vec::new(); n];
    for (j, deps) in needs.iter().enumerate() {
        for &i in deps {
            dependents[i].push(j);
        }
    }
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order
}

/// Depth-first search for a cycle, iterative so a hostile runbook cannot overflow the stack.
fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; needs.len()];
    for root in 0..needs.len() {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = needs[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::Open;
                        stack.push((dep, 0));
                    }
                    Mark::Open => {
                        // The cycle is the stack from `dep` up to `node`, read as "waits for".
                        let from = stack.iter().position(|&(s, _)| s == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(s, _)| s).collect();
                        cycle.push(dep);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

fn mermaid_id(id: &str) -> String {
    format!("s_{}", id.replace('-', "_"))
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace(['\n', '\r'], " ")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(needs: &[&[usize]]) -> Result<StepGraph, Cycle> {
        let ids = (0..needs.len()).map(|i| format!("s{i}")).collect();
        StepGraph::new(ids, needs.iter().map(|n| n.to_vec()).collect())
    }

    #[test]
    fn a_diamond_has_three_layers_with_the_middle_in_parallel() {
        let g = graph(&[&[], &[0], &[0], &[1, 2]]).expect("acyclic");
        assert_eq!(g.order(), &[0, 1, 2, 3]);
        assert_eq!(g.layers(), vec![vec![0], vec![1, 2], vec![3]]);
        assert!(g.is_ancestor(0, 3));
        assert!(!g.is_ancestor(1, 2));
        assert!(!g.is_ancestor(3, 0));
        assert_eq!(g.dependents(0).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn order_follows_needs_not_file_order() {
        let g = graph(&[&[2], &[], &[1]]).expect("acyclic");
        assert_eq!(g.order(), &[1, 2, 0]);
        assert_eq!(g.layers(), vec![vec![1], vec![2], vec![0]]);
    }

    #[test]
    fn cycles_are_reported_as_a_path() {
        let err = graph(&[&[2], &[0], &[1]]).expect_err("cycle");
        assert_eq!(err.to_string(), "s0 → s2 → s1 → s0");
        let err = graph(&[&[0]]).expect_err("self-loop");
        assert_eq!(err.0, vec!["s0", "s0"]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 5000;
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![n - 1] } else { vec![i - 1] })
            .collect();
        let err =
            StepGraph::new((0..n).map(|i| i.to_string()).collect(), needs).expect_err("cycle");
        assert_eq!(err.0.len(), n + 1);
    }

    #[test]
    fn mermaid_marks_destructive_steps_and_edges() {
        let g = graph(&[&[], &[0]]).expect("acyclic");
        let out = g.render(GraphFormat::Mermaid, |i| (format!("step \"{i}\""), i == 1));
        assert!(out.starts_with("flowchart TD\n"));
        assert!(out.contains("s_s0 --> s_s1"));
        assert!(out.contains("class s_s1 destructive"));
        assert!(out.contains("#quot;"));
    }
}
