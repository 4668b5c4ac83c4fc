//! Chain and checkpoint verification (see the crate documentation for the classification rules).

use std::collections::{BTreeMap, VecDeque};

use enclava_store::{Store, Table};

use crate::{
    AuditEntry, Checkpoint, CheckpointProblem, GENESIS_HASH, LOOKAHEAD, PAGE, Problem, ProblemKind,
    Result, VerifyReport, checkpoint_key, parse_hash,
};

/// One storage row, digested.
struct Row {
    /// Storage seq.
    s: u64,
    /// `None`: not an entry (unparsable, or hashes not 64 hex digits).
    e: Option<Parsed>,
}

struct Parsed {
    /// Content seq.
    c: u64,
    /// prev_hash.
    p: [u8; 32],
    /// Stored hash.
    h: [u8; 32],
    /// Recomputed hash equals the stored one.
    valid: bool,
}

impl Row {
    fn new(s: u64, bytes: &[u8]) -> Row {
        let e = serde_json::from_slice::<AuditEntry>(bytes)
            .ok()
            .and_then(|e| {
                let p = parse_hash(&e.prev_hash)?;
                let h = parse_hash(&e.hash)?;
                let valid = e.compute_hash() == Some(h);
                Some(Parsed {
                    c: e.seq,
                    p,
                    h,
                    valid,
                })
            });
        Row { s, e }
    }

    fn valid(&self) -> Option<&Parsed> {
        self.e.as_ref().filter(|p| p.valid)
    }
}

/// Pages through the log with a look-ahead buffer.
struct Rows<'a> {
    store: &'a dyn Store,
    next: u64,
    buf: VecDeque<Row>,
    done: bool,
}

impl Rows<'_> {
    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.done && self.buf.len() < want {
            let page = self.store.audit_range(self.next, PAGE)?;
            match page.last() {
                Some(last) => self.next = last.seq.saturating_add(1),
                None => self.done = true,
            }
            if page.len() < PAGE {
                self.done = true;
            }
            self.buf
                .extend(page.iter().map(|r| Row::new(r.seq, &r.entry)));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Option<Row>> {
        self.fill(1)?;
        Ok(self.buf.pop_front())
    }
}

/// The accepted chain so far: last entry and a window of recent hashes.
struct Chain {
    c: u64,
    h: [u8; 32],
    s: u64,
    recent: VecDeque<[u8; 32]>,
}

impl Chain {
    /// Hash of accepted entry `c` (0 = genesis) if still in the window.
    fn hash_of(&self, c: u64) -> Option<[u8; 32]> {
        if c == 0 {
            return Some([0u8; 32]);
        }
        let back = usize::try_from(self.c.checked_sub(c)?).ok()?;
        let idx = self.recent.len().checked_sub(back + 1)?;
        self.recent.get(idx).copied()
    }

    fn accept(&mut self, s: u64, c: u64, h: [u8; 32]) {
        self.c = c;
        self.h = h;
        self.s = s;
        self.recent.push_back(h);
        if self.recent.len() > LOOKAHEAD {
            self.recent.pop_front();
        }
    }
}

fn problem(seq: u64, kind: ProblemKind, detail: String) -> Problem {
    Problem { seq, kind, detail }
}

