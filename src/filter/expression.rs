//! FILTER: a boolean expression over a record's fields, compiled once at start. Records
//! for which it is false are dropped (counted as filtered). The grammar (README,
//! Reducing volume):
//!
//! ```text
//! expr       := and ( "||" and )*
//! and        := unary ( "&&" unary )*
//! unary      := "!" unary | "(" expr ")" | comparison
//! comparison := FIELD ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) VALUE
//!             | FIELD "in" ( VALUE | "[" VALUE ( "," VALUE )* "]" )
//! VALUE      := "text" | 123
//! ```
//!
//! FIELD is a flow log field name (`srcaddr`, `log-status`, `pkt-src-aws-service`, ...).
//! Address fields take addresses and CIDR blocks (`srcaddr in "10.0.0.0/8"`), number
//! fields take numbers (`protocol` also `"tcp"`, `"udp"`, `"icmp"`, ...), text fields
//! take text. A field the record lacks (`-`, or not in its format) makes a comparison
//! false, except `!=`, which it makes true. Errors name the column.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flowlog::{Field, FlowRecord, Kind};

/// A compiled FILTER expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    Or(Box<Expression>, Box<Expression>),
    And(Box<Expression>, Box<Expression>),
    Not(Box<Expression>),
    Test(Test),
}

/// One comparison, its constant converted to the field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `==` an address or `in` addresses and blocks (`negate`: `!=`).
    Address {
        field: Field,
        nets: Vec<IpNet>,
        negate: bool,
    },
    /// A number compared.
    Number { field: Field, op: Op, value: u64 },
    /// A number `in` a list.
    NumberIn { field: Field, values: Vec<u64> },
    /// Text `==` or `in` (`negate`: `!=`).
    Text {
        field: Field,
        values: Vec<String>,
        negate: bool,
    },
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

impl Expression {
    /// Compiles `text`; an error says what is wrong and at which column (1-based).
    pub fn parse(text: &str) -> Result<Expression, String> {
        let tokens = tokenize(text)?;
        let mut parser = ExpressionParser {
            tokens,
            at: 0,
            end: text.chars().count() + 1,
        };
        let expression = parser.or()?;
        match parser.peek() {
            None => Ok(expression),
            Some((column, token)) => Err(format!(
                "at column {column}: expected && or || or the end, found {}",
                token.describe()
            )),
        }
    }

    /// Whether `rec` is kept.
    pub fn matches(&self, rec: &FlowRecord<'_>) -> bool {
        match self {
            Expression::Or(a, b) => a.matches(rec) || b.matches(rec),
            Expression::And(a, b) => a.matches(rec) && b.matches(rec),
            Expression::Not(a) => !a.matches(rec),
            Expression::Test(test) => test.matches(rec),
        }
    }
}

impl Test {
    fn matches(&self, rec: &FlowRecord<'_>) -> bool {
        match self {
            Test::Address {
                field,
                nets,
                negate,
            } => match address(rec, *field) {
                Some(ip) => nets.iter().any(|n| n.contains(&ip)) != *negate,
                None => *negate,
            },
            Test::Number { field, op, value } => match number(rec, *field) {
                Some(v) => match op {
                    Op::Eq => v == *value,
                    Op::Ne => v != *value,
                    Op::Lt => v < *value,
                    Op::Le => v <= *value,
                    Op::Gt => v > *value,
                    Op::Ge => v >= *value,
                },
                None => *op == Op::Ne,
            },
            Test::NumberIn { field, values } => {
                number(rec, *field).is_some_and(|v| values.contains(&v))
            }
            Test::Text {
                field,
                values,
                negate,
            } => match rec.get(*field) {
                Some(v) => values.iter().any(|x| x == v) != *negate,
                None => *negate,
            },
        }
    }
}

/// An address field's value.
#[inline]
fn address(rec: &FlowRecord<'_>, field: Field) -> Option<IpAddr> {
    match field {
        Field::SrcAddr => rec.srcaddr,
        Field::DstAddr => rec.dstaddr,
        Field::PktSrcAddr => rec.pkt_srcaddr,
        Field::PktDstAddr => rec.pkt_dstaddr,
        _ => rec.get(field)?.parse().ok(),
    }
}

