//! FIELDS_EXCLUDE: members left out of every document, by dotted path (`source.address`)
//! or prefix (`related.*`, `aws.vpcflow.*`). Applied to each document as written: its
//! members are copied but for the excluded ones, and an object left empty goes too.
//! What the contract needs for ids and time cannot be excluded (`Trim::parse` says so).

/// The paths left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    path: String,
    /// `path.*`: the member and everything under it.
    prefix: bool,
}

/// Members every document keeps: ids and time (ECS, OCSF, and raw's `message`).
const PROTECTED: [&str; 10] = [
    "@timestamp",
    "event.id",
    "message",
    "time",
    "metadata.uid",
    "metadata.version",
    "metadata.product",
    "class_uid",
    "category_uid",
    "type_uid",
];

impl Trim {
    /// A comma list of dotted paths, each maybe ending in `.*`. An error names a path
    /// that would remove a member every document keeps.
    pub fn parse(list: &str) -> Result<Option<Trim>, String> {
        let mut rules = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (path, prefix) = match entry.strip_suffix(".*") {
                Some(path) => (path, true),
                None => (entry, false),
            };
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!("'{entry}' is not a dotted path (a.b.c, or a.b.*)"));
            }
            let rule = Rule {
                path: path.to_string(),
                prefix,
            };
            if let Some(kept) = PROTECTED
                .iter()
                .find(|p| rule.covers(p) || p.starts_with(&format!("{path}.")))
            {
                return Err(format!(
                    "'{entry}' would remove {kept}, which every document keeps (ids and time)"
                ));
            }
            rules.push(rule);
        }
        Ok((!rules.is_empty()).then_some(Trim { rules }))
    }

    /// Copies the JSON object `doc` into `out` without the excluded members; false (and
    /// `out` unspecified) when `doc` is not an object this can read.
    pub fn apply(&self, doc: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut path = String::new();
        let mut at = 0;
        self.object(doc, &mut at, &mut path, out).is_some() && at == doc.len()
    }

    fn excluded(&self, path: &str) -> bool {
        self.rules.iter().any(|r| r.covers(path))
    }

    /// Whether a rule names something under `path`.
    fn reaches_under(&self, path: &str) -> bool {
        self.rules.iter().any(|r| {
            r.path.len() > path.len()
                && r.path.starts_with(path)
                && r.path.as_bytes()[path.len()] == b'.'
        })
    }

    /// Copies the object at `doc[*at]` (its members trimmed); `None` on what is not
    /// JSON. An object whose members are all excluded is written as `{}`.
    fn object(
        &self,
        doc: &[u8],
        at: &mut usize,
        path: &mut String,
        out: &mut Vec<u8>,
    ) -> Option<()> {
        if doc.get(*at) != Some(&b'{') {
            return None;
        }
        *at += 1;
        out.push(b'{');
        let mut first = true;
        if doc.get(*at) == Some(&b'}') {
            *at += 1;
            out.push(b'}');
            return Some(());
        }
        loop {
            let key_start = *at;
            skip_string(doc, at)?;
            let key = std::str::from_utf8(&doc[key_start + 1..*at - 1]).ok()?;
            if doc.get(*at) != Some(&b':') {
                return None;
            }
            *at += 1;
            let len = path.len();
            if len > 0 {
                path.push('.');
            }
            path.push_str(key);
            let value_start = *at;
            if self.excluded(path) {
                skip_value(doc, at)?;
            } else {
                let mark = out.len();
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(&doc[key_start..value_start]);
                if doc.get(*at) == Some(&b'{') && self.reaches_under(path) {
                    let inner = out.len();
                    self.object(doc, at, path, out)?;
                    if out.len() == inner + 2 {
                        // Every member excluded: the object goes too.
                        out.truncate(mark);
                    } else {
                        first = false;
                    }
                } else {
                    skip_value(doc, at)?;
                    out.extend_from_slice(&doc[value_start..*at]);
                    first = false;
                }
            }
            path.truncate(len);
            match doc.get(*at)? {
                b',' => *at += 1,
                b'}' => {
                    *at += 1;
                    out.push(b'}');
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

impl Rule {
    /// Whether the rule removes the member at `path`.
    fn covers(&self, path: &str) -> bool {
        path == self.path
            || (self.prefix
                && path.len() > self.path.len()
                && path.starts_with(&self.path)
                && path.as_bytes()[self.path.len()] == b'.')
    }
}

/// Moves `at` past the JSON string that starts there.
fn skip_string(doc: &[u8], at: &mut usize) -> Option<()> {
    if doc.get(*at) != Some(&b'"') {
        return None;
    }
    let mut i = *at + 1;
    loop {
        match doc.get(i)? {
            b'"' => {
                *at = i + 1;
                return Some(());
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Moves `at` past the JSON value that starts there (compact JSON, as the writers
/// write it).
fn skip_value(doc: &[u8], at: &mut usize) -> Option<()> {
    match doc.get(*at)? {
        b'"' => skip_string(doc, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match doc.get(*at)? {
                    b'"' => {
                        skip_string(doc, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            *at += 1;
                            return Some(());
                        }
                    }
                    _ => {}
                }
                *at += 1;
            }
        }
        _ => {
            while !matches!(doc.get(*at)?, b',' | b'}' | b']') {
                *at += 1;
            }
            Some(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(rules: &str, doc: &str) -> String {
        let trim = Trim::parse(rules).unwrap().unwrap();
        let mut out = Vec::new();
        assert!(trim.apply(doc.as_bytes(), &mut out), "{doc}");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn paths_and_prefixes_leave_members_out() {
        let doc = r#"{"@timestamp":"t","source":{"address":"a","ip":"a","port":1},"related":{"ip":["a","b"]},"aws":{"vpcflow":{"x":"1","y":"{\"}"}},"event":{"id":"e","tags":[{"a":1},"]"]}}"#;
        assert_eq!(
            trimmed("source.address, related.*, aws.vpcflow.*", doc),
            r#"{"@timestamp":"t","source":{"ip":"a","port":1},"event":{"id":"e","tags":[{"a":1},"]"]}}"#
        );
        // A member named by a prefix of its name is not under it.
        assert_eq!(
            trimmed("source.ip", r#"{"source":{"ip":1,"ipv6":2}}"#),
            r#"{"source":{"ipv6":2}}"#
        );
        // Emptied objects go; others stay as they were.
        assert_eq!(trimmed("a.b", r#"{"a":{"b":1},"c":{}}"#), r#"{"c":{}}"#);
        assert_eq!(
            trimmed("z", r#"{"a":-1.5e3,"b":true,"c":null}"#),
            r#"{"a":-1.5e3,"b":true,"c":null}"#
        );
    }

    #[test]
    fn ids_and_time_cannot_be_excluded() {
        for rule in [
            "@timestamp",
            "event.*",
            "event.id",
            "event",
            "metadata.*",
            "time",
        ] {
            let error = Trim::parse(rule).unwrap_err();
            assert!(error.contains("every document keeps"), "{rule}: {error}");
        }
        assert!(Trim::parse("event.original").unwrap().is_some());
        assert!(Trim::parse(" , ").unwrap().is_none());
        assert!(Trim::parse("a..b").is_err());
    }
}
