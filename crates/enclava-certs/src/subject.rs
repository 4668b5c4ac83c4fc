//! Key Vault subject strings ("CN=a, O=b, OU=c, L=d, ST=e, C=f, E=x@y") and X.509 names.
//!
//! The string lists the most specific attribute first, as Key Vault, .NET and RFC 4514 do, so
//! the DER name is the string's attributes in reverse order ("CN=a, O=b" is encoded O=b then
//! CN=a, and OpenSSL prints it `O = b, CN = a`). Separators are `,` or `;`; a value may be quoted
//! ("CN=\"a, b\"", `""` or `\"` for a quote inside) or use backslash escapes (`CN=a\, b`).
//! An unquoted `+` joins attributes into one multi-valued RDN ("CN=a + UID=b"), as RFC 4514
//! writes them, so the subject of any imported certificate reads back. (Attribute values that
//! are not strings render as RFC 4514 `#<hex DER>` and would read back as that text.)

use std::fmt;
use std::str::FromStr;

use der::asn1::{Any, Ia5StringRef, ObjectIdentifier, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::{CertError, Result};

const EMAIL_OID: &str = "1.2.840.113549.1.9.1";
const DC_OID: &str = "0.9.2342.19200300.100.1.25";
const COUNTRY_OID: &str = "2.5.4.6";
const SERIAL_OID: &str = "2.5.4.5";

/// Short names Key Vault and .NET accept, first name of each OID is the one rendered.
const NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", SERIAL_OID),
    ("C", COUNTRY_OID),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("T", "2.5.4.12"),
    ("TITLE", "2.5.4.12"),
    ("G", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("E", EMAIL_OID),
    ("EMAIL", EMAIL_OID),
    ("EMAILADDRESS", EMAIL_OID),
    ("DC", DC_OID),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

/// One attribute of a subject: its type (dotted OID) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectAttribute {
    /// The attribute type as a dotted OID ("2.5.4.3" for CN).
    pub oid: String,
    /// The value, unescaped.
    pub value: String,
    /// In the same RDN as the attribute before it (written `+` rather than `,`).
    pub multi_valued: bool,
}

impl SubjectAttribute {
    /// The short name ("CN") of a known attribute type, else `OID.<dotted>`.
    pub fn name(&self) -> String {
        NAMES
            .iter()
            .find(|(_, oid)| *oid == self.oid)
            .map_or_else(|| format!("OID.{}", self.oid), |(n, _)| (*n).to_string())
    }
}

/// A Key Vault subject: attributes in string order (most specific first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Subject {
    pub attributes: Vec<SubjectAttribute>,
}

impl Subject {
    /// Read a Key Vault subject string. An empty string is the empty subject (a certificate
    /// named only by its SANs).
    pub fn parse(text: &str) -> Result<Self> {
        let mut attributes: Vec<SubjectAttribute> = Vec::new();
        for (plus, part) in split_top_level(text)? {
            let part = part.trim();
            let multi_valued = plus;
            if multi_valued && (part.is_empty() || attributes.is_empty()) {
                return Err(CertError::Subject(
                    "expected an attribute on both sides of '+', found none".into(),
                ));
            }
            if part.is_empty() {
                // "CN=a, , O=b" and a trailing separator are tolerated, as .NET does.
                continue;
            }
            let (key, raw) = part.split_once('=').ok_or_else(|| {
                CertError::Subject(format!("expected NAME=value, found {:?}", truncate(part)))
            })?;
            let oid = attribute_oid(key.trim())?;
            let value = unquote(raw.trim())?;
            if value.is_empty() {
                return Err(CertError::Subject(format!(
                    "expected a value after {}=, found none",
                    key.trim()
                )));
            }
            check_value(&oid, &value)?;
            attributes.push(SubjectAttribute {
                oid,
                value,
                multi_valued,
            });
        }
        let subject = Self { attributes };
        // Refuse here what could not be encoded later (a repeated attribute within one '+' group).
        subject.to_name()?;
        Ok(subject)
    }

