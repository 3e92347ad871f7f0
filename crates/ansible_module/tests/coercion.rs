//! Every coercion rule and error text of AnsibleModule (contract ansible-binary-modules.md §7).

use ansible_module::spec::{coerce, validate, ArgsError, Kind, Opt};
use serde_json::{json, Map, Value};

fn no_env(_: &str) -> Option<String> {
    None
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn check(spec: &[Opt], params: Value) -> Result<Map<String, Value>, ArgsError> {
    validate("probe", spec, &obj(params), false, &no_env)
}

fn err(spec: &[Opt], params: Value) -> String {
    check(spec, params).unwrap_err().to_string()
}

#[test]
fn bool_true_and_false_spellings() {
    for t in ["y", "yes", "on", "1", "true", "t", "YES", " True ", "On"] {
        assert_eq!(coerce(Kind::Bool, &json!(t)), Ok(json!(true)), "{t}");
    }
    for f in ["n", "no", "off", "0", "false", "f", "FALSE", " No "] {
        assert_eq!(coerce(Kind::Bool, &json!(f)), Ok(json!(false)), "{f}");
    }
    assert_eq!(coerce(Kind::Bool, &json!(1)), Ok(json!(true)));
    assert_eq!(coerce(Kind::Bool, &json!(1.0)), Ok(json!(true)));
    assert_eq!(coerce(Kind::Bool, &json!(0)), Ok(json!(false)));
    assert_eq!(coerce(Kind::Bool, &json!(0.0)), Ok(json!(false)));
    assert_eq!(coerce(Kind::Bool, &json!(true)), Ok(json!(true)));
}

#[test]
fn bool_error_text() {
    let spec = [Opt::bool("flag")];
    let e = err(&spec, json!({"flag": "maybe"}));
    assert!(
        e.starts_with("argument 'flag' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean. Valid booleans include: "),
        "{e}"
    );
    for v in ["'yes'", "'off'", "'t'", "'f'"] {
        assert!(e.contains(v), "{e} lacks {v}");
    }
    let e = err(&spec, json!({"flag": 2}));
    assert!(
        e.contains("is of type int") && e.contains("The value '2' is not a valid boolean"),
        "{e}"
    );
    let e = err(&spec, json!({"flag": ["x"]}));
    assert_eq!(
        e,
        "argument 'flag' is of type list and we were unable to convert to bool: <class 'list'> cannot be converted to a bool"
    );
}

#[test]
fn int_rules_and_error_text() {
    assert_eq!(coerce(Kind::Int, &json!("5")), Ok(json!(5)));
    assert_eq!(coerce(Kind::Int, &json!("5.0")), Ok(json!(5)));
    assert_eq!(coerce(Kind::Int, &json!(" 7 ")), Ok(json!(7)));
    assert_eq!(coerce(Kind::Int, &json!(5.0)), Ok(json!(5)));
    assert_eq!(coerce(Kind::Int, &json!(-3)), Ok(json!(-3)));
    assert_eq!(coerce(Kind::Int, &json!("1e3")), Ok(json!(1000)));
    let spec = [Opt::int("count")];
    assert_eq!(
        err(&spec, json!({"count": "abc"})),
        "argument 'count' is of type str and we were unable to convert to int: \"'abc'\" cannot be converted to an int"
    );
    assert_eq!(
        err(&spec, json!({"count": "5.5"})),
        "argument 'count' is of type str and we were unable to convert to int: \"'5.5'\" cannot be converted to an int"
    );
    assert_eq!(
        err(&spec, json!({"count": 5.5})),
        "argument 'count' is of type float and we were unable to convert to int: \"5.5\" cannot be converted to an int"
    );
}

#[test]
fn float_rules_and_error_text() {
    assert_eq!(coerce(Kind::Float, &json!("1")), Ok(json!(1.0)));
    assert_eq!(coerce(Kind::Float, &json!(2)), Ok(json!(2.0)));
    assert_eq!(coerce(Kind::Float, &json!("2.5")), Ok(json!(2.5)));
    assert_eq!(
        err(&[Opt::float("ratio")], json!({"ratio": "x"})),
        "argument 'ratio' is of type str and we were unable to convert to float: <class 'str'> cannot be converted to a float"
    );
}

#[test]
fn str_converts_with_python_str() {
    assert_eq!(coerce(Kind::Str, &json!(42)), Ok(json!("42")));
    assert_eq!(coerce(Kind::Str, &json!(true)), Ok(json!("True")));
    assert_eq!(coerce(Kind::Str, &json!(1.5)), Ok(json!("1.5")));
    assert_eq!(coerce(Kind::Str, &json!(["a"])), Ok(json!("['a']")));
}

#[test]
fn list_rules() {
    assert_eq!(coerce(Kind::List, &json!("a,b")), Ok(json!(["a", "b"])));
    assert_eq!(coerce(Kind::List, &json!("a")), Ok(json!(["a"])));
    assert_eq!(coerce(Kind::List, &json!(5)), Ok(json!(["5"])));
    assert_eq!(coerce(Kind::List, &json!(1.5)), Ok(json!(["1.5"])));
    assert_eq!(coerce(Kind::List, &json!(["x", 1])), Ok(json!(["x", 1])));
    assert_eq!(
        err(&[Opt::list("keys", Kind::Str)], json!({"keys": {"a": 1}})),
        "argument 'keys' is of type dict and we were unable to convert to list: <class 'dict'> cannot be converted to a list"
    );
    let out = check(&[Opt::list("n", Kind::Int)], json!({"n": "1,2"})).unwrap();
    assert_eq!(out["n"], json!([1, 2]));
    assert_eq!(
        err(&[Opt::list("n", Kind::Int)], json!({"n": "1,x"})),
        "Elements value for option 'n' is of type str and we were unable to convert to int: \"'x'\" cannot be converted to an int"
    );
}

#[test]
fn dict_rules() {
    assert_eq!(
        coerce(Kind::Dict, &json!("{\"a\": 1}")),
        Ok(json!({"a": 1}))
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("k1=v1 k2=v2")),
        Ok(json!({"k1": "v1", "k2": "v2"}))
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("k1=v1, k2=v2")),
        Ok(json!({"k1": "v1", "k2": "v2"}))
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("k='a b'")),
        Ok(json!({"k": "a b"}))
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("{bad")),
        Err("unable to evaluate string as dictionary".into())
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("k1=v1, k2")),
        Err("unable to evaluate string in the \"key=value\" format as dictionary".into())
    );
    assert_eq!(
        coerce(Kind::Dict, &json!("plain")),
        Err("dictionary requested, could not parse JSON or key=value".into())
    );
    assert_eq!(
        coerce(Kind::Dict, &json!(3)),
        Err("<class 'int'> cannot be converted to a dict".into())
    );
}

