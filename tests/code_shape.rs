//! The shape a reader of this reference operator can rely on: small files, short functions,
//! and one definition of the echo service's wire contract. Measured on the source text, so a
//! change that breaks the shape fails `cargo test` instead of waiting for a review.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 80;

fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read the source folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no Rust files under {dir}");
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read a source file")
}

/// The line's code without string or char literals and comments, for counting braces.
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if chars.peek() == Some(&'{') || chars.peek() == Some(&'}') => {
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => code.push(c),
        }
    }
    code
}

/// `(first line, length, name)` of every `fn` with a body.
fn functions(source: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let code = code_of(line);
        let Some(at) = code.find("fn ") else { continue };
        let before = code[..at].trim();
        let is_item = before.is_empty()
            || before
                .split_whitespace()
                .all(|w| ["pub", "async", "unsafe", "const"].contains(&w) || w.starts_with("pub("));
        if !is_item {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i32;
        let mut opened = false;
        for (end, line) in lines.iter().enumerate().skip(start) {
            let code = code_of(line);
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !opened && code.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            if opened && depth <= 0 {
                found.push((start + 1, end - start + 1, name.clone()));
                break;
            }
        }
    }
    found
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let mut too_long = Vec::new();
    for dir in ["src", "tests"] {
        for path in rust_files(dir) {
            let lines = read(&path).lines().count();
            if lines > MAX_FILE_LINES {
                too_long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {too_long:#?}"
    );
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let mut too_long = Vec::new();
    for path in rust_files("src") {
        for (line, length, name) in functions(&read(&path)) {
            if length > MAX_FN_LINES {
                too_long.push(format!("{}:{line} {name} ({length} lines)", path.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {too_long:#?}"
    );
}

#[test]
fn the_function_measure_sees_bodies_and_skips_declarations() {
    let source = "pub async fn a() {\n    let s = \"}\";\n    if x { y }\n}\nfn b();\nfn c() {}\n";
    assert_eq!(
        functions(source),
        [(1, 4, "a".to_owned()), (6, 1, "c".to_owned())]
    );
}

#[test]
fn the_wire_contract_and_its_limits_are_defined_once() {
    let definitions = [
        "pub struct EchoRequest",
        "pub struct EchoReply",
        "const MAX_MESSAGE_CHARS",
        "const MAX_DELAY_MS",
        "const MAX_FAIL_FIRST",
        "const MAX_REQUEST_BYTES",
        "const MAX_REPLY_BYTES",
    ];
    let sources: Vec<(PathBuf, String)> = rust_files("src")
        .into_iter()
        .chain(rust_files("tests"))
        .filter(|path| !path.ends_with("code_shape.rs"))
        .map(|path| {
            let text = read(&path);
            (path, text)
        })
        .collect();
    for definition in definitions {
        let places: Vec<String> = sources
            .iter()
            .filter(|(_, text)| text.contains(definition))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert_eq!(
            places.len(),
            1,
            "`{definition}` must be defined once (in src/echo_api.rs), found in {places:#?}"
        );
    }
    // The numbers themselves appear nowhere else as limits: the CRD names the constants.
    let crd = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/crd.rs"));
    for constant in ["MAX_MESSAGE_CHARS", "MAX_DELAY_MS", "MAX_FAIL_FIRST"] {
        assert!(crd.contains(constant), "the CRD schema must use {constant}");
    }
}
