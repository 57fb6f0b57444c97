//! The Prometheus text format 0.0.4, made from the OpenMetrics text the
//! registry writes, for scrapers and tools that read only the older format
//! (`promtool check metrics`, many text parsers): there a counter's family
//! is named with its `_total` suffix, and neither `# UNIT` nor `# EOF`
//! exists. Everything else (HELP, histograms, gauges, labels) is the same.

/// `Content-Type` of [`to_text_format`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `openmetrics` in the text format 0.0.4.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        // A counter's `_created` sample has no place in 0.0.4.
        let created = counters.iter().any(|c| line.starts_with(&format!("{c}_created")));
        if created {
            continue;
        }
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_and_the_openmetrics_lines_go() {
        let openmetrics = "# HELP jobs Jobs done.\n# TYPE jobs counter\njobs_total{a=\"b\"} 3\njobs_created 1.0\n\
                           # HELP depth Queue depth.\n# TYPE depth gauge\n# UNIT depth items\ndepth 2\n# EOF\n";
        assert_eq!(
            to_text_format(openmetrics),
            "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total{a=\"b\"} 3\n\
             # HELP depth Queue depth.\n# TYPE depth gauge\ndepth 2\n"
        );
    }
}