/// A number field's value.
#[inline]
fn number(rec: &FlowRecord<'_>, field: Field) -> Option<u64> {
    match field {
        Field::SrcPort => rec.srcport.map(u64::from),
        Field::DstPort => rec.dstport.map(u64::from),
        Field::Protocol => rec.protocol.map(u64::from),
        Field::Packets => rec.packets,
        Field::Bytes => rec.bytes,
        Field::Start => rec.start,
        Field::End => rec.end,
        Field::TcpFlags => rec.tcp_flags,
        _ => rec.get(field)?.parse().ok(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Text(String),
    Number(u64),
    Symbol(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name(n) => format!("'{n}'"),
            Token::Text(t) => format!("\"{t}\""),
            Token::Number(n) => n.to_string(),
            Token::Symbol(s) => format!("'{s}'"),
        }
    }
}

const SYMBOLS: [&str; 14] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
];

/// The tokens of `text`, each with its column (1-based, in characters).
fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("at column {column}: text not closed by \"")),
                    Some('"') => break,
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(&e @ ('"' | '\\')) => value.push(e),
                            _ => {
                                return Err(format!(
                                    "at column {}: only \\\" and \\\\ may follow \\ in text",
                                    i + 1
                                ))
                            }
                        }
                        i += 1;
                    }
                    Some(&other) => value.push(other),
                }
                i += 1;
            }
            i += 1;
            tokens.push((column, Token::Text(value)));
        } else if c.is_ascii_digit() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let n = digits
                .parse()
                .map_err(|_| format!("at column {column}: {digits} is too large a number"))?;
            tokens.push((column, Token::Number(n)));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            {
                i += 1;
            }
            tokens.push((column, Token::Name(chars[start..i].iter().collect())));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(format!("at column {column}: unexpected '{c}'"));
            };
            i += symbol.len();
            tokens.push((column, Token::Symbol(symbol)));
        }
    }
    Ok(tokens)
}

struct ExpressionParser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// The column just past the text.
    end: usize,
}

impl ExpressionParser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.at).map(|(c, t)| (*c, t))
    }

    /// The column of the next token, or just past the end.
    fn column(&self) -> usize {
        self.peek().map_or(self.end, |(c, _)| c)
    }

    fn next(&mut self) -> Option<(usize, Token)> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some((_, Token::Symbol(s))) if *s == symbol) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expected(&self, what: &str) -> String {
        match self.peek() {
            Some((column, token)) => {
                format!(
                    "at column {column}: expected {what}, found {}",
                    token.describe()
                )
            }
            None => format!(
                "at column {}: expected {what}, found the end",
                self.column()
            ),
        }
    }

    fn or(&mut self) -> Result<Expression, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expression::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Expression::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        if self.eat("!") {
            return Ok(Expression::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.expected("')'"));
            }
            return Ok(inner);
        }
        self.comparison().map(Expression::Test)
    }

    fn comparison(&mut self) -> Result<Test, String> {
        let (column, name) = match self.peek() {
            Some((column, Token::Name(name))) => (column, name.clone()),
            _ => return Err(self.expected("a field name, '!' or '('")),
        };
        self.at += 1;
        let field = Field::from_name(&name)
            .ok_or_else(|| format!("at column {column}: '{name}' is not a flow log field"))?;
        let op_column = self.column();
        let op = match self.next() {
            Some((_, Token::Symbol("=="))) => Some(Op::Eq),
            Some((_, Token::Symbol("!="))) => Some(Op::Ne),
            Some((_, Token::Symbol("<"))) => Some(Op::Lt),
            Some((_, Token::Symbol("<="))) => Some(Op::Le),
            Some((_, Token::Symbol(">"))) => Some(Op::Gt),
            Some((_, Token::Symbol(">="))) => Some(Op::Ge),
            Some((_, Token::Name(n))) if n == "in" => None,
            _ => {
                self.at -= 1;
                return Err(self.expected("==, !=, <, <=, >, >= or in"));
            }
        };
        let values = match op {
            Some(_) => vec![self.value()?],
            None if self.eat("[") => {
                let mut values = vec![self.value()?];
                while self.eat(",") {
                    values.push(self.value()?);
                }
                if !self.eat("]") {
                    return Err(self.expected("',' or ']'"));
                }
                values
            }
            None => vec![self.value()?],
        };
        typed(field, op, values, op_column)
    }

    fn value(&mut self) -> Result<(usize, Token), String> {
        match self.tokens.get(self.at) {
            Some((column, token @ (Token::Text(_) | Token::Number(_)))) => {
                let value = (*column, token.clone());
                self.at += 1;
                Ok(value)
            }
            _ => Err(self.expected("a value (\"text\" or a number)")),
        }
    }
}

