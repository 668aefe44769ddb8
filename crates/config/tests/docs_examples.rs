//! The examples in docs/configuration.md are real: the example configs load, and the sample
//! `watertight check` output is exactly what the broken example produces.

use watertight_config::load_str;

const DOC: &str = include_str!("../../../docs/configuration.md");
const FAILOVER: &str = include_str!("../../../docs/failover.md");

/// The contents of every fenced block tagged `lang` in docs/configuration.md, in order.
fn blocks(lang: &str) -> Vec<String> {
    blocks_in(DOC, lang)
}

/// The contents of every fenced block tagged `lang` in `doc`, in order.
fn blocks_in(doc: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut found = Vec::new();
    let mut rest = doc;
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

/// The failover guide's snippets are whole configs or clusters; completed with a listener
/// where they have none, each must load.
#[test]
fn failover_examples_load() {
    let yaml = blocks_in(FAILOVER, "yaml");
    assert!(yaml.len() >= 4, "the failover guide has its examples");
    for example in &yaml {
        let mut text = example.clone();
        if !text.contains("listeners:") {
            let cluster = text
                .split("- name: ")
                .nth(1)
                .and_then(|rest| rest.lines().next())
                .expect("a cluster example names its cluster")
                .to_owned();
            text.push_str(&format!(
                "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: {cluster}\n"
            ));
        }
        if let Err(problems) = load_str(&text, "example.yaml") {
            panic!("{problems}\n---\n{text}");
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