    /// The first common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.oid == "2.5.4.3")
            .map(|a| a.value.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// The X.509 name: the attributes in reverse string order, one per RDN. C and SERIALNUMBER
    /// are PrintableString, E and DC IA5String (as RFC 5280 requires), everything else UTF8String.
    pub fn to_name(&self) -> Result<Name> {
        // Group the attributes into RDNs in string order, then reverse the RDNs.
        let mut groups: Vec<Vec<AttributeTypeAndValue>> = Vec::new();
        for a in &self.attributes {
            let oid = ObjectIdentifier::new(&a.oid).map_err(|_| {
                CertError::Subject(format!("expected a dotted OID, found {:?}", a.oid))
            })?;
            let atv = AttributeTypeAndValue {
                oid,
                value: encode_value(&a.oid, &a.value)?,
            };
            match groups.last_mut() {
                Some(g) if a.multi_valued => g.push(atv),
                _ => groups.push(vec![atv]),
            }
        }
        let mut rdns = Vec::with_capacity(groups.len());
        for g in groups.into_iter().rev() {
            let set = SetOfVec::try_from(g).map_err(|e| {
                CertError::Subject(format!(
                    "expected distinct attributes within one '+' group, found a repeat: {e}"
                ))
            })?;
            rdns.push(RelativeDistinguishedName(set));
        }
        Ok(RdnSequence(rdns))
    }

    /// DER of [`Self::to_name`].
    pub fn to_name_der(&self) -> Result<Vec<u8>> {
        self.to_name()?
            .to_der()
            .map_err(|e| CertError::Subject(format!("cannot encode the name: {e}")))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(if a.multi_valued { " + " } else { ", " })?;
            }
            write!(f, "{}={}", a.name(), quote(&a.value))?;
        }
        Ok(())
    }
}

impl FromStr for Subject {
    type Err = CertError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Split at `,` / `;` / `+` outside quotes and not escaped; each part with whether a `+` came
/// before it.
fn split_top_level(text: &str) -> Result<Vec<(bool, &str)>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut plus = false;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' | ';' | '+' if !in_quotes => {
                parts.push((plus, text.get(start..i).unwrap_or_default()));
                plus = c == '+';
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(CertError::Subject(
            "expected a closing '\"', found the end of the subject".into(),
        ));
    }
    if escaped {
        return Err(CertError::Subject(
            "expected a character after '\\', found the end of the subject".into(),
        ));
    }
    parts.push((plus, text.get(start..).unwrap_or_default()));
    Ok(parts)
}

fn attribute_oid(key: &str) -> Result<String> {
    let upper = key.to_ascii_uppercase();
    if let Some((_, oid)) = NAMES.iter().find(|(n, _)| *n == upper) {
        return Ok((*oid).to_string());
    }
    let dotted = upper.strip_prefix("OID.").unwrap_or(&upper);
    if dotted.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(oid) = ObjectIdentifier::new(dotted)
    {
        return Ok(oid.to_string());
    }
    Err(CertError::Subject(format!(
        "expected an attribute name (CN, O, OU, L, ST, C, E, DC, STREET, SERIALNUMBER, T, G, SN, UID) or a dotted OID, found {:?}",
        truncate(key)
    )))
}