#[test]
fn path_expands_home_and_vars() {
    std::env::set_var("AM_TEST_DIR", "/srv/x");
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        coerce(Kind::Path, &json!("~/a")),
        Ok(json!(format!("{home}/a")))
    );
    assert_eq!(
        coerce(Kind::Path, &json!("$AM_TEST_DIR/b")),
        Ok(json!("/srv/x/b"))
    );
    assert_eq!(
        coerce(Kind::Path, &json!("${AM_TEST_DIR}/c")),
        Ok(json!("/srv/x/c"))
    );
    assert_eq!(
        coerce(Kind::Path, &json!("$AM_UNSET_VAR/d")),
        Ok(json!("$AM_UNSET_VAR/d"))
    );
}

#[test]
fn raw_is_unchanged() {
    for v in [json!("5"), json!(5), json!({"a": [1]}), json!(null)] {
        assert_eq!(coerce(Kind::Raw, &v), Ok(v.clone()));
    }
}

#[test]
fn unsupported_parameters_text_with_aliases() {
    let spec = [
        Opt::int("count"),
        Opt::str("mode"),
        Opt::str("secret").alias("password"),
        Opt::str("dump_to"),
    ];
    assert_eq!(
        err(&spec, json!({"bogus": 1, "another": 2})),
        "Unsupported parameters for (probe) module: another, bogus. Supported parameters include: count, dump_to, mode, secret (password)."
    );
    // ignored when the action plugin asks for it
    let out = validate("probe", &spec, &obj(json!({"bogus": 1})), true, &no_env).unwrap();
    assert!(!out.contains_key("bogus"));
}

#[test]
fn missing_required_sorted() {
    let spec = [
        Opt::str("name").required(),
        Opt::str("url").required(),
        Opt::str("x"),
    ];
    assert_eq!(
        err(&spec, json!({})),
        "missing required arguments: name, url"
    );
    assert_eq!(
        err(&spec, json!({"url": "u"})),
        "missing required arguments: name"
    );
}

