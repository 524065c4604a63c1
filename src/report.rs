//! An error as one line for the user: its message, then each cause not already said. Typed
//! errors often print their source inside their own message (`cannot read {path}:
//! {source}`), and anyhow's `{:#}` would then say that cause twice.

/// `error` and its causes, each said once, joined by `: `.
pub fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        say_once(&mut text, cause.to_string());
    }
    text
}

/// A typed error and its sources, each said once, as [`chain`] says them (for a message
/// recorded rather than printed, e.g. why a run failed).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        say_once(&mut text, cause.to_string());
        next = cause.source();
    }
    text
}

fn say_once(text: &mut String, part: String) {
    if part.is_empty() || text.contains(&part) {
        return;
    }
    if !text.is_empty() {
        text.push_str(": ");
    }
    text.push_str(&part);
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let error = anyhow::Error::new(Read {
            path: "a.json".into(),
            source: io,
        })
        .context("loading run r");
        assert_eq!(
            chain(&error),
            "loading run r: cannot read a.json: No such file (os error 2)"
        );
        let plain = anyhow::anyhow!("disk full").context("writing x");
        assert_eq!(chain(&plain), "writing x: disk full");
    }
}
