//! `/proc/PID/stat`, the fields berth reads from it. The command name
//! (field 2) may contain spaces and parentheses, so fields are counted from
//! after its *last* closing parenthesis.

/// The fields of one `/proc/PID/stat` that berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `Z` (zombie), `X` (dead)…
    pub state: char,
    /// Field 20.
    pub threads: u64,
    /// Field 22: clock ticks after boot when the process started.
    pub start_time: u64,
}

impl Stat {
    /// The stat of `pid`, None if there is no such process.
    pub fn of(pid: i32) -> Option<Stat> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// The stat of this process.
    pub fn of_self() -> Option<Stat> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Parse the text of a `/proc/PID/stat`.
    pub fn parse(text: &str) -> Option<Stat> {
        // Skip past the command name's closing parenthesis and the space
        // after it; what is left starts at field 3.
        let rest = text.get(text.rfind(')')? + 2..)?;
        let mut fields = rest.split(' ');
        let state = fields.next()?.chars().next()?;
        let threads = fields.nth(16)?.parse().ok()?;
        let start_time = fields.nth(1)?.parse().ok()?;
        Some(Stat {
            state,
            threads,
            start_time,
        })
    }

    /// Whether the process has exited (a zombie only waits to be reaped).
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    Stat::of(pid).map(|s| s.start_time)
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn fields_count_from_the_last_parenthesis() {
        let line = "4242 (a b) (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                state: 'S',
                threads: 3,
                start_time: 987654
            })
        );
        let zombie = line.replace(" S ", " Z ");
        assert!(Stat::parse(&zombie).unwrap().exited());
        assert_eq!(Stat::parse("4242 (trunc"), None);
        assert_eq!(Stat::parse("4242 (x)"), None);
    }

    #[test]
    fn this_process_has_a_stat() {
        let me = Stat::of_self().unwrap();
        assert!(me.threads >= 1 && !me.exited());
        let pid = std::process::id() as i32;
        assert_eq!(super::start_time(pid), Some(me.start_time));
    }
}
