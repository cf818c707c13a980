//! [`LineBuffer`]: a byte stream read in large blocks and handed out as complete lines, with
//! line numbers and stream offsets.

use std::io::Read;

/// Bytes read but not yet handed out. A partial last line waits for more data.
#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// First byte not handed out.
    start: usize,
    /// End of the data.
    end: usize,
    /// The number of the next line.
    next_line: u64,
    /// The stream offset of `buf[start]`.
    offset: u64,
}

impl LineBuffer {
    /// A buffer reading `block` bytes at a time, whose first line is `first_line` at stream
    /// offset `offset`.
    pub(crate) fn new(block: usize, first_line: u64, offset: u64) -> Self {
        Self {
            buf: vec![0; block.max(64)],
            start: 0,
            end: 0,
            next_line: first_line,
            offset,
        }
    }

    /// Forgets everything and starts again at `first_line`, `offset`.
    pub(crate) fn reset(&mut self, first_line: u64, offset: u64) {
        self.start = 0;
        self.end = 0;
        self.next_line = first_line;
        self.offset = offset;
    }

    /// The stream offset just past the last line handed out.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream offset just past the data read (the offset plus a partial line).
    pub(crate) fn read_offset(&self) -> u64 {
        self.offset + (self.end - self.start) as u64
    }

    /// Makes room after the data: moves the unread rest to the front, and grows the buffer
    /// when a single line fills it.
    fn make_room(&mut self, wanted: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < wanted {
            let len = (self.end + wanted).max(self.buf.len() * 2);
            self.buf.resize(len, 0);
        }
    }

    /// Reads once from `reader` (retrying when interrupted); returns the bytes read, 0 at
    /// the end of the input.
    pub(crate) fn read_from(&mut self, reader: &mut impl Read) -> std::io::Result<usize> {
        let half = self.buf.len() / 2;
        if self.buf.len() - self.end < half {
            self.make_room(half);
        }
        loop {
            match reader.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.buf.len() - self.end < data.len() {
            self.make_room(data.len());
        }
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// The next complete line (without its `\n`) and its number.
    pub(crate) fn next_line(&mut self) -> Option<(&[u8], u64)> {
        let rest = &self.buf[self.start..self.end];
        let len = find_newline(rest)?;
        let line = &self.buf[self.start..self.start + len];
        self.start += len + 1;
        self.offset += len as u64 + 1;
        let number = self.next_line;
        self.next_line += 1;
        Some((line, number))
    }

    /// At the end of the input: the last line if it has no `\n`.
    pub(crate) fn take_rest(&mut self) -> Option<(&[u8], u64)> {
        if self.start == self.end {
            return None;
        }
        let line = &self.buf[self.start..self.end];
        self.offset += line.len() as u64;
        self.start = self.end;
        let number = self.next_line;
        self.next_line += 1;
        Some((line, number))
    }

    /// The next complete record as `find` delimits it: `find` gets the unread bytes and
    /// returns the record's length including its terminator and the lines it spans. At the
    /// end of the input (`at_end`) the unterminated rest is a record too. Returns the record
    /// without its final `\n`, and its first line number.
    pub(crate) fn next_record(
        &mut self,
        find: impl FnOnce(&[u8]) -> Option<(usize, u64)>,
        at_end: bool,
    ) -> Option<(&[u8], u64)> {
        let rest = &self.buf[self.start..self.end];
        let (len, lines) = match find(rest) {
            Some(found) => found,
            None if at_end && !rest.is_empty() => (rest.len(), 1),
            None => return None,
        };
        let record = &self.buf[self.start..self.start + len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        self.start += len;
        self.offset += len as u64;
        let number = self.next_line;
        self.next_line += lines;
        Some((record, number))
    }
}

/// The position of the first `\n`, eight bytes at a time.
pub(crate) fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    const NL: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunks of eight"));
        let x = word ^ NL;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            let at = chunk.iter().position(|&b| b == b'\n');
            return at.map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_newlines_anywhere() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                if at < len {
                    v[at] = b'\n';
                }
                let want = (at < len).then_some(at);
                assert_eq!(find_newline(&v), want, "len {len} at {at}");
            }
        }
        // Bytes with the high bit set are not newlines.
        assert_eq!(find_newline(&[0x8a; 20]), None);
    }

    #[test]
    fn hands_out_lines_across_reads() {
        let data = b"one\ntwo\nthree\nfour";
        let mut reader = std::io::Cursor::new(&data[..]);
        let mut lines = LineBuffer::new(64, 1, 0);
        let mut got = Vec::new();
        // A tiny reader: 3 bytes at a time.
        loop {
            let mut part = [0u8; 3];
            let n = reader.read(&mut part).unwrap();
            if n == 0 {
                break;
            }
            lines.extend(&part[..n]);
            while let Some((line, no)) = lines.next_line() {
                got.push((String::from_utf8(line.to_vec()).unwrap(), no));
            }
        }
        let (line, no) = lines.take_rest().unwrap();
        got.push((String::from_utf8(line.to_vec()).unwrap(), no));
        let want: Vec<_> = [("one", 1), ("two", 2), ("three", 3), ("four", 4)]
            .iter()
            .map(|(s, n)| ((*s).to_owned(), *n))
            .collect();
        assert_eq!(got, want);
        assert_eq!(lines.offset(), data.len() as u64);
    }

    #[test]
    fn grows_for_long_lines() {
        let long = vec![b'x'; 1000];
        let mut data = long.clone();
        data.push(b'\n');
        let mut reader = std::io::Cursor::new(data);
        let mut lines = LineBuffer::new(64, 1, 0);
        while lines.read_from(&mut reader).unwrap() > 0 {}
        let (line, no) = lines.next_line().unwrap();
        assert_eq!((line, no), (&long[..], 1));
        assert_eq!(lines.offset(), 1001);
    }
}
