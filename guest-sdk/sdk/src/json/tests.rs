use std::collections::BTreeMap;

use serde::Deserialize;

use super::from_str;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Drop,
    Keep,
}

#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Point,
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    name: String,
    temperature: Option<Bounds>,
    #[serde(default)]
    ports: Vec<u16>,
    mode: Option<Mode>,
    #[serde(default)]
    tags: BTreeMap<String, i64>,
    shape: Option<Shape>,
    #[serde(default)]
    flag: bool,
}

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
    from_str::<T>(json).unwrap_err().to_string()
}

#[test]
fn parses_everything_serde_derive_asks_for() {
    let p: Params = from_str(
        r#" {"name": "a\"b\\c\/\n\t\u00e9\ud83d\ude00", "temperature": {"min": -40, "max": 8.5e1},
            "ports": [22, 443], "mode": "keep", "tags": {"x": -3, "y": 0},
            "shape": {"Rect": {"w": 2, "h": 3}}, "flag": true} "#,
    )
    .unwrap();
    assert_eq!(p.name, "a\"b\\c/\n\té😀");
    assert_eq!(
        p.temperature,
        Some(Bounds {
            min: Some(-40.0),
            max: Some(85.0)
        })
    );
    assert_eq!(p.ports, [22, 443]);
    assert_eq!(p.mode, Some(Mode::Keep));
    assert_eq!(p.tags["x"], -3);
    assert_eq!(p.shape, Some(Shape::Rect { w: 2, h: 3 }));
    assert!(p.flag);
    let p: Params = from_str(r#"{"temperature": null, "shape": "Point"}"#).unwrap();
    assert_eq!((p.temperature, p.shape), (None, Some(Shape::Point)));
    let p: Params = from_str(r#"{"shape": {"Circle": 1.5}, "mode": "drop"}"#).unwrap();
    assert_eq!(
        (p.shape, p.mode),
        (Some(Shape::Circle(1.5)), Some(Mode::Drop))
    );
    assert_eq!(from_str::<Vec<u64>>("[]").unwrap(), Vec::<u64>::new());
    assert_eq!(from_str::<u64>("18446744073709551615").unwrap(), u64::MAX);
    assert_eq!(from_str::<i64>("-9223372036854775808").unwrap(), i64::MIN);
    assert_eq!(from_str::<f64>("1e400").ok(), None);
    assert_eq!(from_str::<f64>("0.5").unwrap(), 0.5);
    assert_eq!(from_str::<()>("null").unwrap(), ());
}

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "only the errors matter")]
struct Key {
    key: String,
}

/// Checks every case and reports all mismatches at once.
fn check<T: serde::de::DeserializeOwned + std::fmt::Debug>(cases: &[(&str, &str)]) {
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|(json, want)| {
            let got = err::<T>(json);
            (got != *want).then(|| format!("{json}\n  got:  {got}\n  want: {want}"))
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn type_errors_name_the_field_and_position() {
    check::<Params>(&[
        (
            r#"{"temperature": {"min": "x"}}"#,
            r#"temperature.min: invalid type: string "x", expected f64 at line 1 column 27"#,
        ),
        (
            r#"{"ports": [22, 70000]}"#,
            "ports[1]: invalid value: integer `70000`, expected u16 at line 1 column 20",
        ),
        (
            r#"{"ports": [1.5]}"#,
            "ports[0]: invalid type: floating point `1.5`, expected u16 at line 1 column 14",
        ),
        (
            r#"{"flag": null}"#,
            "flag: invalid type: null, expected a boolean at line 1 column 13",
        ),
        (
            r#"{"mode": "maybe"}"#,
            "mode: unknown variant `maybe`, expected `drop` or `keep` at line 1 column 16",
        ),
        (
            "{\n  \"temperature\": {\"mn\": 1}\n}",
            "temperature: unknown field `mn`, expected `min` or `max` at line 2 column 22",
        ),
        (
            r#"{"temperature": {"min": 1, "min": 2}}"#,
            "temperature: duplicate field `min` at line 1 column 32",
        ),
        (
            r#"{"nme": 1}"#,
            "unknown field `nme`, expected one of `name`, `temperature`, `ports`, `mode`, `tags`, \
             `shape`, `flag` at line 1 column 6",
        ),
    ]);
    check::<Key>(&[
        ("{}", "missing field `key` at line 1 column 2"),
        (
            r#"{"key": 5}"#,
            "key: invalid type: integer `5`, expected a string at line 1 column 9",
        ),
    ]);
}

#[test]
fn syntax_errors_have_positions() {
    check::<Params>(&[
        ("{", "EOF while parsing an object at line 1 column 1"),
        (r#"{"name" 1}"#, "expected `:` at line 1 column 9"),
        (
            r#"{"ports": [1,]}"#,
            "ports: trailing comma at line 1 column 14",
        ),
        (
            r#"{"ports": [1 2]}"#,
            "ports: expected `,` or `]` at line 1 column 13",
        ),
        (
            r#"{"name": "a"} x"#,
            "trailing characters at line 1 column 15",
        ),
        (
            r#"{"name": "a\q"}"#,
            "name: invalid escape at line 1 column 13",
        ),
        (
            r#"{"name": "\ud800"}"#,
            "name: lone leading surrogate in hex escape at line 1 column 16",
        ),
        (
            r#"{"ports": [01]}"#,
            "ports[0]: invalid number at line 1 column 13",
        ),
        (
            r#"{"name": tru}"#,
            "name: expected value at line 1 column 10",
        ),
        ("{1: 2}", "key must be a string at line 1 column 2"),
        (
            "{\"name\": \"a\nb\"}",
            "name: control character (\\u0000-\\u001F) found while parsing a string at line 2 column 0",
        ),
    ]);
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert!(err::<serde::de::IgnoredAny>(&deep).contains("recursion limit exceeded"));
    let e = super::from_slice::<Params>(b"{\"name\": \"\xff\"}").unwrap_err();
    assert_eq!(e.to_string(), "invalid UTF-8 at line 1 column 10");
    assert_eq!(
        (e.path(), e.problem(), e.line(), e.column()),
        ("", "invalid UTF-8", 1, 10)
    );
}
