//! The Microsoft Azure Attestation policy language (versions 1.0 to 1.2): a parser, an evaluator
//! with explanations, the policy upload JWS and the policy hash.
//!
//! # Supported
//!
//! ```text
//! policy  := version ";" { section [";"] }        sections: configurationrules, authorizationrules
//!                                                  (required), issuancerules; each at most once
//! version := "version" "=" INT "." INT            1.0, 1.1 or 1.2; keywords are case-insensitive
//! rule    := [cond {"&&" cond}] "=>" action ";"
//! cond    := ["!"] [IDENT ":"] "[" test {"," test} "]"   ("!" needs version 1.2)
//! test    := ("type"|"value"|"valueType"|"issuer") OP expr
//! action  := permit() | deny() | add(...) | issue(...) | issueproperty(...)
//!            with (type=expr, value=expr [, valueType=STR]) or (claim=IDENT)
//! expr    := STRING | INT | true | false | IDENT "." (type|value|valueType|issuer)
//! ```
//! Comments (`//`, `/* */`) are allowed. Ordering operators (`<`, `<=`, `>`, `>=`) compare
//! integers; `type`, `valueType` and `issuer` take `==`/`!=` only.
//!
//! # Not supported (each reported as [`PolicyError::Unsupported`] with its line)
//!
//! Function calls in expressions (`JmesPath`, `JsonToClaimValue`, any `NAME(...)`), the operators
//! `=~`, `||` and `+`, and versions other than 1.0–1.2. Configuration rules are parsed and
//! reported by [`MaaPolicy::configuration`], but not enforced.
//!
//! # Semantics
//!
//! A condition holds when some claim satisfies all of its tests (a negated one when none does);
//! a rule fires once per combination of claims satisfying its conditions (conditions may refer to
//! claims bound by earlier conditions). Authorization rules run in order over the incoming claims;
//! `add` adds claims (issuer `AttestationPolicy`) visible to later rules. The outcome is
//! conservative: **any** firing `deny()` denies, otherwise at least one firing `permit()` is
//! needed (default deny). Issuance rules then run in order; `issue` adds the claim to the token
//! ([`Decision::issued_claims`]; a type issued more than once becomes an array) and to the claims
//! later rules see, `add` only to the latter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Decision, FailedRule, PolicyError, bounded, render};

/// Largest accepted policy text (bytes).
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Most conditions in one rule (evaluation recurses once per condition).
pub const MAX_CONDITIONS: usize = 64;
/// Most claim combinations examined in one evaluation; beyond it the decision denies.
pub const MAX_BINDINGS: usize = 100_000;

const ECHO: usize = 160;

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: u32,
    col: u32,
    start: usize,
    end: usize,
}

