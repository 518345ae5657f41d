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

    /// Renders the graph; `label(i)` gives a step's display name, whether it is destructive and
    /// its `when:` condition.
    pub fn render(&self, format: GraphFormat, label: impl Fn(usize) -> NodeLabel) -> String {
        match format {
            GraphFormat::Text => self.render_text(label),
            GraphFormat::Dot => self.render_dot(label),
            GraphFormat::Mermaid => self.render_mermaid(label),
        }
    }

    fn render_text(&self, label: impl Fn(usize) -> NodeLabel) -> String {
        let mut out = String::new();
        for (k, layer) in self.layers().iter().enumerate() {
            let parallel = if layer.len() > 1 { "  (parallel)" } else { "" };
            let _ = writeln!(out, "layer {}{parallel}", k + 1);
            for &i in layer {
                let node = label(i);
                let mark = if node.destructive {
                    "  [destructive]"
                } else {
                    ""
                };
                let when = node
                    .when
                    .as_deref()
                    .map(|w| format!("  when: {}", one_line(w)))
                    .unwrap_or_default();
                let needs: Vec<&str> = self.needs[i].iter().map(|&n| self.id(n)).collect();
                let after = if needs.is_empty() {
                    String::new()
                } else {
                    format!("  ← {}", needs.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  {}: {}{mark}{when}{after}",
                    self.id(i),
                    one_line(&node.name)
                );
            }
        }
        out
    }

    /// Graphviz: one `rank=same` row per layer, in order from the top, each headed by a
    /// `layer N` label; destructive steps red and bold, conditional steps dashed with their
    /// `when:` in the label.
    fn render_dot(&self, label: impl Fn(usize) -> NodeLabel) -> String {
        let mut out = String::from(
            "digraph runbook {\n  rankdir=TB;\n  newrank=true;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
        );
        let layers = self.layers();
        for (k, layer) in layers.iter().enumerate() {
            let _ = writeln!(out, "  subgraph layer_{} {{\n    rank=same;", k + 1);
            let _ = writeln!(
                out,
                "    \"layer {}\" [shape=plaintext, style=\"\", fontcolor=gray40];",
                k + 1
            );
            for &i in layer {
                let node = label(i);
                let mut text = format!("{}\\n{}", dot_escape(self.id(i)), dot_escape(&node.name));
                let mut style = vec!["rounded"];
                let mut attrs = String::new();
                if let Some(when) = &node.when {
                    let _ = write!(text, "\\nwhen: {}", dot_escape(when));
                    style.push("dashed");
                }
                if node.destructive {
                    style.push("filled");
                    attrs.push_str(", color=red, fillcolor=\"#fde2e1\", penwidth=2");
                    text.push_str("\\n[destructive]");
                }
                let _ = writeln!(
                    out,
                    "    \"{}\" [label=\"{text}\", style=\"{}\"{attrs}];",
                    dot_escape(self.id(i)),
                    style.join(",")
                );
            }
            out.push_str("  }\n");
        }
        for k in 1..layers.len() {
            let _ = writeln!(out, "  \"layer {k}\" -> \"layer {}\" [style=invis];", k + 1);
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

    fn render_mermaid(&self, label: impl Fn(usize) -> NodeLabel) -> String {
        let mut out = String::from("flowchart TD\n");
        let mut destructive_ids = Vec::new();
        let mut conditional_ids = Vec::new();
        for &i in &self.order {
            let node = label(i);
            let when = node
                .when
                .as_deref()
                .map(|w| format!("<br/>when: {}", mermaid_escape(w)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}[\"{}<br/>{}{when}\"]",
                mermaid_id(self.id(i)),
                mermaid_escape(self.id(i)),
                mermaid_escape(&node.name)
            );
            if node.destructive {
                destructive_ids.push(mermaid_id(self.id(i)));
            }
            if node.when.is_some() {
                conditional_ids.push(mermaid_id(self.id(i)));
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
        if !conditional_ids.is_empty() {
            out.push_str("  classDef conditional stroke-dasharray:5 5\n");
            let _ = writeln!(out, "  class {} conditional", conditional_ids.join(","));
        }
        out
    }
}

/// How [`StepGraph::render`] shows one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLabel {
    /// The display name, e.g. `Delete key k-1 (api_keys.delete)`.
    pub name: String,
    /// Whether the step changes or removes access.
    pub destructive: bool,
    /// The step's `when:` condition, if it has one.
    pub when: Option<String>,
}

/// Fills each `{{ inputs.NAME }}` in `text` whose NAME is in `given` with its value; every other
/// template (an input not given, a step output, a filter) stays as written.
pub fn fill_inputs(text: &str, given: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(len) = rest[open..].find("}}") else {
            break;
        };
        let whole = &rest[open..open + len + 2];
        let inner = whole[2..whole.len() - 2].trim();
        let value = inner
            .strip_prefix("inputs.")
            .and_then(|name| given.iter().rev().find(|(n, _)| n == name))
            .map(|(_, v)| v.as_str());
        out.push_str(&rest[..open]);
        out.push_str(value.unwrap_or(whole));
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
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
    one_line(s).replace('\\', "\\\\").replace('"', "\\\"")
}

/// Line breaks (and runs of white space around them) as single spaces.
fn one_line(s: &str) -> String {
    if !s.contains(['\n', '\r']) {
        return s.to_string();
    }
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn mermaid_id(id: &str) -> String {
    format!("s_{}", id.replace('-', "_"))
}

fn mermaid_escape(s: &str) -> String {
    one_line(s)
        .replace('#', "#35;")
        .replace('"', "#quot;")
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

    fn label(i: usize) -> NodeLabel {
        NodeLabel {
            name: format!("step \"{i}\""),
            destructive: i == 1,
            when: (i == 2).then(|| "inputs.token is not none".to_string()),
        }
    }

    #[test]
    fn mermaid_marks_destructive_and_conditional_steps_and_edges() {
        let g = graph(&[&[], &[0], &[0]]).expect("acyclic");
        let out = g.render(GraphFormat::Mermaid, label);
        assert!(out.starts_with("flowchart TD\n"));
        assert!(out.contains("s_s0 --> s_s1"));
        assert!(out.contains("class s_s1 destructive"));
        assert!(out.contains("#quot;"));
        assert!(out.contains("<br/>when: inputs.token is not none"), "{out}");
        assert!(out.contains("class s_s2 conditional"), "{out}");
    }

    #[test]
    fn dot_puts_each_layer_on_one_rank_in_order() {
        let g = graph(&[&[], &[0], &[0], &[1, 2]]).expect("acyclic");
        let out = g.render(GraphFormat::Dot, label);
        let l1 = out.find("subgraph layer_1 {").expect("layer 1");
        let l2 = out.find("subgraph layer_2 {").expect("layer 2");
        let l3 = out.find("subgraph layer_3 {").expect("layer 3");
        assert!(l1 < l2 && l2 < l3, "{out}");
        let layer2 = &out[l2..l3];
        assert!(layer2.contains("rank=same;"), "{out}");
        assert!(
            layer2.contains("\"s1\" [") && layer2.contains("\"s2\" ["),
            "{out}"
        );
        assert!(
            out.contains("\"layer 1\" -> \"layer 2\" [style=invis];"),
            "{out}"
        );
        let s1 = out.lines().find(|l| l.contains("\"s1\" [")).expect("s1");
        assert!(
            s1.contains("color=red") && s1.contains("[destructive]"),
            "{s1}"
        );
        let s2 = out.lines().find(|l| l.contains("\"s2\" [")).expect("s2");
        assert!(
            s2.contains("dashed") && s2.contains("when: inputs.token is not none"),
            "{s2}"
        );
        assert!(s2.contains("step \\\"2\\\""), "quotes escaped: {s2}");
        assert!(out.contains("\"s0\" -> \"s1\";"));
    }

    #[test]
    fn given_inputs_fill_step_names_and_the_rest_stays() {
        let given = vec![("key_id".to_string(), "k-1".to_string())];
        assert_eq!(
            fill_inputs(
                "Delete {{ inputs.key_id }} ({{steps.s.outputs.name}}) of {{ inputs.user_id }} {{inputs.key_id}}",
                &given
            ),
            "Delete k-1 ({{steps.s.outputs.name}}) of {{ inputs.user_id }} k-1"
        );
        assert_eq!(
            fill_inputs("open {{ inputs.key_id", &given),
            "open {{ inputs.key_id"
        );
        assert_eq!(fill_inputs("é {{ inputs.key_id }} ü", &given), "é k-1 ü");
    }

    #[test]
    fn text_shows_when_and_flattens_line_breaks() {
        let g = graph(&[&[], &[0], &[0]]).expect("acyclic");
        let out = g.render(GraphFormat::Text, |i| NodeLabel {
            name: format!("line one\n  line {i}"),
            ..label(i)
        });
        assert!(
            out.contains("  s2: line one line 2  when: inputs.token is not none  ← s0"),
            "{out}"
        );
        assert!(
            out.contains("  s1: line one line 1  [destructive]  ← s0"),
            "{out}"
        );
    }
}