/// The comparison of `field` by `op` (`None`: `in`) with `values`, each converted to
/// the field's type.
fn typed(
    field: Field,
    op: Option<Op>,
    values: Vec<(usize, Token)>,
    op_column: usize,
) -> Result<Test, String> {
    let name = field.name();
    match field.kind() {
        Kind::Ip => {
            let negate = negated(op, op_column, name, "an address")?;
            let nets = values
                .into_iter()
                .map(|(column, token)| match token {
                    Token::Text(t) => {
                        parse_net(&t, op.is_none()).map_err(|e| format!("at column {column}: {e}"))
                    }
                    other => Err(format!(
                        "at column {column}: {name} is an address: {} is not one (quote it)",
                        other.describe()
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(Test::Address {
                field,
                nets,
                negate,
            })
        }
        Kind::Port | Kind::Protocol | Kind::Integer | Kind::Timestamp => {
            let numbers = values
                .into_iter()
                .map(|(column, token)| match token {
                    Token::Number(n) => Ok(n),
                    Token::Text(t) if field == Field::Protocol => protocol_number(&t)
                        .ok_or_else(|| {
                            format!("at column {column}: \"{t}\" is not a protocol name (tcp, udp, icmp, icmpv6, sctp, gre, esp, ah) or a number")
                        }),
                    other => Err(format!(
                        "at column {column}: {name} is a number: {} is not one",
                        other.describe()
                    )),
                })
                .collect::<Result<Vec<u64>, _>>()?;
            match op {
                None => Ok(Test::NumberIn {
                    field,
                    values: numbers,
                }),
                Some(op) => Ok(Test::Number {
                    field,
                    op,
                    value: numbers[0],
                }),
            }
        }
        Kind::Text => {
            let negate = negated(op, op_column, name, "text")?;
            let values = values
                .into_iter()
                .map(|(column, token)| match token {
                    Token::Text(t) => Ok(t),
                    // Text fields such as account-id hold digits: a bare number is
                    // compared as its digits.
                    Token::Number(n) => Ok(n.to_string()),
                    other => Err(format!(
                        "at column {column}: {} is not text",
                        other.describe()
                    )),
                })
                .collect::<Result<_, String>>()?;
            Ok(Test::Text {
                field,
                values,
                negate,
            })
        }
    }
}

/// Whether an equality test (`==`, `!=` or `in`; `None` is `in`) of field `name`, which
/// is `what`, is negated (`!=`); an order (`<`, ...) is an error.
fn negated(op: Option<Op>, op_column: usize, name: &str, what: &str) -> Result<bool, String> {
    match op {
        None | Some(Op::Eq) => Ok(false),
        Some(Op::Ne) => Ok(true),
        Some(_) => Err(format!(
            "at column {op_column}: {name} is {what}: compare it with ==, != or in"
        )),
    }
}

/// An address (as a block of one) or, after `in`, a CIDR block.
fn parse_net(text: &str, block_allowed: bool) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    if !block_allowed {
        return Err(format!(
            "\"{text}\" is not an address (for a CIDR block, use in)"
        ));
    }
    crate::filter::parse_cidr(text)
}

fn protocol_number(name: &str) -> Option<u64> {
    Some(match name.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" => 58,
        "sctp" => 132,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::{parse_line, Schema};

    const FORMAT: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status flow-direction";

    fn keeps(expression: &str, line: &str) -> bool {
        let schema = Schema::parse_format(FORMAT).unwrap();
        let mut spans = Vec::new();
        let rec = parse_line(line, &schema, &mut spans).unwrap();
        Expression::parse(expression).unwrap().matches(&rec)
    }

    const INTERNAL_ACCEPT: &str = "5 123456789012 eni-1 10.0.0.5 10.1.0.9 40000 443 6 10 600 1700000000 1700000060 ACCEPT OK egress";
    const EXTERNAL_ACCEPT: &str = "5 123456789012 eni-1 10.0.0.5 8.8.8.8 40000 53 17 1 60 1700000000 1700000060 ACCEPT OK egress";
    const INTERNAL_REJECT: &str = "5 123456789012 eni-1 10.0.0.5 10.1.0.9 40000 22 6 1 40 1700000000 1700000060 REJECT OK ingress";
    const NODATA: &str = "5 123456789012 eni-1 - - - - - - - 1700000000 1700000060 - NODATA -";

    #[test]
    fn the_vendor_packs_rule_keeps_rejects_and_external_traffic() {
        let rule = r#"action == "REJECT" || !(srcaddr in "10.0.0.0/8" && dstaddr in "10.0.0.0/8")"#;
        assert!(!keeps(rule, INTERNAL_ACCEPT));
        assert!(keeps(rule, EXTERNAL_ACCEPT));
        assert!(keeps(rule, INTERNAL_REJECT));
    }

    #[test]
    fn numbers_lists_protocol_names_and_precedence() {
        assert!(keeps(
            "dstport in [22, 3389] || protocol == \"udp\"",
            EXTERNAL_ACCEPT
        ));
        assert!(keeps("dstport in [22, 3389]", INTERNAL_REJECT));
        assert!(!keeps("dstport in [22, 3389]", INTERNAL_ACCEPT));
        assert!(keeps("bytes >= 600 && packets > 1", INTERNAL_ACCEPT));
        assert!(!keeps("bytes < 600", INTERNAL_ACCEPT));
        // && binds tighter than ||.
        assert!(keeps(
            "protocol == 17 || protocol == 6 && dstport == 1",
            EXTERNAL_ACCEPT
        ));
        assert!(!keeps(
            "(protocol == 17 || protocol == 6) && dstport == 1",
            EXTERNAL_ACCEPT
        ));
        assert!(keeps(
            "flow-direction == \"egress\" && account-id == 123456789012",
            EXTERNAL_ACCEPT
        ));
        assert!(keeps(
            "srcaddr == \"10.0.0.5\" && dstaddr != \"10.0.0.5\"",
            EXTERNAL_ACCEPT
        ));
        assert!(keeps(
            "dstaddr in [\"8.8.8.8\", \"fd00::/8\"]",
            EXTERNAL_ACCEPT
        ));
    }

    #[test]
    fn a_missing_value_is_unequal_and_nothing_else() {
        assert!(!keeps("action == \"ACCEPT\"", NODATA));
        assert!(keeps("action != \"ACCEPT\"", NODATA));
        assert!(!keeps("srcaddr in \"0.0.0.0/0\"", NODATA));
        assert!(keeps("srcaddr != \"10.0.0.5\"", NODATA));
        assert!(!keeps("dstport < 1024", NODATA));
        assert!(keeps("dstport != 443", NODATA));
        assert!(keeps("log-status == \"NODATA\"", NODATA));
        // A field the format lacks is missing too.
        assert!(!keeps("tcp-flags == 2", INTERNAL_ACCEPT));
    }

    #[test]
    fn errors_name_the_column() {
        let error = |text: &str| Expression::parse(text).unwrap_err();
        assert!(
            error("srcaddr in \"10.0.0.0/33\"").starts_with("at column 12:"),
            "{}",
            error("srcaddr in \"10.0.0.0/33\"")
        );
        assert!(error("dstport == \"https\"").contains("at column 12: dstport is a number"));
        assert!(error("srcaddr < \"10.0.0.1\"").contains("at column 9: srcaddr is an address"));
        assert!(error("srcaddr == \"10.0.0.0/8\"").contains("use in"));
        assert!(error("action == \"REJECT\" &&").contains("at column 22: expected a field name"));
        assert!(error("(action == \"REJECT\"").contains("expected ')'"));
        assert!(
            error("actoin == \"REJECT\"").contains("at column 1: 'actoin' is not a flow log field")
        );
        assert!(error("action = \"REJECT\"").contains("at column 8: unexpected '='"));
        assert!(error("action == \"REJECT").contains("at column 11: text not closed"));
        assert!(error("action == \"REJECT\" action").contains("at column 20: expected && or ||"));
        assert!(error("dstport in [22 23]").contains("expected ',' or ']'"));
        assert!(error("protocol == \"tcpx\"").contains("not a protocol name"));
        assert!(error("bytes > 99999999999999999999999").contains("too large"));
        assert!(error("").contains("at column 1: expected a field name"));
    }
}
