//! A deliberately small, strict XML reader and the XML Canonicalization 1.1 (inclusive, without
//! comments; <http://www.w3.org/2006/12/xml-c14n11>) that NVIDIA's signed RIMs use.
//!
//! Why our own reader: the signature check must canonicalize exactly the tree the appraisal then
//! reads (no parser differential between "what was signed" and "what was compared"), and the RIMs
//! use a tiny subset of XML. Everything outside that subset is refused rather than guessed:
//!
//! - UTF-8 only, no byte order mark; an optional `<?xml ...?>` declaration at the very start;
//! - no DOCTYPE (so no entity declarations), no processing instructions, no CDATA sections;
//! - comments are skipped (canonicalization "without comments" drops them, and nothing reads them);
//! - the five predefined entities and decimal/hex character references; nothing else;
//! - no `xml:*` attributes (C14N 1.1 would have to inherit `xml:lang`/`xml:space` into the
//!   signed subset) and no namespace undeclarations (`xmlns:p=""`, XML 1.1 only);
//! - bounded size and depth.
//!
//! Parsing follows XML 1.0 section 2.11 (CR LF and CR become LF) and 3.3.3 (tab, LF and CR in an
//! attribute value become spaces; character references keep what they encode), which is the input
//! model canonicalization is defined on.
//!
//! Canonical form (C14N 1.1 section 2 / C14N 1.0 section 2.3): elements are written as start and
//! end tag pairs; namespace declarations first, sorted by prefix with the default namespace first,
//! emitted where the nearest output ancestor did not already emit the same binding (for the apex of
//! a document subset, every in-scope binding); attributes sorted by (namespace URI, local name),
//! unqualified ones first; text escaped `&amp; &lt; &gt; &#xD;`, attribute values escaped
//! `&amp; &lt; &quot; &#x9; &#xA; &#xD;`; whitespace inside the document element is kept, outside
//! it dropped.

use std::collections::BTreeMap;

/// Inputs larger than this are refused (the RIMs are about 20-30 KB).
pub(crate) const MAX_XML_BYTES: usize = 1 << 20;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    /// The qualified name as written (`ns2:Hash0`).
    pub name: String,
    /// The normalized value (entities decoded).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// The qualified name as written (`ns0:Resource`).
    pub name: String,
    /// Namespace declarations made on this element: (prefix, URI); prefix "" is the default.
    pub ns_decls: Vec<(String, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// Every namespace binding in scope here (inherited and declared).
    pub in_scope: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn prefix(&self) -> &str {
        self.name.split_once(':').map(|(p, _)| p).unwrap_or("")
    }

    pub fn local_name(&self) -> &str {
        self.name
            .split_once(':')
            .map(|(_, l)| l)
            .unwrap_or(&self.name)
    }

    /// The namespace URI of the element name ("" when none).
    pub fn namespace(&self) -> &str {
        self.in_scope
            .get(self.prefix())
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.namespace() == ns && self.local_name() == local
    }

    /// The namespace URI of an attribute name (unprefixed attributes have none).
    pub fn attr_namespace(&self, a: &Attr) -> &str {
        match a.name.split_once(':') {
            Some((p, _)) => self.in_scope.get(p).map(String::as_str).unwrap_or(""),
            None => "",
        }
    }

    /// An unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// An attribute by namespace URI and local name.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| {
                let l = a.name.split_once(':').map(|(_, l)| l).unwrap_or(&a.name);
                l == local && self.attr_namespace(a) == ns
            })
            .map(|a| a.value.as_str())
    }

    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The concatenated text content of this element's direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Parse a document into its document element.