/// The value of one attribute without its quotes and escapes.
fn unquote(raw: &str) -> Result<String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(|| {
            CertError::Subject(format!(
                "expected the quoted value to end with '\"', found {:?}",
                truncate(raw)
            ))
        })?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.push('"');
                }
                '\\' => out.push(chars.next().unwrap_or('\\')),
                '"' => {
                    return Err(CertError::Subject(format!(
                        "expected '\"\"' or '\\\"' for a quote inside a quoted value, found a lone '\"' in {:?}",
                        truncate(raw)
                    )));
                }
                c => out.push(c),
            }
        }
        return Ok(out);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().unwrap_or('\\')),
            '"' => {
                return Err(CertError::Subject(format!(
                    "expected a quote only around a whole value, found one inside {:?}",
                    truncate(raw)
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn check_value(oid: &str, value: &str) -> Result<()> {
    match oid {
        COUNTRY_OID if !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic())) => {
            Err(CertError::Subject(format!(
                "expected a two-letter country code in C=, found {:?}",
                truncate(value)
            )))
        }
        SERIAL_OID if PrintableStringRef::new(value).is_err() => Err(CertError::Subject(format!(
            "expected letters, digits, spaces and '()+,-./:=? in SERIALNUMBER=, found {:?}",
            truncate(value)
        ))),
        EMAIL_OID | DC_OID if !value.is_ascii() => Err(CertError::Subject(format!(
            "expected ASCII in E= and DC=, found {:?}",
            truncate(value)
        ))),
        _ => Ok(()),
    }
}

fn encode_value(oid: &str, value: &str) -> Result<Any> {
    let err = |e: der::Error| CertError::Subject(format!("cannot encode {value:?}: {e}"));
    match oid {
        COUNTRY_OID | SERIAL_OID => Any::encode_from(&PrintableStringRef::new(value).map_err(err)?),
        EMAIL_OID | DC_OID => Any::encode_from(&Ia5StringRef::new(value).map_err(err)?),
        _ => Any::encode_from(&Utf8StringRef::new(value).map_err(err)?),
    }
    .map_err(err)
}

/// Quote a value for the string form when it holds a separator, a quote or a backslash, or
/// starts or ends with white space (which the reader trims from unquoted values).
fn quote(value: &str) -> String {
    let needs = value.contains([',', ';', '+', '"', '\\', '='])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
        || value.starts_with('#');
    if needs {
        // Inside quotes a backslash escapes the next character, so it is doubled too.
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// A string value of an attribute in any of the directory string types, if it is one.
pub(crate) fn any_to_string(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            std::str::from_utf8(bytes).ok().map(str::to_string)
        }
        // T.61 in practice holds Latin-1.
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// The Key Vault string form of a DER name: attributes in reverse DER order, multi-valued RDNs
/// joined with " + ", values of non-string types as `#<hex DER>` (RFC 4514).
pub(crate) fn name_to_string(name: &Name) -> String {
    let mut parts = Vec::with_capacity(name.0.len());
    for rdn in name.0.iter().rev() {
        let mut atvs = Vec::new();
        for atv in rdn.0.iter() {
            let attr_name = SubjectAttribute {
                oid: atv.oid.to_string(),
                value: String::new(),
                multi_valued: false,
            }
            .name();
            let value = match any_to_string(&atv.value) {
                Some(s) => quote(&s),
                None => format!("#{}", hex::encode(atv.value.to_der().unwrap_or_default())),
            };
            atvs.push(format!("{attr_name}={value}"));
        }
        parts.push(atvs.join(" + "));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_vault_forms() {
        let s = Subject::parse("CN=a, O=b, OU=c, L=d, ST=e, C=US, E=x@y").unwrap();
        assert_eq!(s.attributes.len(), 7);
        assert_eq!(s.common_name(), Some("a"));
        assert_eq!(s.to_string(), "CN=a, O=b, OU=c, L=d, ST=e, C=US, E=x@y");
        let s2 = Subject::parse("cn=a;o=b;ou=c;l=d;s=e;c=US;email=x@y").unwrap();
        assert_eq!(s, s2);
        let q = Subject::parse(r#"CN="a, b", O="say ""hi""", OU=c\, d"#).unwrap();
        assert_eq!(q.attributes[0].value, "a, b");
        assert_eq!(q.attributes[1].value, "say \"hi\"");
        assert_eq!(q.attributes[2].value, "c, d");
        assert_eq!(Subject::parse(&q.to_string()).unwrap(), q);
        let o = Subject::parse("OID.2.5.4.3=x, 2.5.4.10=y").unwrap();
        assert_eq!(o.to_string(), "CN=x, O=y");
        // DER order is the reverse of the string order.
        let name = Subject::parse("CN=a, O=b").unwrap().to_name().unwrap();
        assert_eq!(name_to_string(&name), "CN=a, O=b");
        assert_eq!(name.0[0].0.get(0).unwrap().oid.to_string(), "2.5.4.10");
    }

    proptest::proptest! {
        #[test]
        fn rendering_reads_back(values in proptest::collection::vec("[^\\x00]{1,12}", 1..5)) {
            let oids = ["2.5.4.3", "2.5.4.10", "2.5.4.11", "2.5.4.7"];
            let s = Subject {
                attributes: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| SubjectAttribute {
                        oid: oids[i % oids.len()].into(),
                        value,
                        multi_valued: false,
                    })
                    .collect(),
            };
            let text = s.to_string();
            proptest::prop_assert_eq!(Subject::parse(&text).unwrap(), s.clone(), "{}", text);
            // And the DER name renders to the same string.
            proptest::prop_assert_eq!(name_to_string(&s.to_name().unwrap()), text);
        }
    }

    #[test]
    fn multi_valued_rdns_read_back() {
        let s = Subject::parse("CN=a + UID=b, O=c").unwrap();
        assert!(s.attributes[1].multi_valued);
        let name = s.to_name().unwrap();
        assert_eq!(name.0.len(), 2);
        assert_eq!(name.0[1].0.len(), 2);
        let text = name_to_string(&name);
        assert_eq!(Subject::parse(&text).unwrap().to_name().unwrap(), name);
        // A quoted '+' is part of the value.
        assert_eq!(
            Subject::parse("CN=\"C++\"").unwrap().attributes[0].value,
            "C++"
        );
    }

    #[test]
    fn bad_subjects_say_why() {
        for (text, why) in [
            ("CN", "expected NAME=value"),
            ("XX=1", "expected an attribute name"),
            ("C=USA", "two-letter country"),
            ("CN=", "expected a value after CN="),
            ("CN=\"a", "closing"),
            ("CN=a+, O=b", "both sides of '+'"),
            ("+CN=a", "both sides of '+'"),
            ("CN=a + CN=a", "repeat"),
            ("CN=a\"b\"c", "quote only around"),
            ("E=é@x", "ASCII"),
        ] {
            let e = Subject::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