/// Classify the first row `r` that does not continue the chain, looking at the rows `ahead`.
fn classify(r: &Row, ahead: &VecDeque<Row>, chain: &Chain) -> Problem {
    let e = chain.c + 1;
    let fits = |x: &Row| x.valid().is_some_and(|p| p.c == e && p.p == chain.h);
    if fits(r) {
        return problem(
            e,
            ProblemKind::Modified,
            format!(
                "entry {e} is stored at seq {} instead of {e} (the seq column was changed)",
                r.s
            ),
        );
    }
    if let Some(j) = ahead.iter().position(fits) {
        let succ = ahead.get(j).map_or(0, |x| x.s);
        if let Some(p) = r.valid()
            && p.c > e
        {
            let window = || {
                std::iter::once(r)
                    .chain(ahead.iter())
                    .filter_map(Row::valid)
            };
            let linked = window().any(|x| x.p == p.h) || window().any(|x| x.h == p.p);
            if linked {
                return problem(
                    r.s,
                    ProblemKind::Reordered,
                    format!(
                        "entry {} is stored at seq {}, before entry {e} (stored at seq {succ})",
                        p.c, r.s
                    ),
                );
            }
        }
        let last_extra = ahead.get(j.wrapping_sub(1)).map_or(r.s, |x| x.s);
        return problem(
            r.s,
            ProblemKind::Inserted,
            format!(
                "rows at seq {}..={last_extra} do not belong to the chain: entry {e} at seq {succ} links directly to entry {} at seq {}",
                r.s, chain.c, chain.s
            ),
        );
    }
    let Some(p) = r.e.as_ref() else {
        return problem(
            r.s,
            ProblemKind::Modified,
            format!("seq {} is not a valid audit entry", r.s),
        );
    };
    if !p.valid {
        return problem(
            r.s,
            ProblemKind::Modified,
            format!(
                "entry at seq {} does not match its hash (content changed)",
                r.s
            ),
        );
    }
    if p.c == e {
        return if chain.c == 0 {
            problem(
                r.s,
                ProblemKind::Modified,
                "the first entry's prev_hash is not the genesis hash".into(),
            )
        } else {
            problem(
                chain.s,
                ProblemKind::Modified,
                format!(
                    "entry {} at seq {} was rewritten with a recomputed hash: entry {e} links to a different hash",
                    chain.c, chain.s
                ),
            )
        };
    }
    if p.c < e {
        if p.c >= 1 && chain.hash_of(p.c - 1) == Some(p.p) {
            let continues = ahead
                .front()
                .and_then(Row::valid)
                .is_some_and(|n| n.c == p.c + 1 && n.p == p.h);
            if continues {
                return problem(
                    p.c,
                    ProblemKind::Inserted,
                    format!(
                        "entries from seq {} to {} were inserted: the chain continues from entry {} stored at seq {}",
                        p.c, chain.s, p.c, r.s
                    ),
                );
            }
            return problem(
                r.s,
                ProblemKind::Inserted,
                format!("seq {} holds a copy of entry {}", r.s, p.c),
            );
        }
        return problem(
            r.s,
            ProblemKind::Inserted,
            format!("seq {} holds entry {}, which does not fit here", r.s, p.c),
        );
    }
    problem(
        e,
        ProblemKind::Removed,
        format!(
            "entries {e}..={} are missing: seq {} holds entry {}",
            p.c - 1,
            r.s,
            p.c
        ),
    )
}

struct Checkpoints {
    /// Checkpoints whose signature verifies, by seq.
    good: BTreeMap<u64, Checkpoint>,
    count: u64,
    first_problem: Option<CheckpointProblem>,
}

