//! The examples in docs/configuration.md are real: the example configs load, and the sample
//! `watertight check` output is exactly what the broken example produces.

use watertight_config::load_str;

const DOC: &str = include_str!("../../../docs/configuration.md");

/// The contents of every fenced block tagged `lang`, in order.
fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut found = Vec::new();
    let mut rest = DOC;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body
            .find("```")
            .expect("every fenced block in the doc is closed");
        found.push(body[..end].to_owned());
        rest = &body[end..];
    }
    found
}

#[test]
fn example_configs_in_the_docs_load() {
    let yaml = blocks("yaml");
    assert!(
        yaml.len() >= 3,
        "the doc has two examples and a broken sample"
    );
    for example in &yaml[..yaml.len() - 1] {
        if let Err(problems) = load_str(example, "example.yaml") {
            panic!("{problems}\n---\n{example}");
        }
    }
}

#[test]
fn sample_check_output_in_the_docs_is_what_check_prints() {
    let broken = blocks("yaml").pop().expect("the doc has a broken sample");
    let expected = blocks("text").pop().expect("the doc shows check's output");
    let problems = load_str(&broken, "config.yaml").unwrap_err();
    assert_eq!(format!("{problems}\n"), expected);
}
