//! A flow log format: which field each whitespace-separated column of a record holds.
//! Built from a `LOG_FORMAT` string (`${version} ${srcaddr} ...` or bare names), from
//! the header line AWS writes at the top of every S3 object, or from the default format.

use super::fields::{Field, Kind, VpcflowKey, DEFAULT_FORMAT};

/// What one column of a record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    Known(Field),
    /// A field this crate does not know; `key` is its `aws.vpcflow` key
    /// (the name with `-` replaced by `_`).
    Unknown {
        name: String,
        key: String,
    },
}

/// An ordered list of columns, with a reverse index from known field to column.
#[derive(Clone, Debug, Eq)]
pub struct Schema {
    columns: Vec<Column>,
    position: [u16; Field::COUNT],
    /// The columns whose values are kept under `aws.vpcflow`, in format order, each with
    /// its member key pre-rendered as JSON (`,"account_id":`).
    vpcflow: Vec<(usize, Box<str>)>,
    /// The columns whose values are validated (every known field not of kind `Text`),
    /// so that record parsing skips the others without looking at them.
    typed: Vec<(usize, Field, Kind)>,
    /// Whether any column is a Transit Gateway field (`tgw-*`, known or not).
    transit_gateway: bool,
    /// Distinct for each schema built, copied by `clone` (see `PartialEq`).
    serial: u64,
}

const ABSENT: u16 = u16::MAX;

/// Why a format string was refused (its message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub(super) String);

/// Two schemas are equal when their columns are (everything else is derived from
/// them); a schema and its clones share a serial, which answers without comparing
/// columns (a held REJECT record compares its schema with the last one held).
impl PartialEq for Schema {
    #[inline]
    fn eq(&self, other: &Schema) -> bool {
        self.serial == other.serial || self.columns == other.columns
    }
}

