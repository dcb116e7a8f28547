//! The `--config` YAML file, converted to the CBOR value `get_config`
//! returns.

use cborrpc::value::{int, text, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Parses a YAML document into a CBOR value (maps, lists, strings, ints,
/// floats, bools, nulls). Several documents yield the first.
pub fn parse(src: &str) -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(src).map_err(|e| format!("invalid YAML: {e}"))?;
    match docs.into_iter().next() {
        Some(doc) => convert(doc),
        None => Ok(Value::Null),
    }
}

fn convert(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => int(i),
        Yaml::Real(s) => {
            let f = match s.trim_start_matches('+') {
                ".inf" | ".Inf" | ".INF" => f64::INFINITY,
                "-.inf" | "-.Inf" | "-.INF" => f64::NEG_INFINITY,
                ".nan" | ".NaN" | ".NAN" => f64::NAN,
                other => other.parse().map_err(|_| format!("bad float {s:?}"))?,
            };
            Value::Float(f)
        }
        Yaml::String(s) => text(s),
        Yaml::Array(items) => Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            Value::Map(h.into_iter().map(|(k, v)| Ok((convert(k)?, convert(v)?))).collect::<Result<_, String>>()?)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_nested_documents() {
        let v = parse("coordinate:\n  addresses: ['127.0.0.1:5932']\n  retries: 3\nratio: 0.5\nflag: true\nnone: ~\n")
            .unwrap();
        let expected = Value::Map(vec![
            (
                text("coordinate"),
                Value::Map(vec![
                    (text("addresses"), Value::Array(vec![text("127.0.0.1:5932")])),
                    (text("retries"), int(3)),
                ]),
            ),
            (text("ratio"), Value::Float(0.5)),
            (text("flag"), Value::Bool(true)),
            (text("none"), Value::Null),
        ]);
        assert_eq!(v, expected);
    }

    #[test]
    fn rejects_bad_yaml() {
        assert!(parse("a: [unclosed").is_err());
    }
}