#[test]
fn choices_texts() {
    let spec = [Opt::str("state")
        .choices(&["present", "absent"])
        .default("present")];
    assert_eq!(
        err(&spec, json!({"state": "gone"})),
        "value of state must be one of: present, absent, got: gone"
    );
    assert_eq!(check(&spec, json!({})).unwrap()["state"], json!("present"));
    let spec = [Opt::list("tags", Kind::Str).choices(&["a", "b"])];
    assert_eq!(
        err(&spec, json!({"tags": "a,c,d"})),
        "value of tags must be one or more of: a, b. Got no match for: c, d"
    );
}

#[test]
fn aliases_env_fallback_and_defaults() {
    let spec = [
        Opt::str("url").env("AM_TEST_URL").required(),
        Opt::bool("patch").default(false),
        Opt::str("token").alias("vault_token"),
        Opt::str("opt"),
    ];
    let env = |v: &str| (v == "AM_TEST_URL").then(|| "http://127.0.0.1:1".to_string());
    let out = validate(
        "probe",
        &spec,
        &obj(json!({"vault_token": "t", "patch": "false"})),
        false,
        &env,
    )
    .unwrap();
    assert_eq!(out["url"], json!("http://127.0.0.1:1"));
    assert_eq!(out["patch"], json!(false));
    assert_eq!(out["token"], json!("t"));
    assert_eq!(
        out["opt"],
        json!(null),
        "null optional without default stays null"
    );
    // An explicit value beats the environment.
    let out = validate(
        "probe",
        &spec,
        &obj(json!({"url": "http://127.0.0.1:2"})),
        false,
        &env,
    )
    .unwrap();
    assert_eq!(out["url"], json!("http://127.0.0.1:2"));
}

#[test]
fn no_log_values_are_masked_even_in_validation_errors() {
    let spec = [Opt::int("pin").no_log()];
    let e = err(&spec, json!({"pin": "zz-secret-pin-zz"}));
    let masked = ansible_module::mask(&e);
    assert!(!masked.contains("zz-secret-pin-zz"), "{masked}");
}

#[test]
fn numbers_outside_their_range_are_refused_at_parse_time() {
    let spec = [
        Opt::int("timeout").range(1, 86400).default(30),
        Opt::float("poll_interval")
            .range_f(0.1, 3600.0)
            .default(5.0),
        Opt::list("ports", Kind::Int).range(1, 65535),
    ];
    assert_eq!(
        err(&spec, json!({"timeout": 9223372036854775807_i64})),
        "value of timeout must be between 1 and 86400, got: 9223372036854775807"
    );
    assert_eq!(
        err(&spec, json!({"timeout": 18446744073709551615_u64})),
        "value of timeout must be between 1 and 86400, got: 18446744073709551615"
    );
    assert_eq!(
        err(&spec, json!({"timeout": "0"})),
        "value of timeout must be between 1 and 86400, got: 0"
    );
    assert_eq!(
        err(&spec, json!({"poll_interval": 1e20})),
        "value of poll_interval must be between 0.1 and 3600.0, got: 1e+20"
    );
    assert_eq!(
        err(&spec, json!({"poll_interval": "-1"})),
        "value of poll_interval must be between 0.1 and 3600.0, got: -1.0"
    );
    assert_eq!(
        err(&spec, json!({"ports": [22, 70000]})),
        "value of ports must be between 1 and 65535, got: 70000"
    );
    // Bounds are inclusive; defaults and nulls pass.
    let ok = check(&spec, json!({"timeout": "86400", "poll_interval": 0.1})).unwrap();
    assert_eq!(ok["timeout"], json!(86400));
    assert!(check(&spec, json!({})).is_ok());
}

#[test]
fn spec_json_states_the_declaration_in_the_docs_vocabulary() {
    let secret = Opt::str("token")
        .alias("api_token")
        .env("X_TOKEN")
        .required()
        .no_log();
    assert_eq!(
        secret.spec_json(),
        json!({"name": "token", "type": "str", "required": true, "aliases": ["api_token"],
               "env": ["X_TOKEN"], "no_log": true})
    );
    let list = Opt::list("modes", Kind::Str)
        .choices(&["a", "b"])
        .default(json!(["a"]))
        .range(1, 2);
    // Only what the docs state: no range, no help, nothing empty or false.
    assert_eq!(
        list.spec_json(),
        json!({"name": "modes", "type": "list", "elements": "str", "default": ["a"],
               "choices": ["a", "b"]})
    );
}