pub(crate) fn parse(input: &[u8]) -> Result<Element, String> {
    if input.len() > MAX_XML_BYTES {
        return Err(format!(
            "expected at most {MAX_XML_BYTES} bytes, found {}",
            input.len()
        ));
    }
    let text = std::str::from_utf8(input).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.starts_with('\u{feff}') {
        return Err("expected no byte order mark, found one".into());
    }
    // XML 1.0 section 2.11: line ends are normalized before parsing.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut p = Parser {
        s: text.as_bytes(),
        t: &text,
        pos: 0,
    };
    // Only the XML declaration itself ("<?xml" + whitespace): a processing instruction whose
    // target merely starts with "xml" would be part of the canonical form, so it is refused below.
    if p.starts_with("<?xml ") || p.starts_with("<?xml\t") || p.starts_with("<?xml\n") {
        let end = p
            .find("?>")
            .ok_or("unterminated XML declaration".to_string())?;
        p.pos = end + 2;
    }
    p.misc()?;
    if !p.starts_with("<") || p.starts_with("<!") || p.starts_with("<?") {
        return Err(format!(
            "expected the document element at byte {}, found {}",
            p.pos,
            p.describe()
        ));
    }
    let root = p.element(&BTreeMap::new(), 0)?;
    p.misc()?;
    if p.pos != p.s.len() {
        return Err(format!(
            "expected the end of the document after the document element, found {} at byte {}",
            p.describe(),
            p.pos
        ));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    /// The same input as text: searching it uses core's optimized memchr, which keeps the
    /// byte-flip tests (tens of thousands of parses) fast in unoptimized builds.
    t: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn starts_with(&self, lit: &str) -> bool {
        self.s
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(lit.as_bytes()))
    }

    fn find(&self, lit: &str) -> Option<usize> {
        let rest = self.s.get(self.pos..)?;
        rest.windows(lit.len())
            .position(|w| w == lit.as_bytes())
            .map(|i| self.pos + i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn describe(&self) -> String {
        match self.s.get(self.pos..) {
            None | Some([]) => "the end of the input".into(),
            Some(r) => {
                let n = r.len().min(12);
                format!(
                    "{:?}",
                    String::from_utf8_lossy(r.get(..n).unwrap_or_default())
                )
            }
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n')) {
            self.pos += 1;
        }
    }

    /// Whitespace and comments outside the document element.
    fn misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_ws();
            if self.starts_with("<!--") {
                self.comment()?;
            } else if self.starts_with("<!") {
                return Err(format!(
                    "expected no DOCTYPE or other declaration, found {} at byte {}",
                    self.describe(),
                    self.pos
                ));
            } else if self.starts_with("<?") {
                return Err(format!(
                    "expected no processing instruction, found one at byte {}",
                    self.pos
                ));
            } else {
                return Ok(());
            }
        }
    }

    fn comment(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 4;
        let end = self
            .find("--")
            .ok_or_else(|| format!("unterminated comment at byte {start}"))?;
        if self.s.get(end + 2) != Some(&b'>') {
            return Err(format!("\"--\" inside the comment at byte {start}"));
        }
        self.pos = end + 3;
        Ok(())
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'-') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let n = self.s.get(start..self.pos).unwrap_or_default();
        let valid = n
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            && n.iter().filter(|c| **c == b':').count() <= 1
            && !n.ends_with(b":");
        if !valid {
            return Err(format!(
                "expected a name at byte {start}, found {}",
                Parser {
                    s: self.s,
                    t: self.t,
                    pos: start
                }
                .describe()
            ));
        }
        Ok(String::from_utf8_lossy(n).into_owned())
    }

    fn expect(&mut self, lit: &str) -> Result<(), String> {
        if self.starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(format!(
                "expected {lit:?} at byte {}, found {}",
                self.pos,
                self.describe()
            ))
        }
    }

    fn element(
        &mut self,
        parent_scope: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<Element, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("expected at most {MAX_DEPTH} nested elements"));
        }
        self.expect("<")?;
        let name = self.name()?;
        let mut ns_decls: Vec<(String, String)> = Vec::new();
        let mut attrs: Vec<Attr> = Vec::new();
        let empty;
        loop {
            let before = self.pos;
            self.skip_ws();
            if self.starts_with("/>") {
                self.pos += 2;
                empty = true;
                break;
            }
            if self.starts_with(">") {
                self.pos += 1;
                empty = false;
                break;
            }
            if self.pos == before {
                return Err(format!(
                    "expected whitespace, \">\" or \"/>\" in <{name}> at byte {}, found {}",
                    self.pos,
                    self.describe()
                ));
            }
            let an = self.name()?;
            self.skip_ws();
            self.expect("=")?;
            self.skip_ws();
            let value = self.attr_value()?;
            if an == "xmlns" || an.starts_with("xmlns:") {
                let prefix = an.strip_prefix("xmlns:").unwrap_or("").to_string();
                if prefix == "xml" || prefix == "xmlns" {
                    return Err(format!("reserved namespace prefix {prefix:?} declared"));
                }
                if !prefix.is_empty() && value.is_empty() {
                    return Err(format!(
                        "namespace undeclaration xmlns:{prefix}=\"\" (XML 1.1) is not accepted"
                    ));
                }
                if ns_decls.iter().any(|(p, _)| *p == prefix) {
                    return Err(format!("duplicate declaration of {an} in <{name}>"));
                }
                ns_decls.push((prefix, value));
            } else {
                if an.starts_with("xml:") {
                    return Err(format!("xml:* attribute {an} is not accepted"));
                }
                if attrs.iter().any(|a| a.name == an) {
                    return Err(format!("duplicate attribute {an} in <{name}>"));
                }
                attrs.push(Attr { name: an, value });
            }
        }
        let mut in_scope = parent_scope.clone();
        for (p, u) in &ns_decls {
            in_scope.insert(p.clone(), u.clone());
        }
        // Every prefix used must be bound (namespace well-formedness).
        let bound = |q: &str| match q.split_once(':') {
            Some((p, _)) => in_scope.contains_key(p),
            None => true,
        };
        if !bound(&name) {
            return Err(format!("unbound namespace prefix in element name {name}"));
        }
        if let Some(a) = attrs.iter().find(|a| !bound(&a.name)) {
            return Err(format!(
                "unbound namespace prefix in attribute {} of <{name}>",
                a.name
            ));
        }
        let mut el = Element {
            name,
            ns_decls,
            attrs,
            children: Vec::new(),
            in_scope,
        };
        // Two attributes with the same expanded name are an error too (Namespaces in XML 6.3).
        for (i, a) in el.attrs.iter().enumerate() {
            let key = (
                el.attr_namespace(a),
                a.name.rsplit(':').next().unwrap_or(""),
            );
            if el.attrs.iter().skip(i + 1).any(|b| {
                (
                    el.attr_namespace(b),
                    b.name.rsplit(':').next().unwrap_or(""),
                ) == key
            }) {
                return Err(format!(
                    "two attributes with the expanded name {{{}}}{} in <{}>",
                    key.0, key.1, el.name
                ));
            }
        }
        if empty {
            return Ok(el);
        }
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated element <{}>", el.name)),
                Some(b'<') => {
                    if self.starts_with("</") {
                        if !text.is_empty() {
                            el.children.push(Node::Text(std::mem::take(&mut text)));
                        }
                        self.pos += 2;
                        let end = self.name()?;
                        if end != el.name {
                            return Err(format!(
                                "expected </{}>, found </{end}> at byte {}",
                                el.name, self.pos
                            ));
                        }
                        self.skip_ws();
                        self.expect(">")?;
                        return Ok(el);
                    } else if self.starts_with("<!--") {
                        self.comment()?;
                    } else if self.starts_with("<!") || self.starts_with("<?") {
                        return Err(format!(
                            "expected no CDATA section, declaration or processing instruction, \
                             found {} at byte {}",
                            self.describe(),
                            self.pos
                        ));
                    } else {
                        if !text.is_empty() {
                            el.children.push(Node::Text(std::mem::take(&mut text)));
                        }
                        let child = self.element(&el.in_scope, depth + 1)?;
                        el.children.push(Node::Element(child));
                    }
                }
                Some(b'&') => text.push(self.reference()?),
                Some(_) => {
                    let rest = self
                        .t
                        .get(self.pos..)
                        .ok_or_else(|| format!("byte {} is not a character boundary", self.pos))?;
                    // Search '&' only up to the next '<' (searching the whole rest each time
                    // would make parsing quadratic).
                    let lt = rest.find('<').unwrap_or(rest.len());
                    let end = rest.get(..lt).and_then(|c| c.find('&')).unwrap_or(lt);
                    let chunk = rest.get(..end).unwrap_or_default();
                    if chunk.contains("]]>") {
                        return Err("\"]]>\" in text content".into());
                    }
                    text.push_str(chunk);
                    self.pos += end;
                }
            }
        }
    }

    fn attr_value(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted attribute value at byte {}, found {}",
                    self.pos,
                    self.describe()
                ));
            }
        };
        self.pos += 1;
        let mut v = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated attribute value".into()),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(v);
                }
                Some(b'<') => {
                    return Err(format!("\"<\" in an attribute value at byte {}", self.pos));
                }
                Some(b'&') => v.push(self.reference()?),
                Some(b'\t' | b'\n') => {
                    // XML 1.0 section 3.3.3 (no DTD, so every attribute is CDATA).
                    v.push(' ');
                    self.pos += 1;
                }
                Some(_) => {
                    let rest = self
                        .t
                        .get(self.pos..)
                        .ok_or_else(|| format!("byte {} is not a character boundary", self.pos))?;
                    let q = rest.find(char::from(quote)).unwrap_or(rest.len());
                    let within = rest.get(..q).unwrap_or_default();
                    let end = ['<', '&', '\t', '\n']
                        .into_iter()
                        .filter_map(|c| within.find(c))
                        .min()
                        .unwrap_or(q);
                    v.push_str(rest.get(..end).unwrap_or_default());
                    self.pos += end;
                }
            }
        }
    }

    fn reference(&mut self) -> Result<char, String> {
        let start = self.pos;
        let end = self
            .s
            .get(start..)
            .and_then(|r| r.iter().take(12).position(|c| *c == b';'))
            .map(|i| start + i)
            .ok_or_else(|| format!("unterminated reference at byte {start}"))?;
        let body = std::str::from_utf8(self.s.get(start + 1..end).unwrap_or_default())
            .map_err(|_| format!("bad reference at byte {start}"))?;
        let c = match body {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(h) = body.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = body.strip_prefix('#') {
                    d.parse::<u32>().ok()
                } else {
                    None
                };
                n.and_then(char::from_u32)
                    .filter(|c| {
                        matches!(*c, '\t' | '\n' | '\r') || (*c >= ' ' && *c != '\u{fffe}' && *c != '\u{ffff}')
                    })
                    .ok_or_else(|| {
                        format!("expected a predefined entity or a character reference, found &{body}; at byte {start}")
                    })?
            }
        };
        self.pos = end + 1;
        Ok(c)
    }
}

