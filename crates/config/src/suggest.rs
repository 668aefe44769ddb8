//! "Did you mean …?" for misspelled field names, enum values and cluster references.

/// The candidate closest to `written`, if it is close enough to be a likely typo.
///
/// Close means an edit distance (ignoring case, and `-` vs `_`) of at most a third of the
/// longer name, and at least 1, so `endpont` finds `endpoints` but `foo` finds nothing.
pub(crate) fn closest<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = normalize(written);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&normal, &normalize(candidate)), candidate))
        .filter(|(distance, candidate)| {
            let longest = written.chars().count().max(candidate.chars().count());
            *distance <= (longest / 3).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `did you mean "x"?` when one candidate is close, else `{known}: a, b, c`.
pub(crate) fn hint(written: &str, known: &str, candidates: &[&str]) -> String {
    match closest(written, candidates.iter().copied()) {
        Some(best) => format!("did you mean {best:?}?"),
        None => format!("{known}: {}", candidates.join(", ")),
    }
}

fn normalize(text: &str) -> Vec<char> {
    text.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Levenshtein distance with adjacent transpositions (optimal string alignment).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut rows = vec![0_usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        rows[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        rows[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[at(i - 1, j)] + 1)
                .min(rows[at(i, j - 1)] + 1)
                .min(rows[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[at(i - 2, j - 2)] + 1);
            }
            rows[at(i, j)] = best;
        }
    }
    rows[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER_FIELDS: &[&str] = &["name", "endpoints", "balancer", "connect_timeout"];

    #[test]
    fn finds_misspellings_transpositions_and_dashes() {
        assert_eq!(
            closest("endpont", CLUSTER_FIELDS.iter().copied()),
            Some("endpoints")
        );
        assert_eq!(
            closest("balacner", CLUSTER_FIELDS.iter().copied()),
            Some("balancer")
        );
        assert_eq!(
            closest("connect-timeout", CLUSTER_FIELDS.iter().copied()),
            Some("connect_timeout")
        );
        assert_eq!(
            closest("Name", CLUSTER_FIELDS.iter().copied()),
            Some("name")
        );
    }

    #[test]
    fn suggests_nothing_for_unrelated_names() {
        assert_eq!(closest("foo", CLUSTER_FIELDS.iter().copied()), None);
        assert_eq!(closest("retries", CLUSTER_FIELDS.iter().copied()), None);
    }

    #[test]
    fn hint_suggests_the_close_name_or_lists_them_all() {
        assert_eq!(
            hint("nme", "known fields", &["name", "weight"]),
            "did you mean \"name\"?"
        );
        assert_eq!(
            hint("zzz", "known fields", &["name", "weight"]),
            "known fields: name, weight"
        );
    }
}