/// The serial of the next schema built.
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Schema {
    /// The AWS default version 2 format.
    pub fn default_v2() -> Schema {
        Schema::from_columns(DEFAULT_FORMAT.iter().map(|f| Column::Known(*f)).collect())
            .expect("the default format has distinct fields")
    }

    /// Parses a format: `${version} ${account-id} ...`, or bare names separated by
    /// whitespace (`version account-id ...`). Underscore spellings are accepted.
    pub fn parse_format(format: &str) -> Result<Schema, FormatError> {
        let mut columns = Vec::new();
        for token in format.split_ascii_whitespace() {
            let name = match token.strip_prefix("${") {
                Some(rest) => rest.strip_suffix('}').ok_or_else(|| {
                    FormatError(format!(
                        "format token '{token}' opens '${{' but does not close it"
                    ))
                })?,
                None => token,
            };
            if name.is_empty() || !name.bytes().all(is_name_byte) {
                return Err(FormatError(format!(
                    "format token '{token}' is not a field name (letters, digits, '-', '_', ':', '.', '/')"
                )));
            }
            columns.push(column_for(name));
        }
        if columns.is_empty() {
            return Err(FormatError("format names no fields".to_string()));
        }
        // A format of names only this crate does not know is a typo or another log,
        // not a flow log format: every line would become custom fields and nothing else.
        if !columns.iter().any(|c| matches!(c, Column::Known(_))) {
            return Err(FormatError(
                "format names no known flow log field (version, srcaddr, dstaddr, action, ...)"
                    .to_string(),
            ));
        }
        Schema::from_columns(columns)
    }

    /// Builds a schema from columns; a field named twice is an error.
    pub fn from_columns(columns: Vec<Column>) -> Result<Schema, FormatError> {
        if columns.len() >= ABSENT as usize {
            return Err(FormatError(format!("format has {} fields", columns.len())));
        }
        let mut position = [ABSENT; Field::COUNT];
        for (i, column) in columns.iter().enumerate() {
            if let Column::Known(field) = column {
                if position[*field as usize] != ABSENT {
                    return Err(FormatError(format!(
                        "field '{}' appears twice",
                        field.name()
                    )));
                }
                position[*field as usize] = i as u16;
            }
        }
        let vpcflow = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let key = match c {
                    Column::Known(f) => match f.vpcflow_key() {
                        VpcflowKey::Top(k) => k,
                        VpcflowKey::Sublocation(_) | VpcflowKey::None => return None,
                    },
                    Column::Unknown { key, .. } => key.as_str(),
                };
                let mut rendered = vec![b','];
                crate::json::write_str(&mut rendered, key);
                rendered.push(b':');
                let rendered = String::from_utf8(rendered).unwrap_or_default();
                Some((i, rendered.into_boxed_str()))
            })
            .collect();
        let typed = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Column::Known(f) if f.kind() != Kind::Text => Some((i, *f, f.kind())),
                _ => None,
            })
            .collect();
        let transit_gateway = columns.iter().any(|c| {
            let name = match c {
                Column::Known(f) => f.name(),
                Column::Unknown { name, .. } => name.as_str(),
            };
            name.starts_with("tgw-") || name.starts_with("tgw_")
        });
        Ok(Schema {
            columns,
            position,
            vpcflow,
            typed,
            transit_gateway,
            serial: NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Recognises a header line (`version account-id interface-id ...`): every token is
    /// a field-name-like word and at least one is a known field. Such a line is never
    /// a record: no value of a real record has that shape.
    pub fn from_header_line(line: &str) -> Option<Schema> {
        let mut known = 0usize;
        for token in line.split_ascii_whitespace() {
            let first = token.as_bytes()[0];
            if !first.is_ascii_lowercase()
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return None;
            }
            if Field::from_name(token).is_some() {
                known += 1;
            }
        }
        if known == 0 {
            return None;
        }
        Schema::parse_format(line).ok()
    }

    /// The columns kept under `aws.vpcflow`, each with its pre-rendered key (`,"key":`).
    #[inline]
    pub fn vpcflow_columns(&self) -> &[(usize, Box<str>)] {
        &self.vpcflow
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The columns whose values have a type to validate, with their fields and types.
    pub fn typed_columns(&self) -> &[(usize, Field, Kind)] {
        &self.typed
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether the format has a Transit Gateway field (`tgw-*`): its records are Transit
    /// Gateway flow log records.
    pub fn has_transit_gateway_field(&self) -> bool {
        self.transit_gateway
    }

    /// The column holding `field`, if the format has it.
    #[inline]
    pub fn position(&self, field: Field) -> Option<usize> {
        let p = self.position[field as usize];
        (p != ABSENT).then_some(p as usize)
    }

    /// The format as `${a} ${b}` text.
    pub fn to_format_string(&self) -> String {
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| match c {
                Column::Known(f) => format!("${{{}}}", f.name()),
                Column::Unknown { name, .. } => format!("${{{name}}}"),
            })
            .collect();
        names.join(" ")
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'/')
}

fn column_for(name: &str) -> Column {
    match Field::from_name(name) {
        Some(field) => Column::Known(field),
        None => Column::Unknown {
            name: name.to_string(),
            key: name.replace('-', "_"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_and_bare_formats_are_the_same() {
        let a = Schema::parse_format("${version} ${srcaddr} ${new-thing}").unwrap();
        let b = Schema::parse_format("version  srcaddr\tnew-thing").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.position(Field::SrcAddr), Some(1));
        assert_eq!(a.position(Field::DstAddr), None);
        assert_eq!(
            a.columns()[2],
            Column::Unknown {
                name: "new-thing".into(),
                key: "new_thing".into()
            }
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(Schema::parse_format("").is_err());
        assert!(Schema::parse_format("${foo} ${bar-baz}").is_err());
        assert!(Schema::parse_format("foo srcaddr").is_ok());
        assert!(Schema::parse_format("${version").is_err());
        assert!(Schema::parse_format("version version").is_err());
        assert!(Schema::parse_format("ver\"sion").is_err());
    }

    #[test]
    fn header_lines_are_recognised() {
        assert!(Schema::from_header_line("version account-id interface-id srcaddr").is_some());
        assert!(Schema::from_header_line("2 123456789010 eni-1 1.2.3.4").is_none());
        assert!(Schema::from_header_line("- eni-1235b8ca123456789 10.0.1.5").is_none());
        assert!(Schema::from_header_line("ingress egress").is_none());
    }
}