/// Canonicalize `el` as the apex of a document subset: every in-scope namespace binding is emitted
/// on it. `skip` removes one element (by address) with its subtree: the enveloped-signature
/// transform.
pub(crate) fn c14n(el: &Element, skip: Option<&Element>) -> Vec<u8> {
    let mut out = String::with_capacity(32 * 1024);
    write_element(el, &BTreeMap::new(), skip, &mut out);
    out.into_bytes()
}

fn write_element(
    el: &Element,
    rendered: &BTreeMap<String, String>,
    skip: Option<&Element>,
    out: &mut String,
) {
    out.push('<');
    out.push_str(&el.name);
    let mut now = rendered.clone();
    for (prefix, uri) in &el.in_scope {
        if prefix.is_empty() && uri.is_empty() {
            // xmlns="" only undoes a non-empty default emitted by an output ancestor.
            if rendered.get("").is_some_and(|u| !u.is_empty()) {
                out.push_str(" xmlns=\"\"");
                now.remove("");
            }
            continue;
        }
        if rendered.get(prefix) != Some(uri) {
            if prefix.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(prefix);
                out.push_str("=\"");
            }
            escape_attr(uri, out);
            out.push('"');
            now.insert(prefix.clone(), uri.clone());
        }
    }
    let mut attrs: Vec<&Attr> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| {
        let ka = (
            el.attr_namespace(a),
            a.name.rsplit(':').next().unwrap_or(""),
        );
        let kb = (
            el.attr_namespace(b),
            b.name.rsplit(':').next().unwrap_or(""),
        );
        ka.cmp(&kb)
    });
    for a in attrs {
        out.push(' ');
        out.push_str(&a.name);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Text(t) => escape_text(t, out),
            Node::Element(c) => {
                if skip.is_some_and(|s| std::ptr::eq(s, c)) {
                    continue;
                }
                write_element(c, &now, skip, out);
            }
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

fn escape_text(t: &str, out: &mut String) {
    if !(t.contains('&') || t.contains('<') || t.contains('>') || t.contains('\r')) {
        out.push_str(t);
        return;
    }
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(t: &str, out: &mut String) {
    if !["&", "<", "\"", "\t", "\n", "\r"]
        .iter()
        .any(|p| t.contains(p))
    {
        out.push_str(t);
        return;
    }
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_follows_the_c14n_rules() {
        let doc = "<?xml version=\"1.0\"?>\r\n<!-- c -->\n<r xmlns:b=\"u:b\" xmlns=\"u:d\" z=\"1\" b:a=\"x&#9;y\" a='q\"\n'>\r\n  <e/><b:f xmlns:b=\"u:b\">t&lt;&amp;&gt;&#13;</b:f><g xmlns=\"\"/></r>\n";
        let root = parse(doc.as_bytes()).unwrap();
        let c = String::from_utf8(c14n(&root, None)).unwrap();
        assert_eq!(
            c,
            "<r xmlns=\"u:d\" xmlns:b=\"u:b\" a=\"q&quot; \" z=\"1\" b:a=\"x&#x9;y\">\n  <e></e><b:f>t&lt;&amp;&gt;&#xD;</b:f><g xmlns=\"\"></g></r>"
        );
        // As the apex of a subset, a child carries every in-scope binding.
        let Node::Element(f) = &root.children[2] else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(c14n(f, None)).unwrap(),
            "<b:f xmlns=\"u:d\" xmlns:b=\"u:b\">t&lt;&amp;&gt;&#xD;</b:f>"
        );
    }

    #[test]
    fn refuses_what_rims_never_contain() {
        for bad in [
            "<!DOCTYPE r [<!ENTITY x \"y\">]><r>&x;</r>",
            "<r><![CDATA[x]]></r>",
            "<r><?pi x?></r>",
            "<r xml:lang=\"en\"/>",
            "<r xmlns:p=\"\"/>",
            "<p:r/>",
            "<r a=\"1\" a=\"2\"/>",
            "<r xmlns:p=\"u\" xmlns:q=\"u\" p:a=\"1\" q:a=\"2\"/>",
            "<r>",
            "<r></s>",
            "<r/><s/>",
            "<r>&bogus;</r>",
            "<r>&#0;</r>",
            "<?xml-stylesheet href=\"x\"?><r/>",
            "<r/>trailing",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
