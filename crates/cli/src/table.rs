//! Docker-style column output, as the docker CLI's Go tabwriter lays it
//! out: columns at least 10 wide (20 for `top`), three spaces past their
//! widest cell; and Docker's human-readable sizes.

/// Go's text/tabwriter with the docker CLI's formatter settings (min width
/// 10, tab width 1, padding 3, spaces), as every `--format` table uses it.
pub fn tabwriter(text: &str) -> String {
    tabwriter_min(text, 10)
}

/// Go's text/tabwriter with padding 3 and spaces, columns at least
/// `min_width` wide (`top` asks for 20): a cell is text ended by a tab, and
/// a column is as wide as its widest cell among the consecutive lines that
/// have it; the text after a line's last tab is not padded.
pub fn tabwriter_min(text: &str, min_width: usize) -> String {
    const PADDING: usize = 3;
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let columns = lines.iter().map(|l| l.len()).max().unwrap_or(1) - 1;
    // width[i][j]: the width of line i's cell j.
    let mut width: Vec<Vec<usize>> = lines.iter().map(|l| vec![0; l.len()]).collect();
    for j in 0..columns {
        let mut i = 0;
        while i < lines.len() {
            if lines[i].len() <= j + 1 {
                i += 1;
                continue;
            }
            let start = i;
            let mut w = min_width;
            while i < lines.len() && lines[i].len() > j + 1 {
                w = w.max(lines[i][j].chars().count() + PADDING);
                i += 1;
            }
            for row in &mut width[start..i] {
                row[j] = w;
            }
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (cells, w) in lines.iter().zip(&width) {
        let last = cells.len() - 1;
        for (j, c) in cells.iter().enumerate() {
            out.push_str(c);
            if j < last {
                let n = w[j].saturating_sub(c.chars().count());
                out.extend(std::iter::repeat_n(' ', n));
            }
        }
        out.push('\n');
    }
    out
}

/// Docker's human sizes: 4.26MB, 1.2GB (decimal units, 3 significant
/// digits: go-units' HumanSizeWithPrecision(size, 3)).
pub fn human_size(bytes: u64) -> String {
    human_size_precision(bytes, 3)
}

/// go-units' HumanSizeWithPrecision: `%.{precision}g` of the size in the
/// largest decimal unit that keeps it under 1000.
pub fn human_size_precision(bytes: u64, precision: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    custom_size(bytes, 1000.0, &units, precision)
}

/// go-units' BytesSize, Docker's memory sizes: binary units, 4 significant
/// digits (`1.5MiB`, `23.42GiB`).
pub fn bytes_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    custom_size(bytes, 1024.0, &units, 4)
}

/// go-units' CustomSize: divide by `base` while it fits, `%.{precision}g`.
fn custom_size(bytes: u64, base: f64, units: &[&str], precision: usize) -> String {
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if v == 0.0 {
        return format!("0{}", units[0]);
    }
    // Go's %g: `precision` significant digits, trailing zeros dropped.
    let magnitude = v.log10().floor() as i64;
    let decimals = (precision as i64 - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let s = tabwriter("A\tLONGER\nxyz\t1\n");
        assert_eq!(s, "A         LONGER\nxyz       1\n");
        let s = tabwriter("CONTAINER ID\tPORTS\tNAMES\nabc\t\tx\n");
        assert_eq!(
            s,
            "CONTAINER ID   PORTS     NAMES\nabc                      x\n"
        );
        // A line with fewer cells ends the column block above it.
        assert_eq!(
            tabwriter("a\tb\nlonger-than-ten\tc\nx\n"),
            "a                 b\nlonger-than-ten   c\nx\n"
        );
        assert_eq!(
            tabwriter("a\tb\nx\nlonger-than-ten\tc\n"),
            "a         b\nx\nlonger-than-ten   c\n"
        );
        // `top`'s minimum of 20; the last column is never padded.
        assert_eq!(
            tabwriter_min("UID\tPID\tCMD\nroot\t1\tsleep 1000\n", 20),
            "UID                 PID                 CMD\n\
             root                1                   sleep 1000\n"
        );
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size_precision(1_234_567, 4), "1.235MB");
        assert_eq!(human_size_precision(212, 4), "212B");
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1536 * 1024), "1.5MiB");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(25_143_000_000), "23.42GiB");
        assert_eq!(human_size(4096), "4.1kB");
        assert_eq!(human_size(12_345_678), "12.3MB");
    }
}
