//! Docker-style column output: left-aligned columns separated by at least
//! three spaces, header in capitals.

use berth_io::out;

pub fn print(header: &[&str], rows: &[Vec<String>]) {
    out!("{}", render(header, rows));
}

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(width[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Docker's human sizes: 4.26MB, 1.2GB (decimal units, 3 significant digits).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{bytes}B");
    }
    // Three significant digits, rounded, like Go's %.4g in Docker.
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
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
        let s = render(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(s, "A     LONGER\nxyz   1\n");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(human_size(123_456_789), "123MB");
    }
}
