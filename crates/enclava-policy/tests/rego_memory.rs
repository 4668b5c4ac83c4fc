//! Memory of the worst bounded policies (issue 9 item 2: the nesting attack grew the server's heap
//! by ~600 MB per request). One test in its own binary so that no other test's allocations show
//! up in this process's resident set. Prints the numbers (they are in the report).

use std::time::Instant;

use enclava_policy::AppraisalPolicy;
use enclava_policy::rego::limits::{MAX_NESTING_DEPTH, MAX_SOURCE_BYTES};
use serde_json::json;

const HEAD: &str = "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\n";

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn vm_rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn packed(expr: &str) -> String {
    let mut src = HEAD.to_string();
    let mut i = 0;
    loop {
        let line = format!("r{i} := {expr}\n");
        if src.len() + line.len() > MAX_SOURCE_BYTES {
            return src;
        }
        src.push_str(&line);
        i += 1;
    }
}

#[test]
fn bounded_nesting_does_not_grow_the_heap() {
    let Some(before) = vm_rss_kib() else {
        return; // no procfs
    };
    let d = MAX_NESTING_DEPTH;
    let mut compr = String::new();
    for i in 0..d {
        compr.push_str(&format!("[v{i} | v{i} := "));
    }
    compr.push('1');
    compr.push_str(&"]".repeat(d));
    let shapes = [
        format!("{}1{}", "[".repeat(d), "]".repeat(d)),
        format!("{}1{}", "{".repeat(d), "}".repeat(d)),
        format!("{}1 2{}", "[".repeat(d), "]".repeat(d)),
        compr,
    ];
    let mut peak = before;
    for (i, s) in shapes.iter().enumerate() {
        // The worst bounded policies, compiled over and over (three requests each).
        let src = packed(s);
        for _ in 0..3 {
            let t = Instant::now();
            let r = AppraisalPolicy::compile("p", &src);
            if let Ok(p) = &r {
                let _ = p.evaluate(&json!({"claims": {}}));
            }
            let now = vm_rss_kib().unwrap_or(0);
            peak = peak.max(now);
            eprintln!(
                "shape {i}: {} bytes, {:?}, ok={}, VmRSS {now} KiB",
                src.len(),
                t.elapsed(),
                r.is_ok()
            );
        }
    }
    let after = vm_rss_kib().unwrap_or(0);
    eprintln!(
        "VmRSS before {before} KiB, peak {peak} KiB (+{} KiB), after {after} KiB",
        peak.saturating_sub(before)
    );
    // The unbounded attack grew ~600 MB per request; bounded, the growth stays small.
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "grew by {} KiB",
        peak - before
    );

    // Evaluation is bounded by the deadline, not by a memory ceiling: what a policy that
    // accumulates values as fast as it can until the deadline reaches (printed for the report,
    // not asserted: it depends on the build and the machine).
    let hwm = status_kib("VmHWM:").unwrap_or(0);
    let src = format!(
        "{HEAD}n := numbers.range(1, 100000)\n\nallow if count([[a, b] | some a in n; some b in n]) > 0\n"
    );
    let p = AppraisalPolicy::compile("accumulate", &src).expect("compiles");
    let t = Instant::now();
    let r = p.evaluate(&json!({"claims": {}}));
    eprintln!(
        "accumulating until the deadline: {:?}, err={}, VmHWM {hwm} -> {} KiB, VmRSS after {} KiB",
        t.elapsed(),
        r.is_err(),
        status_kib("VmHWM:").unwrap_or(0),
        vm_rss_kib().unwrap_or(0)
    );
}