const PUNCTS: [&str; 23] = [
    "=>", "==", "!=", "<=", ">=", "&&", "||", "=~", "<", ">", "=", "!", ",", ";", ":", "[", "]",
    "{", "}", "(", ")", ".", "+",
];

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{}`", bounded(s, ECHO)),
        Tok::Str(s) => format!("string \"{}\"", bounded(s, ECHO)),
        Tok::Int(i) => format!("integer {i}"),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Eof => "end of policy".to_string(),
    }
}

fn lex(src: &str) -> Result<Vec<Token>, PolicyError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut line = 1u32;
    let mut line_start = 0usize;
    // Columns count bytes from 1 (O(1) per token, even on one very long line).
    let col_of = |i: usize, line_start: usize| -> u32 {
        u32::try_from(i.saturating_sub(line_start) + 1).unwrap_or(u32::MAX)
    };
    while i < bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(0);
        if c == b'\n' {
            line = line.saturating_add(1);
            i += 1;
            line_start = i;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let rest = src.get(i..).unwrap_or("");
        if rest.starts_with("//") {
            while i < bytes.len() && bytes.get(i) != Some(&b'\n') {
                i += 1;
            }
            continue;
        }
        if rest.starts_with("/*") {
            let (sl, sc) = (line, col_of(i, line_start));
            i += 2;
            loop {
                if i >= bytes.len() {
                    return Err(PolicyError::Syntax {
                        line: sl,
                        column: sc,
                        expected: "`*/` closing the comment".into(),
                        found: "end of policy".into(),
                    });
                }
                if src.get(i..).is_some_and(|r| r.starts_with("*/")) {
                    i += 2;
                    break;
                }
                if bytes.get(i) == Some(&b'\n') {
                    line = line.saturating_add(1);
                    line_start = i + 1;
                }
                i += 1;
            }
            continue;
        }
        let col = col_of(i, line_start);
        let start = i;
        if c == b'"' {
            let mut s = String::new();
            i += 1;
            let mut chars = src.get(i..).unwrap_or("").char_indices();
            let mut closed = false;
            while let Some((off, ch)) = chars.next() {
                match ch {
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, e @ ('"' | '\\' | '/'))) => s.push(e),
                        Some((_, other)) => {
                            return Err(PolicyError::Syntax {
                                line,
                                column: col,
                                expected: "an escape \\\" \\\\ \\/ \\n or \\t".into(),
                                found: format!("\\{other}"),
                            });
                        }
                        None => break,
                    },
                    '\n' => break,
                    other => s.push(other),
                }
            }
            if !closed {
                return Err(PolicyError::Syntax {
                    line,
                    column: col,
                    expected: "a closing `\"` on the same line".into(),
                    found: "an unterminated string".into(),
                });
            }
            out.push(Token {
                tok: Tok::Str(s),
                line,
                col,
                start,
                end: i,
            });
            continue;
        }
        let negative_int = c == b'-' && bytes.get(i + 1).is_some_and(|d| d.is_ascii_digit());
        if c.is_ascii_digit() || negative_int {
            let mut j = i + 1;
            while bytes.get(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            let text = src.get(i..j).unwrap_or("");
            let n = text.parse::<i64>().map_err(|_| PolicyError::Syntax {
                line,
                column: col,
                expected: "an integer that fits in 64 bits".into(),
                found: bounded(text, ECHO),
            })?;
            i = j;
            out.push(Token {
                tok: Tok::Int(n),
                line,
                col,
                start,
                end: i,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let mut j = i + 1;
            while bytes.get(j).is_some_and(|d| {
                d.is_ascii_alphanumeric() || *d == b'_' || *d == b'-' || *d == b'$'
            }) {
                j += 1;
            }
            let text = src.get(i..j).unwrap_or("").to_string();
            i = j;
            out.push(Token {
                tok: Tok::Ident(text),
                line,
                col,
                start,
                end: i,
            });
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            i += p.len();
            out.push(Token {
                tok: Tok::Punct(p),
                line,
                col,
                start,
                end: i,
            });
            continue;
        }
        let ch = rest.chars().next().unwrap_or('?');
        return Err(PolicyError::Syntax {
            line,
            column: col,
            expected: "a token of the MAA policy language".into(),
            found: format!("character {ch:?}"),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
        col: col_of(i.min(src.len()), line_start),
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// AST

/// A claim attribute a test or reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Type,
    Value,
    ValueType,
    Issuer,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "type" => Field::Type,
            "value" => Field::Value,
            "valueType" => Field::ValueType,
            "issuer" => Field::Issuer,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::Value => "value",
            Field::ValueType => "valueType",
            Field::Issuer => "issuer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A value expression: a literal or an attribute of a claim bound by an earlier condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Ref(String, Field),
}

impl Expr {
    fn render(&self) -> String {
        match self {
            Expr::Literal(v) => v.to_string(),
            Expr::Ref(v, f) => format!("{v}.{}", f.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub field: Field,
    pub op: Op,
    pub rhs: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub negated: bool,
    pub binding: Option<String>,
    pub tests: Vec<Test>,
}

impl Condition {
    fn claim_type(&self) -> Option<&str> {
        self.tests
            .iter()
            .find_map(|t| match (&t.field, &t.op, &t.rhs) {
                (Field::Type, Op::Eq, Expr::Literal(Value::String(s))) => Some(s.as_str()),
                _ => None,
            })
    }

    fn render_tests(&self, skip_type: bool) -> String {
        let parts: Vec<String> = self
            .tests
            .iter()
            .filter(|t| !(skip_type && t.field == Field::Type && t.op == Op::Eq))
            .map(|t| format!("{} {} {}", t.field.name(), t.op.symbol(), t.rhs.render()))
            .collect();
        parts.join(", ")
    }
}

/// What a claim-producing action produces.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimSpec {
    New {
        claim_type: Expr,
        value: Expr,
        value_type: Option<String>,
    },
    Copy(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Permit,
    Deny,
    Add(ClaimSpec),
    Issue(ClaimSpec),
    IssueProperty(ClaimSpec),
}

/// One rule with its source line and text (for explanations).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub line: u32,
    pub text: String,
    pub conditions: Vec<Condition>,
    pub action: Action,
}

/// A configuration property set by `issueproperty` in `configurationrules`: parsed, not enforced.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationProperty {
    pub name: String,
    pub value: Value,
    pub line: u32,
    pub note: String,
}

/// A parsed MAA policy.
#[derive(Debug, Clone, PartialEq)]
pub struct MaaPolicy {
    pub version: (u32, u32),
    pub configuration_rules: Vec<Rule>,
    pub authorization_rules: Vec<Rule>,
    pub issuance_rules: Vec<Rule>,
    configuration: Vec<ConfigurationProperty>,
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Configuration,
    Authorization,
    Issuance,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Configuration => "configurationrules",
            Section::Authorization => "authorizationrules",
            Section::Issuance => "issuancerules",
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    version: (u32, u32),
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // lex always ends with Eof, and pos never passes it.
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .unwrap_or(&EOF_TOKEN)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err(&self, expected: impl Into<String>) -> PolicyError {
        let t = self.peek();
        if let Some(u) = unsupported_at(t, self.peek_at(1)) {
            return u;
        }
        PolicyError::Syntax {
            line: t.line,
            column: t.col,
            expected: expected.into(),
            found: describe(&t.tok),
        }
    }

    fn expect_punct(&mut self, p: &'static str) -> Result<Token, PolicyError> {
        if self.peek().tok == Tok::Punct(p) {
            Ok(self.bump())
        } else {
            Err(self.err(format!("`{p}`")))
        }
    }

    fn eat_punct(&mut self, p: &'static str) -> bool {
        if self.peek().tok == Tok::Punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_int(&mut self, what: &str) -> Result<i64, PolicyError> {
        match self.peek().tok {
            Tok::Int(n) => {
                self.bump();
                Ok(n)
            }
            _ => Err(self.err(what.to_string())),
        }
    }

    fn keyword(&self) -> Option<String> {
        match &self.peek().tok {
            Tok::Ident(s) => Some(s.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn parse_policy(&mut self) -> Result<MaaPolicy, PolicyError> {
        if self.keyword().as_deref() != Some("version") {
            return Err(self.err("`version=1.0;` (or 1.1, 1.2) at the start of the policy"));
        }
        let vtok = self.bump();
        self.expect_punct("=")?;
        let major = self.expect_int("a version number such as 1.0")?;
        self.expect_punct(".")?;
        let minor = self.expect_int("a minor version number such as 1.0")?;
        let version = match (major, minor) {
            (1, m @ 0..=2) => (1, m as u32),
            _ => {
                return Err(PolicyError::Unsupported {
                    construct: format!(
                        "version={major}.{minor} (supported versions: 1.0, 1.1, 1.2)"
                    ),
                    line: vtok.line,
                });
            }
        };
        self.version = version;
        self.expect_punct(";")?;

        let mut configuration_rules = None;
        let mut authorization_rules = None;
        let mut issuance_rules = None;
        loop {
            if self.peek().tok == Tok::Eof {
                break;
            }
            let section = match self.keyword().as_deref() {
                Some("configurationrules") => Section::Configuration,
                Some("authorizationrules") => Section::Authorization,
                Some("issuancerules") => Section::Issuance,
                _ => {
                    return Err(self.err(
                        "a section: configurationrules, authorizationrules or issuancerules",
                    ));
                }
            };
            let stok = self.bump();
            let slot = match section {
                Section::Configuration => &mut configuration_rules,
                Section::Authorization => &mut authorization_rules,
                Section::Issuance => &mut issuance_rules,
            };
            if slot.is_some() {
                return Err(PolicyError::Syntax {
                    line: stok.line,
                    column: stok.col,
                    expected: format!("at most one {} section", section.name()),
                    found: format!("a second {} section", section.name()),
                });
            }
            let rules = self.parse_block(section)?;
            match section {
                Section::Configuration => configuration_rules = Some(rules),
                Section::Authorization => authorization_rules = Some(rules),
                Section::Issuance => issuance_rules = Some(rules),
            }
            self.eat_punct(";");
        }
        let Some(authorization_rules) = authorization_rules else {
            let t = self.peek();
            return Err(PolicyError::Syntax {
                line: t.line,
                column: t.col,
                expected: "an authorizationrules section".into(),
                found: "none".into(),
            });
        };
        let configuration_rules = configuration_rules.unwrap_or_default();
        let configuration = configuration_properties(&configuration_rules);
        Ok(MaaPolicy {
            version,
            configuration_rules,
            authorization_rules,
            issuance_rules: issuance_rules.unwrap_or_default(),
            configuration,
        })
    }

    fn parse_block(&mut self, section: Section) -> Result<Vec<Rule>, PolicyError> {
        self.expect_punct("{")?;
        let mut rules = Vec::new();
        while !self.eat_punct("}") {
            rules.push(self.parse_rule(section)?);
        }
        Ok(rules)
    }

    fn parse_rule(&mut self, section: Section) -> Result<Rule, PolicyError> {
        let first = self.peek().clone();
        let mut conditions: Vec<Condition> = Vec::new();
        if self.peek().tok != Tok::Punct("=>") {
            loop {
                if conditions.len() >= MAX_CONDITIONS {
                    let t = self.peek();
                    return Err(PolicyError::Syntax {
                        line: t.line,
                        column: t.col,
                        expected: format!("at most {MAX_CONDITIONS} conditions in one rule"),
                        found: "more".into(),
                    });
                }
                conditions.push(self.parse_condition(&conditions)?);
                if self.eat_punct("&&") {
                    continue;
                }
                break;
            }
        }
        self.expect_punct("=>")
            .map_err(|_| self.err("`&&` or `=>` after a condition"))?;
        let action = self.parse_action(section, &conditions)?;
        let semi = self.expect_punct(";")?;
        let text = self
            .src
            .get(first.start..semi.end)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Ok(Rule {
            line: first.line,
            text: bounded(&text, 400),
            conditions,
            action,
        })
    }

    fn parse_condition(&mut self, earlier: &[Condition]) -> Result<Condition, PolicyError> {
        let start = self.peek().clone();
        let negated = self.eat_punct("!");
        if negated && self.version < (1, 2) {
            return Err(PolicyError::Unsupported {
                construct: format!(
                    "negated condition `!` needs version=1.2 (this policy declares version={}.{})",
                    self.version.0, self.version.1
                ),
                line: start.line,
            });
        }
        let mut binding = None;
        if let Tok::Ident(name) = &self.peek().tok {
            let name = name.clone();
            self.bump();
            self.expect_punct(":")
                .map_err(|_| self.err("`:` after a claim variable (as in `c:[...]`)"))?;
            binding = Some(name);
        }
        self.expect_punct("[")
            .map_err(|_| self.err("a condition `[type == \"...\", ...]`"))?;
        let mut tests = Vec::new();
        loop {
            tests.push(self.parse_test(earlier)?);
            if self.eat_punct(",") {
                continue;
            }
            self.expect_punct("]")?;
            break;
        }
        Ok(Condition {
            negated,
            binding,
            tests,
        })
    }

    fn parse_test(&mut self, earlier: &[Condition]) -> Result<Test, PolicyError> {
        let field = match &self.peek().tok {
            Tok::Ident(s) => Field::parse(s),
            _ => None,
        }
        .ok_or_else(|| self.err("a claim attribute: type, value, valueType or issuer"))?;
        self.bump();
        let op_tok = self.peek().clone();
        let op = match op_tok.tok {
            Tok::Punct("==") => Op::Eq,
            Tok::Punct("!=") => Op::Ne,
            Tok::Punct("<") => Op::Lt,
            Tok::Punct("<=") => Op::Le,
            Tok::Punct(">") => Op::Gt,
            Tok::Punct(">=") => Op::Ge,
            _ => return Err(self.err("a comparison operator: == != < <= > >=")),
        };
        self.bump();
        if field != Field::Value && !matches!(op, Op::Eq | Op::Ne) {
            return Err(PolicyError::Syntax {
                line: op_tok.line,
                column: op_tok.col,
                expected: format!(
                    "`==` or `!=` on {} (ordering compares values only)",
                    field.name()
                ),
                found: format!("`{}`", op.symbol()),
            });
        }
        let rhs = self.parse_expr(earlier)?;
        Ok(Test { field, op, rhs })
    }

    fn parse_expr(&mut self, bound: &[Condition]) -> Result<Expr, PolicyError> {
        let t = self.peek().clone();
        let e = match &t.tok {
            Tok::Str(s) => Expr::Literal(Value::String(s.clone())),
            Tok::Int(n) => Expr::Literal(Value::from(*n)),
            Tok::Ident(s) if s == "true" => Expr::Literal(Value::Bool(true)),
            Tok::Ident(s) if s == "false" => Expr::Literal(Value::Bool(false)),
            Tok::Ident(name) => {
                if self.peek_at(1) == &Tok::Punct("(") {
                    return Err(self.err("a value"));
                }
                let name = name.clone();
                self.bump();
                self.expect_punct(".").map_err(|_| {
                    self.err(format!(
                        "`.` and a claim attribute after the claim variable `{name}`"
                    ))
                })?;
                let field = match &self.peek().tok {
                    Tok::Ident(f) => Field::parse(f),
                    _ => None,
                }
                .ok_or_else(|| self.err("a claim attribute: type, value, valueType or issuer"))?;
                if !bound
                    .iter()
                    .any(|c| !c.negated && c.binding.as_deref() == Some(name.as_str()))
                {
                    return Err(PolicyError::Syntax {
                        line: t.line,
                        column: t.col,
                        expected: "a claim variable bound by an earlier (non-negated) condition of this rule"
                            .into(),
                        found: format!("`{}`", bounded(&name, ECHO)),
                    });
                }
                self.bump();
                return self.no_operator_after(Expr::Ref(name, field));
            }
            _ => return Err(self.err("a value: string, integer, true, false or claim.attribute")),
        };
        self.bump();
        self.no_operator_after(e)
    }

    fn no_operator_after(&self, e: Expr) -> Result<Expr, PolicyError> {
        let t = self.peek();
        if let Tok::Punct(p @ ("+" | "=~")) = t.tok {
            return Err(PolicyError::Unsupported {
                construct: format!(
                    "operator `{p}` in an expression (only literals and claim.attribute are supported)"
                ),
                line: t.line,
            });
        }
        Ok(e)
    }

    fn parse_action(
        &mut self,
        section: Section,
        conds: &[Condition],
    ) -> Result<Action, PolicyError> {
        let t = self.peek().clone();
        let name = match &t.tok {
            Tok::Ident(s) => s.to_ascii_lowercase(),
            _ => {
                return Err(self.err(
                    "an action: permit(), deny(), add(...), issue(...) or issueproperty(...)",
                ));
            }
        };
        let allowed: &[&str] = match section {
            Section::Configuration => &["issueproperty"],
            Section::Authorization => &["permit", "deny", "add"],
            Section::Issuance => &["issue", "add"],
        };
        let known = ["permit", "deny", "add", "issue", "issueproperty"];
        if !known.contains(&name.as_str()) {
            return Err(PolicyError::Unsupported {
                construct: format!(
                    "action `{}` (supported: permit, deny, add, issue, issueproperty)",
                    bounded(&name, ECHO)
                ),
                line: t.line,
            });
        }
        if !allowed.contains(&name.as_str()) {
            return Err(PolicyError::Syntax {
                line: t.line,
                column: t.col,
                expected: format!("one of {} in {}", allowed.join(", "), section.name()),
                found: format!("`{name}`"),
            });
        }
        self.bump();
        self.expect_punct("(")?;
        let action = match name.as_str() {
            "permit" => Action::Permit,
            "deny" => Action::Deny,
            other => {
                let spec = self.parse_claim_spec(conds)?;
                match other {
                    "add" => Action::Add(spec),
                    "issue" => Action::Issue(spec),
                    _ => Action::IssueProperty(spec),
                }
            }
        };
        self.expect_punct(")")?;
        Ok(action)
    }

    fn parse_claim_spec(&mut self, conds: &[Condition]) -> Result<ClaimSpec, PolicyError> {
        let mut claim_type = None;
        let mut value = None;
        let mut value_type = None;
        let mut copy = None;
        loop {
            let t = self.peek().clone();
            let key = match &t.tok {
                Tok::Ident(s) => s.clone(),
                _ => return Err(self.err("type=, value=, valueType= or claim=")),
            };
            self.bump();
            self.expect_punct("=")?;
            match key.as_str() {
                "type" if claim_type.is_none() => claim_type = Some(self.parse_expr(conds)?),
                "value" if value.is_none() => value = Some(self.parse_expr(conds)?),
                "valueType" if value_type.is_none() => match &self.peek().tok {
                    Tok::Str(s) => {
                        value_type = Some(s.clone());
                        self.bump();
                    }
                    _ => return Err(self.err("a string valueType such as \"String\"")),
                },
                "claim" if copy.is_none() => {
                    let v = match &self.peek().tok {
                        Tok::Ident(v)
                            if conds.iter().any(|c| {
                                !c.negated && c.binding.as_deref() == Some(v.as_str())
                            }) =>
                        {
                            v.clone()
                        }
                        _ => {
                            return Err(self.err(
                                "a claim variable bound by a (non-negated) condition of this rule",
                            ));
                        }
                    };
                    self.bump();
                    copy = Some(v);
                }
                other => {
                    return Err(PolicyError::Syntax {
                        line: t.line,
                        column: t.col,
                        expected: "each of type=, value=, valueType= at most once, or claim="
                            .into(),
                        found: format!("`{}`", bounded(other, ECHO)),
                    });
                }
            }
            if !self.eat_punct(",") {
                break;
            }
        }
        let here = self.peek().clone();
        match (claim_type, value, copy) {
            (Some(claim_type), Some(value), None) => Ok(ClaimSpec::New {
                claim_type,
                value,
                value_type,
            }),
            (None, None, Some(c)) if value_type.is_none() => Ok(ClaimSpec::Copy(c)),
            _ => Err(PolicyError::Syntax {
                line: here.line,
                column: here.col,
                expected:
                    "either type=... and value=... (optionally valueType=...) or claim=VARIABLE"
                        .into(),
                found: "another combination".into(),
            }),
        }
    }
}

static EOF_TOKEN: Token = Token {
    tok: Tok::Eof,
    line: 0,
    col: 0,
    start: 0,
    end: 0,
};

/// Recognise constructs of the full MAA language that this subset does not implement.
fn unsupported_at(t: &Token, next: &Tok) -> Option<PolicyError> {
    match (&t.tok, next) {
        (Tok::Ident(name), Tok::Punct("(")) => {
            let lower = name.to_ascii_lowercase();
            if ["permit", "deny", "add", "issue", "issueproperty"].contains(&lower.as_str()) {
                return None;
            }
            Some(PolicyError::Unsupported {
                construct: format!(
                    "function call `{}(...)`: MAA functions (JmesPath, JsonToClaimValue, ...) are not supported; only literals and claim.attribute",
                    bounded(name, ECHO)
                ),
                line: t.line,
            })
        }
        (Tok::Punct("||"), _) => Some(PolicyError::Unsupported {
            construct: "`||` between conditions: write one rule per alternative".into(),
            line: t.line,
        }),
        (Tok::Punct(p @ ("=~" | "+")), _) => Some(PolicyError::Unsupported {
            construct: format!("operator `{p}` (supported: == != < <= > >=)"),
            line: t.line,
        }),
        _ => None,
    }
}

fn configuration_properties(rules: &[Rule]) -> Vec<ConfigurationProperty> {
    let mut out = Vec::new();
    for r in rules {
        if let Action::IssueProperty(ClaimSpec::New {
            claim_type, value, ..
        }) = &r.action
        {
            let name = match claim_type {
                Expr::Literal(Value::String(s)) => s.clone(),
                other => other.render(),
            };
            let value = match value {
                Expr::Literal(v) => v.clone(),
                other => Value::String(other.render()),
            };
            let mut note = "parsed but not enforced by Enclava".to_string();
            if !r.conditions.is_empty() {
                note.push_str("; its conditions are ignored");
            }
            out.push(ConfigurationProperty {
                name,
                value,
                line: r.line,
                note,
            });
        } else if let Action::IssueProperty(ClaimSpec::Copy(c)) = &r.action {
            out.push(ConfigurationProperty {
                name: format!("claim={c}"),
                value: Value::Null,
                line: r.line,
                note: "parsed but not enforced by Enclava".into(),
            });
        }
    }
    out
}

impl MaaPolicy {
    /// Parse policy text.
    pub fn parse(text: &str) -> Result<MaaPolicy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Syntax {
                line: 1,
                column: 1,
                expected: format!("a policy of at most {MAX_POLICY_BYTES} bytes"),
                found: format!("{} bytes", text.len()),
            });
        }
        let toks = lex(text)?;
        let mut p = Parser {
            src: text,
            toks,
            pos: 0,
            version: (1, 0),
        };
        p.parse_policy()
    }

    /// The configuration properties (`issueproperty` in `configurationrules`): parsed, noted, not
    /// enforced.
    pub fn configuration(&self) -> &[ConfigurationProperty] {
        &self.configuration
    }

    /// Evaluate against a map of MAA-named claims (see [`claims_from_map`]).
    pub fn evaluate_map(&self, claims: &serde_json::Map<String, Value>) -> Decision {
        self.evaluate(&claims_from_map(claims))
    }

    /// Evaluate against incoming claims (see the module docs for the semantics).
    pub fn evaluate(&self, incoming: &[IncomingClaim]) -> Decision {
        let mut ctx: Vec<IncomingClaim> = incoming.to_vec();
        let mut budget = MAX_BINDINGS;
        let mut permitted = false;
        let mut denials = Vec::new();
        for rule in &self.authorization_rules {
            let Some(bindings) = enumerate(rule, &ctx, &mut budget) else {
                return budget_exceeded(rule);
            };
            if bindings.is_empty() {
                continue;
            }
            let mut added = Vec::new();
            match &rule.action {
                Action::Permit => permitted = true,
                Action::Deny => denials.push(deny_explanation(rule, &bindings)),
                Action::Add(spec) => {
                    added.extend(bindings.iter().filter_map(|b| make_claim(spec, b)));
                }
                Action::Issue(_) | Action::IssueProperty(_) => {}
            }
            drop(bindings);
            ctx.extend(added);
        }
        if !denials.is_empty() {
            return Decision::deny(denials);
        }
        if !permitted {
            return Decision::deny(explain_no_permit(&self.authorization_rules, &ctx));
        }
        let mut issued = serde_json::Map::new();
        let mut multi = std::collections::HashSet::new();
        for rule in &self.issuance_rules {
            let Some(bindings) = enumerate(rule, &ctx, &mut budget) else {
                return budget_exceeded(rule);
            };
            let (spec, issue) = match &rule.action {
                Action::Issue(s) => (s, true),
                Action::Add(s) => (s, false),
                _ => continue,
            };
            let produced: Vec<IncomingClaim> = bindings
                .iter()
                .filter_map(|b| make_claim(spec, b))
                .collect();
            drop(bindings);
            for c in produced {
                if issue {
                    match issued.get_mut(&c.claim_type) {
                        None => {
                            issued.insert(c.claim_type.clone(), c.value.clone());
                        }
                        Some(existing) => {
                            if multi.contains(&c.claim_type) {
                                if let Value::Array(a) = existing {
                                    a.push(c.value.clone());
                                }
                            } else {
                                let prev = existing.take();
                                *existing = Value::Array(vec![prev, c.value.clone()]);
                                multi.insert(c.claim_type.clone());
                            }
                        }
                    }
                }
                ctx.push(c);
            }
        }
        let mut d = Decision::allow();
        d.issued_claims = issued;
        d
    }
}

fn budget_exceeded(rule: &Rule) -> Decision {
    Decision::deny(vec![FailedRule::new(
        format!("line {}: {}", rule.line, rule.text),
        "",
        format!("at most {MAX_BINDINGS} claim combinations to examine"),
        "more (evaluation stopped, denied)",
    )])
}

type Binding<'a> = Vec<(Option<&'a str>, Option<&'a IncomingClaim>)>;

/// All combinations of claims satisfying the rule's conditions, or None when the budget ran out.
fn enumerate<'a>(
    rule: &'a Rule,
    ctx: &'a [IncomingClaim],
    budget: &mut usize,
) -> Option<Vec<Binding<'a>>> {
    let mut out = Vec::new();
    let mut cur: Binding<'a> = Vec::new();
    if walk(&rule.conditions, ctx, &mut cur, &mut out, budget) {
        Some(out)
    } else {
        None
    }
}

fn walk<'a>(
    conds: &'a [Condition],
    ctx: &'a [IncomingClaim],
    cur: &mut Binding<'a>,
    out: &mut Vec<Binding<'a>>,
    budget: &mut usize,
) -> bool {
    let Some((cond, rest)) = conds.split_first() else {
        out.push(cur.clone());
        return true;
    };
    if cond.negated {
        let mut any = false;
        for c in visible(ctx) {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            if satisfies(cond, c, cur) {
                any = true;
                break;
            }
        }
        if any {
            return true;
        }
        cur.push((None, None));
        let ok = walk(rest, ctx, cur, out, budget);
        cur.pop();
        return ok;
    }
    for c in visible(ctx) {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if satisfies(cond, c, cur) {
            cur.push((cond.binding.as_deref(), Some(c)));
            let ok = walk(rest, ctx, cur, out, budget);
            cur.pop();
            if !ok {
                return false;
            }
        }
    }
    true
}

fn visible(ctx: &[IncomingClaim]) -> impl Iterator<Item = &IncomingClaim> {
    ctx.iter()
}

fn lookup<'a>(b: &Binding<'a>, name: &str) -> Option<&'a IncomingClaim> {
    b.iter()
        .rev()
        .find(|(n, c)| *n == Some(name) && c.is_some())
        .and_then(|(_, c)| *c)
}

fn attribute(c: &IncomingClaim, f: Field) -> Value {
    match f {
        Field::Type => Value::String(c.claim_type.clone()),
        Field::Value => c.value.clone(),
        Field::ValueType => Value::String(c.value_type()),
        Field::Issuer => Value::String(c.issuer.clone()),
    }
}

fn resolve(e: &Expr, b: &Binding<'_>) -> Option<Value> {
    match e {
        Expr::Literal(v) => Some(v.clone()),
        Expr::Ref(name, f) => lookup(b, name).map(|c| attribute(c, *f)),
    }
}

/// Unresolvable references count as satisfied when `lenient` (used for explanations only).
fn test_holds(t: &Test, c: &IncomingClaim, b: &Binding<'_>, lenient: bool) -> bool {
    let Some(rhs) = resolve(&t.rhs, b) else {
        return lenient;
    };
    let lhs = attribute(c, t.field);
    match t.op {
        Op::Eq => values_equal(&lhs, &rhs),
        Op::Ne => !values_equal(&lhs, &rhs),
        op => match (lhs.as_i64(), rhs.as_i64()) {
            (Some(l), Some(r)) => match op {
                Op::Lt => l < r,
                Op::Le => l <= r,
                Op::Gt => l > r,
                _ => l >= r,
            },
            _ => false,
        },
    }
}

fn satisfies(cond: &Condition, c: &IncomingClaim, b: &Binding<'_>) -> bool {
    cond.tests.iter().all(|t| test_holds(t, c, b, false))
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(l), Some(r)) => l == r,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn make_claim(spec: &ClaimSpec, b: &Binding<'_>) -> Option<IncomingClaim> {
    match spec {
        ClaimSpec::Copy(name) => lookup(b, name).map(|c| IncomingClaim {
            issuer: ISSUER_POLICY.to_string(),
            ..c.clone()
        }),
        ClaimSpec::New {
            claim_type,
            value,
            value_type,
        } => {
            let t = match resolve(claim_type, b)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some(IncomingClaim {
                claim_type: t,
                value: resolve(value, b)?,
                value_type: value_type.clone(),
                issuer: ISSUER_POLICY.to_string(),
            })
        }
    }
}

fn deny_explanation(rule: &Rule, bindings: &[Binding<'_>]) -> FailedRule {
    let mut paths = Vec::new();
    let mut found = Vec::new();
    if let Some(b) = bindings.first() {
        for (_, c) in b.iter() {
            if let Some(c) = c {
                paths.push(c.claim_type.clone());
                found.push(format!(
                    "{} = {}",
                    c.claim_type,
                    bounded(&render(&c.value), ECHO)
                ));
            }
        }
    }
    FailedRule::new(
        format!("authorizationrules line {}: {}", rule.line, rule.text),
        paths.join(", "),
        "no deny() rule to match",
        if found.is_empty() {
            "the rule matched".to_string()
        } else {
            found.join(", ")
        },
    )
}

fn explain_no_permit(rules: &[Rule], ctx: &[IncomingClaim]) -> Vec<FailedRule> {
    let mut out = Vec::new();
    let permit_rules: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.action == Action::Permit)
        .collect();
    if permit_rules.is_empty() {
        out.push(FailedRule::new(
            "authorizationrules",
            "",
            "a permit() rule that matches",
            "no permit() rule in the policy",
        ));
        return out;
    }
    for rule in permit_rules {
        let name = format!("authorizationrules line {}: {}", rule.line, rule.text);
        let before = out.len();
        let empty: Binding<'_> = Vec::new();
        for cond in &rule.conditions {
            let matching: Vec<&IncomingClaim> = visible(ctx)
                .filter(|c| cond.tests.iter().all(|t| test_holds(t, c, &empty, true)))
                .collect();
            let path = cond.claim_type().unwrap_or("").to_string();
            if cond.negated {
                if let Some(c) = matching.first() {
                    out.push(FailedRule::new(
                        name.clone(),
                        path,
                        format!("no claim matching [{}]", cond.render_tests(false)),
                        format!("{} = {}", c.claim_type, bounded(&render(&c.value), ECHO)),
                    ));
                }
                continue;
            }
            if !matching.is_empty() {
                continue;
            }
            let same_type: Vec<String> = match cond.claim_type() {
                Some(t) => visible(ctx)
                    .filter(|c| c.claim_type == t)
                    .take(8)
                    .map(|c| bounded(&render(&c.value), ECHO))
                    .collect(),
                None => Vec::new(),
            };
            let expected = match cond.render_tests(true) {
                s if s.is_empty() => "a claim of this type".to_string(),
                s => s,
            };
            let expected = if path.is_empty() {
                format!("a claim matching [{}]", cond.render_tests(false))
            } else {
                expected
            };
            let found = if same_type.is_empty() {
                "no such claim".to_string()
            } else {
                same_type.join(", ")
            };
            out.push(FailedRule::new(name.clone(), path, expected, found));
        }
        if out.len() == before {
            out.push(FailedRule::new(
                name,
                "",
                "all conditions to hold for one combination of claims",
                "each condition holds alone, but no combination satisfies them together",
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Incoming claims

/// Issuer of claims produced by the attestation service (the incoming claims).
pub const ISSUER_SERVICE: &str = "AttestationService";
/// Issuer of claims added or issued by the policy.
pub const ISSUER_POLICY: &str = "AttestationPolicy";

/// One claim as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingClaim {
    pub claim_type: String,
    pub value: Value,
    /// Explicit value type; when `None` it is derived from the value (see [`IncomingClaim::value_type`]).
    pub value_type: Option<String>,
    pub issuer: String,
}

impl IncomingClaim {
    /// A claim from the attestation service.
    pub fn new(claim_type: impl Into<String>, value: Value) -> IncomingClaim {
        IncomingClaim {
            claim_type: claim_type.into(),
            value,
            value_type: None,
            issuer: ISSUER_SERVICE.to_string(),
        }
    }

    /// The value type: explicit, or `Boolean`, `Integer`, `String`, `Double`, `Array`, `Object`,
    /// `Null` derived from the value.
    pub fn value_type(&self) -> String {
        if let Some(t) = &self.value_type {
            return t.clone();
        }
        match &self.value {
            Value::Bool(_) => "Boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
            Value::Number(_) => "Double",
            Value::String(_) => "String",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
            Value::Null => "Null",
        }
        .to_string()
    }
}

/// The incoming claims for a map of MAA-named claims (`x-ms-sevsnpvm-is-debuggable`, ...): one
/// claim per member, issuer `AttestationService`. Nested objects stay whole values.
pub fn claims_from_map(map: &serde_json::Map<String, Value>) -> Vec<IncomingClaim> {
    map.iter()
        .map(|(k, v)| IncomingClaim::new(k.clone(), v.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Upload JWS and hash

/// The parts of an MAA policy upload (`PUT /policies/{type}` body). Signature checking is the
/// caller's job: `signing_input` and `signature` are returned for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyUpload {
    pub header: serde_json::Map<String, Value>,
    /// `none` or `RS256`.
    pub alg: String,
    /// The `x5c` certificates of the header (base64 DER), empty when absent.
    pub x5c: Vec<String>,
    /// The decoded policy text.
    pub policy_text: String,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub signing_input: String,
    /// The decoded signature (empty for `alg: none`).
    pub signature: Vec<u8>,
}

fn b64url_decode(part: &str, what: &str) -> Result<Vec<u8>, PolicyError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| PolicyError::Jws {
            expected: format!("{what} in base64url"),
            found: format!("undecodable text ({e})"),
        })
}

/// The signer's certificate chain of a JWS header: `x5c`, or `jwk.x5c` (the form the Azure
/// Attestation Python SDK sends). Both present and different is refused: which one would be the
/// signer is ambiguous.
fn header_x5c(header: &serde_json::Map<String, Value>) -> Result<Option<&Value>, PolicyError> {
    let top = header.get("x5c");
    let in_jwk = match header.get("jwk") {
        None => None,
        Some(Value::Object(j)) => j.get("x5c"),
        Some(other) => {
            return Err(PolicyError::Jws {
                expected: "jwk as a JSON object".into(),
                found: crate::rego::json_kind(other).into(),
            });
        }
    };
    match (top, in_jwk) {
        (Some(a), Some(b)) if a != b => Err(PolicyError::Jws {
            expected: "one signer certificate chain (x5c and jwk.x5c equal when both are sent)"
                .into(),
            found: "x5c and jwk.x5c naming different certificates".into(),
        }),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// Split and decode a policy upload JWS whose payload is `{"AttestationPolicy": base64url(text)}`.
pub fn parse_policy_jws(jws: &str) -> Result<PolicyUpload, PolicyError> {
    let jws = jws.trim();
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(PolicyError::Jws {
            expected: "three dot-separated parts (header.payload.signature)".into(),
            found: format!("{} part(s)", parts.len()),
        });
    };
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&b64url_decode(h, "the header")?).map_err(|e| PolicyError::Jws {
            expected: "a JSON object header".into(),
            found: format!("invalid JSON ({e})"),
        })?;
    // The Azure Attestation Python SDK spells RS256 "RSA256" (real MAA accepts it): the same
    // algorithm, RSASSA-PKCS1-v1_5 with SHA-256, reported here under its JOSE name.
    let alg = match header.get("alg") {
        Some(Value::String(a)) if a == "none" || a == "RS256" => a.clone(),
        Some(Value::String(a)) if a == "RSA256" => "RS256".to_string(),
        Some(other) => {
            return Err(PolicyError::Jws {
                expected: "alg \"none\", \"RS256\" or \"RSA256\"".into(),
                found: format!("alg {}", bounded(&other.to_string(), ECHO)),
            });
        }
        None => {
            return Err(PolicyError::Jws {
                expected: "an alg header".into(),
                found: "none".into(),
            });
        }
    };
    let signature = b64url_decode(s, "the signature")?;
    if alg == "none" && !signature.is_empty() {
        return Err(PolicyError::Jws {
            expected: "an empty signature for alg none".into(),
            found: format!("{} signature bytes", signature.len()),
        });
    }
    if alg == "RS256" && signature.is_empty() {
        return Err(PolicyError::Jws {
            expected: "a signature for alg RS256".into(),
            found: "an empty signature".into(),
        });
    }
    let x5c = match header_x5c(&header)? {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| match c {
                Value::String(s) => Ok(s.clone()),
                other => Err(PolicyError::Jws {
                    expected: "x5c entries as base64 strings".into(),
                    found: crate::rego::json_kind(other).into(),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(PolicyError::Jws {
                expected: "x5c as an array".into(),
                found: crate::rego::json_kind(other).into(),
            });
        }
    };
    let payload: Value =
        serde_json::from_slice(&b64url_decode(p, "the payload")?).map_err(|e| {
            PolicyError::Jws {
                expected: "a JSON payload".into(),
                found: format!("invalid JSON ({e})"),
            }
        })?;
    let encoded = match payload.get("AttestationPolicy") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(PolicyError::Jws {
                expected: "AttestationPolicy as a base64url string".into(),
                found: crate::rego::json_kind(other).into(),
            });
        }
        None => {
            return Err(PolicyError::Jws {
                expected: "a payload with an AttestationPolicy member".into(),
                found: "no AttestationPolicy".into(),
            });
        }
    };
    let policy_text =
        String::from_utf8(b64url_decode(encoded, "AttestationPolicy")?).map_err(|_| {
            PolicyError::Jws {
                expected: "AttestationPolicy to decode to UTF-8 text".into(),
                found: "invalid UTF-8".into(),
            }
        })?;
    Ok(PolicyUpload {
        header,
        alg,
        x5c,
        policy_text,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// An unsigned (`alg: none`) policy upload JWS for `policy_text`.
pub fn unsigned_policy_jws(policy_text: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let payload =
        serde_json::json!({ "AttestationPolicy": URL_SAFE_NO_PAD.encode(policy_text.as_bytes()) });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// The `x-ms-policy-hash` claim: base64url(SHA-256(UTF-8(base64url(UTF-8(policy))))).
pub fn maa_policy_hash(policy_text: &str) -> String {
    let inner = URL_SAFE_NO_PAD.encode(policy_text.as_bytes());
    URL_SAFE_NO_PAD.encode(Sha256::digest(inner.as_bytes()))
}
