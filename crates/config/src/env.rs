//! `GEMGATE__SECTION__KEY` overrides, applied to the parsed TOML before validation so that an override
//! is checked exactly like the file. Segments are lowercased; a numeric segment indexes an array of
//! tables (`GEMGATE__CHAINS__0__RPC`). Values are read as TOML when they parse as a TOML value (numbers,
//! booleans, arrays), else as plain strings; a key that is a string in the file stays a string.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::Problem;

pub const PREFIX: &str = "GEMGATE__";

pub(crate) fn apply_overrides(table: &mut Table, env: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, raw_value) in env.iter().filter(|(name, _)| name.starts_with(PREFIX)) {
        let path: Vec<String> = name[PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(Problem { key: name.clone(), message: "empty segment in override name".into() });
            continue;
        }
        if let Err(message) = set(table, &path, raw_value) {
            problems.push(Problem { key: name.clone(), message });
        }
    }
    problems
}

fn set(table: &mut Table, path: &[String], raw_value: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("no key")?;
    let mut current = table;
    let mut index = 0;
    while index < parents.len() {
        let segment = &parents[index];
        let entry = current.entry(segment.clone()).or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(t) => t,
            Value::Array(items) => {
                // The next segment must be an index into this array of tables.
                index += 1;
                let position: usize = parents
                    .get(index)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("{segment} is a list: the next segment must be an index"))?;
                let count = items.len();
                if position == count {
                    items.push(Value::Table(Table::new()));
                }
                match items.get_mut(position) {
                    Some(Value::Table(t)) => t,
                    Some(_) => return Err(format!("{segment}[{position}] is not a table")),
                    None => {
                        return Err(format!(
                            "{segment} has {count} entries; index {position} is out of range"
                        ));
                    }
                }
            }
            _ => return Err(format!("{segment} is a value, not a section")),
        };
        index += 1;
    }
    let existing_is_string = matches!(current.get(last), Some(Value::String(_)));
    let value =
        if existing_is_string { Value::String(raw_value.to_string()) } else { parse_value(raw_value) };
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_sections_arrays_and_types() {
        let mut table: Table = r#"
            [database]
            url = "sqlite://a.db"
            [[chains]]
            id = 1
            rpc = ["http://a"]
        "#
        .parse()
        .unwrap();
        let problems = apply_overrides(
            &mut table,
            &env(&[
                ("GEMGATE__DATABASE__URL", "postgres://db/x"),
                ("GEMGATE__CHAINS__0__CONFIRMATIONS", "3"),
                ("GEMGATE__CHAINS__0__RPC", r#"["http://b", "http://c"]"#),
                ("GEMGATE__API__LISTEN", "0.0.0.0:9000"),
                ("OTHER", "ignored"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(table["database"]["url"].as_str(), Some("postgres://db/x"));
        assert_eq!(table["chains"][0]["confirmations"].as_integer(), Some(3));
        assert_eq!(table["chains"][0]["rpc"][1].as_str(), Some("http://c"));
        assert_eq!(table["api"]["listen"].as_str(), Some("0.0.0.0:9000"));
    }

    #[test]
    fn bad_index_is_reported_with_the_variable_name() {
        let mut table: Table = "[[chains]]\nid = 1\n".parse().unwrap();
        let problems = apply_overrides(&mut table, &env(&[("GEMGATE__CHAINS__5__ID", "2")]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "GEMGATE__CHAINS__5__ID");
    }
}
