//! Flow log parsing: field table, schemas, and the line parser that turns one line of
//! input (text record, header line, JSON record, or `{"message": ...}` wrapper) into a
//! validated `FlowRecord`.

pub mod fields;
pub mod record;
pub mod schema;

pub use fields::{Field, Kind};
pub use record::{parse_line, transport_name, FlowRecord, ParseError, RecordValues, Span};
pub use schema::{Column, FormatError, Schema};

use serde_json::{Map, Value};

/// What one input line turned out to be.
#[derive(Debug)]
pub enum Line<'a> {
    /// Blank line: nothing to do, not a record.
    Blank,
    /// A header line naming the fields; it replaced the current schema.
    Header,
    /// A valid record.
    Record(FlowRecord<'a>),
    /// Not a valid record; the error says which field and why.
    Invalid(ParseError),
}

/// Parses the lines of one input (an S3 object, a file, a CloudWatch batch). Holds the
/// current schema, which a header line replaces, and scratch space reused across lines.
#[derive(Debug)]
pub struct LineParser {
    schema: Schema,
    spans: Vec<Span>,
    /// Owned text for records that do not come straight from the line (JSON).
    scratch_text: String,
    scratch_schema: Schema,
}

impl LineParser {
    pub fn new(schema: Schema) -> LineParser {
        LineParser {
            scratch_schema: schema.clone(),
            schema,
            spans: Vec::with_capacity(32),
            scratch_text: String::new(),
        }
    }

    /// The schema records are currently parsed with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Parses one line (without its line terminator).
    pub fn parse<'s>(&'s mut self, line: &'s str) -> Line<'s> {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() {
            return Line::Blank;
        }
        if line.starts_with('{') {
            return self.parse_json(line);
        }
        parse_text(line, &mut self.schema, &mut self.spans)
    }

    fn parse_json<'s>(&'s mut self, line: &str) -> Line<'s> {
        let map: Map<String, Value> = match serde_json::from_str(line) {
            Ok(map) => map,
            Err(e) => return Line::Invalid(ParseError(format!("invalid JSON record: {e}"))),
        };
        // `{"message": "<record>"}`: a wrapper (CloudWatch exports, Sekoia, Sumo JSON).
        if let Some(Value::String(message)) = map.get("message") {
            if map.keys().all(|k| Field::from_name(k).is_none()) {
                let inner = message.trim_matches(|c: char| c.is_ascii_whitespace());
                if inner.starts_with('{') {
                    return match serde_json::from_str::<Map<String, Value>>(inner) {
                        Ok(inner_map) => self.json_record(&inner_map),
                        Err(e) => Line::Invalid(ParseError(format!(
                            "invalid JSON record in \"message\": {e}"
                        ))),
                    };
                }
                self.scratch_text.clear();
                self.scratch_text.push_str(inner);
                if self.scratch_text.is_empty() {
                    return Line::Invalid(ParseError("empty \"message\"".to_string()));
                }
                return parse_text(&self.scratch_text, &mut self.schema, &mut self.spans);
            }
        }
        self.json_record(&map)
    }

    /// A JSON object whose keys are field names (`account_id` or `account-id`).
    fn json_record<'s>(&'s mut self, map: &Map<String, Value>) -> Line<'s> {
        self.scratch_text.clear();
        self.spans.clear();
        let mut columns = Vec::with_capacity(map.len());
        for (key, value) in map {
            let start = self.scratch_text.len();
            match value {
                Value::Null => self.scratch_text.push('-'),
                Value::String(s) if s.is_empty() => self.scratch_text.push('-'),
                Value::String(s) => self.scratch_text.push_str(s),
                Value::Number(n) => push_json_number(&mut self.scratch_text, n),
                Value::Bool(b) => self
                    .scratch_text
                    .push_str(if *b { "true" } else { "false" }),
                Value::Array(_) | Value::Object(_) => {
                    return Line::Invalid(ParseError(format!(
                        "field '{}': a nested JSON value is not a flow log field",
                        crate::text::shorten(key)
                    )))
                }
            }
            if self.scratch_text.len() > u32::MAX as usize {
                return Line::Invalid(ParseError("record longer than 4 GiB".to_string()));
            }
            self.spans
                .push((start as u32, self.scratch_text.len() as u32));
            columns.push(match Field::from_name(key) {
                Some(f) => Column::Known(f),
                None => Column::Unknown {
                    name: key.clone(),
                    key: key.replace('-', "_"),
                },
            });
        }
        if columns.is_empty() {
            return Line::Invalid(ParseError("empty JSON record".to_string()));
        }
        self.scratch_schema = match Schema::from_columns(columns) {
            Ok(s) => s,
            Err(e) => return Line::Invalid(ParseError::from(e)),
        };
        match FlowRecord::from_spans(&self.scratch_text, &self.scratch_schema, &self.spans) {
            Ok(r) => Line::Record(r),
            Err(e) => Line::Invalid(e),
        }
    }
}

/// A JSON number as a field value. Collectors write integers as floats (`412.0`, `1e3`):
/// a float with no fraction is that integer; any other float is written as it is, and
/// fails validation naming its field when the field is numeric.
fn push_json_number(out: &mut String, n: &serde_json::Number) {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            if f < 0.0 {
                out.push('-');
            }
            let mut digits = itoa::Buffer::new();
            out.push_str(digits.format(f.abs() as u64));
        }
        _ => out.push_str(&n.to_string()),
    }
}

fn parse_text<'s>(text: &'s str, schema: &'s mut Schema, spans: &'s mut Vec<Span>) -> Line<'s> {
    if text.as_bytes()[0].is_ascii_lowercase() {
        if let Some(header) = Schema::from_header_line(text) {
            *schema = header;
            return Line::Header;
        }
    }
    match parse_line(text, schema, spans) {
        Ok(r) => Line::Record(r),
        Err(e) => Line::Invalid(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_switches_schema() {
        let mut p = LineParser::new(Schema::default_v2());
        assert!(matches!(p.parse("srcaddr dstaddr"), Line::Header));
        match p.parse("1.2.3.4 5.6.7.8") {
            Line::Record(r) => assert_eq!(r.get(Field::DstAddr), Some("5.6.7.8")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.parse("   "), Line::Blank));
    }

    #[test]
    fn json_record_and_message_wrapper() {
        let mut p = LineParser::new(Schema::default_v2());
        match p
            .parse(r#"{"version":2,"account_id":"42","srcport":4712,"action":"ACCEPT","x-y":null}"#)
        {
            Line::Record(r) => {
                assert_eq!(r.srcport, Some(4712));
                assert_eq!(r.get(Field::AccountId), Some("42"));
                assert_eq!(r.get(Field::Version), Some("2"));
            }
            other => panic!("{other:?}"),
        }
        let wrapped = r#"{"message":"2 1 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 40 1 2 ACCEPT OK"}"#;
        match p.parse(wrapped) {
            Line::Record(r) => assert_eq!(r.get(Field::SrcAddr), Some("1.2.3.4")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.parse("{nope"), Line::Invalid(_)));
        assert!(matches!(p.parse(r#"{"srcport":[1]}"#), Line::Invalid(_)));
    }
}
