//! An uploaded bank statement (CSV) turned into the `statement` lines of
//! `POST /v1/reconciliations`.
//!
//! The CSV: UTF-8 (a BOM is skipped), RFC 4180 quoting, a header row
//! required, naming each of the statement line's fields once, in any order:
//! `bank_serial, reference, kind, account_no, counter_account_no, amount,
//! booked_at`. An empty `counter_account_no` becomes null; every other cell
//! is passed as it is written (the API judges amounts, kinds and times).
//! Blank lines are skipped. Owns only this conversion; must not judge a
//! line's content, which is the API's job.

use serde_json::{Map, Value};

use crate::limits;

pub const COLUMNS: [&str; 7] =
    ["bank_serial", "reference", "kind", "account_no", "counter_account_no", "amount", "booked_at"];

/// Splits CSV text into records of cells (RFC 4180: `"` quotes, `""` is a
/// quote inside quotes, CRLF or LF ends a record).
fn records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                cell.push(c);
            }
            (false, '"') if cell.is_empty() => quoted = true,
            (false, '"') => return Err(format!("line {line}: a quote inside an unquoted cell")),
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
                line += 1;
                if records.len() > limits::CONSOLE_STATEMENT_LINES_MAX + 1 {
                    return Err(format!("more than {} lines", limits::CONSOLE_STATEMENT_LINES_MAX));
                }
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted cell is not closed"));
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push(record);
    }
    Ok(records)
}

/// The statement lines of a CSV file, or why it cannot be read (naming the
/// line).
pub fn parse(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = records(text)?.into_iter().filter(|row| !(row.len() == 1 && row[0].trim().is_empty()));
    let header = rows.next().ok_or("the file is empty; it needs a header row")?;
    let header: Vec<String> = header.iter().map(|name| name.trim().to_owned()).collect();
    for name in &header {
        if !COLUMNS.contains(&name.as_str()) {
            return Err(format!("the header names an unknown column `{name}`; the columns are {}", COLUMNS.join(",")));
        }
        if header.iter().filter(|other| *other == name).count() > 1 {
            return Err(format!("the header names `{name}` twice"));
        }
    }
    if let Some(missing) = COLUMNS.iter().find(|column| !header.iter().any(|name| name == *column)) {
        return Err(format!("the header lacks the column `{missing}`; the columns are {}", COLUMNS.join(",")));
    }
    let mut lines = Vec::new();
    for (index, row) in rows.enumerate() {
        if row.len() != header.len() {
            return Err(format!("data line {}: {} cells, the header has {}", index + 1, row.len(), header.len()));
        }
        let mut line = Map::new();
        for (name, cell) in header.iter().zip(row) {
            let value = if name == "counter_account_no" && cell.is_empty() { Value::Null } else { Value::String(cell) };
            line.insert(name.clone(), value);
        }
        lines.push(Value::Object(line));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_with_quotes_crlf_and_any_column_order() {
        let csv = "\u{feff}reference,bank_serial,kind,account_no,counter_account_no,amount,booked_at\r\n\
                   t-1,SB1,forced_transfer,310940100000001,310940100000002,10.00,2026-11-24T08:00:00.000Z\r\n\
                   \"N,1\",B1,credit,310940100000001,,\"5000.00\",2026-11-24T09:00:00.000Z\r\n\r\n";
        let lines = parse(csv.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reference"], "t-1");
        assert_eq!(lines[0]["bank_serial"], "SB1");
        assert_eq!(lines[1]["reference"], "N,1");
        assert_eq!(lines[1]["counter_account_no"], Value::Null);
        assert_eq!(lines[1]["amount"], "5000.00");
        assert_eq!(lines[1].as_object().unwrap().len(), 7);
    }

    #[test]
    fn bad_files_say_why() {
        assert!(parse(b"").unwrap_err().contains("header"));
        assert!(parse(b"bank_serial,reference\n").unwrap_err().contains("lacks the column `kind`"));
        let header = COLUMNS.join(",");
        assert!(parse(format!("{header},extra\n").as_bytes()).unwrap_err().contains("unknown column `extra`"));
        assert!(parse(format!("{header}\na,b\n").as_bytes()).unwrap_err().contains("data line 1: 2 cells"));
        assert!(parse(format!("{header}\n\"a,b,c,d,e,f,g\n").as_bytes()).unwrap_err().contains("not closed"));
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }
}