fn load_checkpoints(store: &dyn Store, public_key: &[u8]) -> Result<Checkpoints> {
    let mut out = Checkpoints {
        good: BTreeMap::new(),
        count: 0,
        first_problem: None,
    };
    let mut after: Option<String> = None;
    loop {
        let rows = store.list(Table::AuditCheckpoints, "", after.as_deref(), PAGE)?;
        for (k, v) in &rows {
            out.count += 1;
            let key_seq = k.parse::<u64>().unwrap_or(0);
            let detail = match serde_json::from_slice::<Checkpoint>(v) {
                Err(e) => Some(format!("checkpoint {k:?} is not a checkpoint: {e}")),
                Ok(cp) if checkpoint_key(cp.seq) != *k => Some(format!(
                    "checkpoint stored under key {k:?} claims seq {}",
                    cp.seq
                )),
                Ok(cp) if parse_hash(&cp.head_hash).is_none() => Some(format!(
                    "checkpoint {} head hash is not 64 hex digits",
                    cp.seq
                )),
                Ok(cp) if !cp.signature_valid(public_key) => Some(format!(
                    "checkpoint {} signature does not verify (forged or altered)",
                    cp.seq
                )),
                Ok(cp) => {
                    out.good.insert(cp.seq, cp);
                    None
                }
            };
            if let Some(detail) = detail
                && out.first_problem.is_none()
            {
                out.first_problem = Some(CheckpointProblem {
                    seq: key_seq,
                    detail,
                });
            }
        }
        match rows.last() {
            Some((k, _)) if rows.len() == PAGE => after = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

pub(crate) fn run(
    store: &dyn Store,
    public_key: &[u8],
    signed_head: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    let mut cps = load_checkpoints(store, public_key)?;
    // The signed head kept outside the database joins the checkpoints: it is compared with the
    // chain at its seq like any other, and a chain that ends before it was truncated.
    let mut head_seq = None;
    if let Some(h) = signed_head {
        if parse_hash(&h.head_hash).is_some() && h.signature_valid(public_key) {
            head_seq = Some(h.seq);
            cps.good.insert(h.seq, h.clone());
        } else if cps.first_problem.is_none() {
            cps.first_problem = Some(CheckpointProblem {
                seq: h.seq,
                detail: format!(
                    "the signed head file names seq {} but its signature does not verify (forged or altered)",
                    h.seq
                ),
            });
        }
    }
    let mut rows = Rows {
        store,
        next: 1,
        buf: VecDeque::new(),
        done: false,
    };
    let mut chain = Chain {
        c: 0,
        h: [0u8; 32],
        s: 0,
        recent: VecDeque::new(),
    };
    let mut entries = 0u64;
    let mut first: Option<Problem> = None;
    let mut checkpoint_mismatch = false;
    while let Some(r) = rows.pop()? {
        entries += 1;
        if first.is_some() {
            continue;
        }
        let good = r
            .valid()
            .filter(|p| p.c == chain.c + 1 && r.s == p.c && p.p == chain.h);
        if let Some(p) = good {
            chain.accept(r.s, p.c, p.h);
            if let Some(cp) = cps.good.get(&p.c)
                && parse_hash(&cp.head_hash) != Some(p.h)
            {
                checkpoint_mismatch = true;
                let detail = format!(
                    "the signed checkpoint at seq {} names head {}, the stored chain has {}: entries up to seq {} were rewritten",
                    p.c,
                    cp.head_hash,
                    hex::encode(p.h),
                    p.c
                );
                if cps.first_problem.is_none() {
                    cps.first_problem = Some(CheckpointProblem {
                        seq: p.c,
                        detail: detail.clone(),
                    });
                }
                first = Some(problem(p.c, ProblemKind::Modified, detail));
            }
            continue;
        }
        rows.fill(LOOKAHEAD)?;
        first = Some(classify(&r, &rows.buf, &chain));
    }
    let mut beyond_end = false;
    if first.is_none()
        && let Some((&seq, _)) = cps.good.range(chain.c + 1..).next()
    {
        beyond_end = true;
        let detail = match head_seq {
            Some(h) if h > chain.c => format!(
                "the log ends at seq {} but a signed head at seq {h} exists: the newest entries were deleted (tail truncation)",
                chain.c
            ),
            _ => format!(
                "a signed checkpoint covers seq {seq} but the log ends at seq {}",
                chain.c
            ),
        };
        if cps.first_problem.is_none() {
            cps.first_problem = Some(CheckpointProblem {
                seq,
                detail: detail.clone(),
            });
        }
        first = Some(problem(chain.c + 1, ProblemKind::Removed, detail));
    }
    let verified_head = if chain.c == 0 {
        GENESIS_HASH.to_string()
    } else {
        hex::encode(chain.h)
    };
    Ok(VerifyReport {
        entries,
        verified: chain.c,
        verified_head,
        checkpoints: cps.count,
        checkpoints_ok: cps.first_problem.is_none() && !checkpoint_mismatch && !beyond_end,
        first_problem: first,
        first_checkpoint_problem: cps.first_problem,
        signed_head: head_seq,
    })
}
