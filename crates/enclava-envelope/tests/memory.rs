//! Streaming with constant memory: a 64 MiB stream goes through encryption and decryption
//! via an OS pipe (never held in memory), and no read or write ever exceeds one chunk frame.

mod common;

use std::io::{self, Read, Write};

use common::{options, wrapper};
use enclava_envelope::{DEFAULT_CHUNK_SIZE, Decryptor, FRAME_LEN, TAG_LEN, decrypt, encrypt};

const SIZE: u64 = 64 * 1024 * 1024;

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9) ^ (i >> 17)) as u8
}

/// Generates `SIZE` pattern bytes lazily and records the largest read request.
struct PatternReader {
    pos: u64,
    max_request: usize,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_request = self.max_request.max(buf.len());
        let n = buf.len().min((SIZE - self.pos) as usize);
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Records the largest read request of the wrapped reader.
struct CountingReader<R> {
    inner: R,
    max_request: usize,
    total: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_request = self.max_request.max(buf.len());
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        Ok(n)
    }
}

/// Records the largest write and checks the bytes against the pattern without storing them.
struct CheckingWriter {
    pos: u64,
    max_write: usize,
    mismatches: u64,
}

impl Write for CheckingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.max_write = self.max_write.max(buf.len());
        for (k, b) in buf.iter().enumerate() {
            if *b != pattern_byte(self.pos + k as u64) {
                self.mismatches += 1;
            }
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Records the largest write and forwards to the wrapped writer.
struct CountingWriter<W> {
    inner: W,
    max_write: usize,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.max_write = self.max_write.max(buf.len());
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn encrypt_into_pipe() -> (io::PipeReader, std::thread::JoinHandle<(usize, usize)>) {
    let (pipe_reader, pipe_writer) = io::pipe().expect("pipe");
    let producer = std::thread::spawn(move || {
        let mut source = PatternReader {
            pos: 0,
            max_request: 0,
        };
        let mut sink = CountingWriter {
            inner: pipe_writer,
            max_write: 0,
        };
        let summary = encrypt(
            &mut source,
            &mut sink,
            &wrapper(),
            &options(DEFAULT_CHUNK_SIZE),
            &mut |_| {},
        )
        .expect("encryption succeeds");
        assert_eq!(summary.plaintext_bytes, SIZE);
        (source.max_request, sink.max_write)
    });
    (pipe_reader, producer)
}

#[test]
fn sixty_four_mib_stream_in_constant_memory() {
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    let frame = FRAME_LEN + chunk + TAG_LEN;
    let (pipe_reader, producer) = encrypt_into_pipe();
    let mut input = CountingReader {
        inner: pipe_reader,
        max_request: 0,
        total: 0,
    };
    let mut output = CheckingWriter {
        pos: 0,
        max_write: 0,
        mismatches: 0,
    };
    let summary = decrypt(&mut input, &mut output, &wrapper(), &mut |_| {}).expect("decrypts");
    let (source_max_request, sink_max_write) = producer.join().expect("producer thread");

    assert_eq!(summary.plaintext_bytes, SIZE);
    assert_eq!(output.pos, SIZE);
    assert_eq!(output.mismatches, 0);
    assert_eq!(summary.chunks, SIZE / chunk as u64);
    assert_eq!(input.total, summary.envelope_bytes);
    // Buffers are bounded by one chunk frame, independent of the 64 MiB input.
    assert!(
        source_max_request <= chunk + 1,
        "encrypt read {source_max_request}"
    );
    assert!(sink_max_write <= frame, "encrypt wrote {sink_max_write}");
    assert!(
        input.max_request <= frame + FRAME_LEN,
        "decrypt read {}",
        input.max_request
    );
    assert!(
        output.max_write <= chunk,
        "decrypt wrote {}",
        output.max_write
    );
}

#[test]
fn decryptor_streams_in_constant_memory() {
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    let (pipe_reader, producer) = encrypt_into_pipe();
    let mut input = CountingReader {
        inner: pipe_reader,
        max_request: 0,
        total: 0,
    };
    let mut decryptor = Decryptor::new(&mut input, &wrapper()).expect("header");
    let mut output = CheckingWriter {
        pos: 0,
        max_write: 0,
        mismatches: 0,
    };
    let copied = io::copy(&mut decryptor, &mut output).expect("decrypts");
    drop(decryptor);
    producer.join().expect("producer thread");
    assert_eq!(copied, SIZE);
    assert_eq!(output.mismatches, 0);
    assert!(input.max_request <= FRAME_LEN + chunk + TAG_LEN + FRAME_LEN);
}

/// Records the alignment of every read request that starts a chunk (a request for at least a
/// whole chunk; a shorter one continues a chunk after a short read).
struct AlignmentReader<'a> {
    inner: &'a [u8],
    misaligned: Vec<(usize, usize)>,
    reads: usize,
}

impl Read for AlignmentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let offset = buf.as_ptr().addr() % 64;
        if offset != 0 && buf.len() >= DEFAULT_CHUNK_SIZE as usize {
            self.misaligned.push((buf.len(), offset));
        }
        self.inner.read(buf)
    }
}

/// `encrypt` copies the source into its chunk buffers: every copy must land on a cache-line
/// boundary (a one-byte lookahead carried into the next chunk used to put every read after the
/// first one byte past it, which makes large copies slow on some CPUs). The output is still
/// the format: it decrypts to the input.
#[test]
fn encrypt_reads_into_cache_line_aligned_buffers() {
    let plaintext: Vec<u8> = (0..5 * 65536 + 77).map(pattern_byte).collect();
    for len in [0, 65536, 3 * 65536, plaintext.len()] {
        let mut reader = AlignmentReader {
            inner: &plaintext[..len],
            misaligned: Vec::new(),
            reads: 0,
        };
        let mut envelope = Vec::new();
        encrypt(
            &mut reader,
            &mut envelope,
            &wrapper(),
            &options(DEFAULT_CHUNK_SIZE),
            &mut |_| {},
        )
        .unwrap();
        assert!(reader.reads >= 1);
        assert!(
            reader.misaligned.is_empty(),
            "len {len}: reads (length, offset into the cache line) not aligned: {:?}",
            reader.misaligned
        );
        let mut out = Vec::new();
        decrypt(envelope.as_slice(), &mut out, &wrapper(), &mut |_| {}).unwrap();
        assert_eq!(out, &plaintext[..len]);
    }
}
