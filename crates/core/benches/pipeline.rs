//! What preparing one record costs — `pipeline::prepare`: validate the source against its
//! schema, read the student's record, prune it to the scope, convert it, validate the result —
//! against the floor it cannot go below, measured in the same run on the same documents: the
//! two schema validations alone (the source, then the converted document).
//!
//! ```text
//! cargo bench -p siirto-core --bench pipeline            # 10 KB, 64 KB, 1 MB, 4 MB
//! SIIRTO_BENCH_QUICK=1 cargo bench -p siirto-core --bench pipeline   # 10 KB and 1 MB
//! ```
//! Inputs: VIRTA records grown from the corpus sample `virta/samples/Virta.xml` (its course
//! achievements repeated with fresh keys until the size is reached), validated with the official
//! VIRTA schema; each is converted to siirto-v1 and to ELMO (unsigned; signing has its own
//! bench), and the siirto-v1 result is then used as a siirto-v1 source (siirto-v1 → siirto-v1,
//! the transfers bench's route). Needs the corpus (`SIIRTO_CORPUS`, else `../shared/corpus`).
//!
//! Figures: **CPU** time of the measuring thread (`/proc/thread-self/schedstat`, best of
//! several runs), so other load on the machine moves them little; **heap** is the peak of bytes
//! allocated and not yet freed during one call, above what was allocated before it, counted by a
//! wrapping global allocator (so it is the call's own working memory, with the input it is
//! given excluded), and its ratio to the record's size.

use std::path::{Path, PathBuf};

use peak_alloc::PeakAlloc;

use siirto_core::clock::Timestamp;
use siirto_core::config::SchemaPaths;
use siirto_core::formats::json_in::JsonLimits;
use siirto_core::formats::{Format, WriteContext};
use siirto_core::pipeline::{self, Schemas, Signatures, Task};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;

/// The system allocator, counting the bytes in use and their peak.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// CPU time of this thread in seconds.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Best CPU seconds per call of `f` over `trials` runs of `repeat` calls each, and the peak
/// heap of one call above what was in use before it.
fn measure<T>(trials: usize, repeat: usize, mut f: impl FnMut() -> T) -> (f64, usize) {
    let mut best = f64::MAX;
    for _ in 0..trials {
        let start = thread_cpu();
        for _ in 0..repeat {
            std::hint::black_box(f());
        }
        best = best.min((thread_cpu() - start) / repeat as f64);
    }
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = f();
    let peak = HEAP.peak_usage().saturating_sub(before);
    drop(out);
    (best, peak)
}

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SIIRTO_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
        PathBuf::from,
    );
    dir.join("virta/samples/Virta.xml").is_file().then_some(dir)
}

/// The corpus sample with its course achievements repeated (fresh `avain` each) until the
/// document is at least `target` bytes.
fn virta_record(sample: &str, target: usize) -> Vec<u8> {
    let start = sample
        .find("<Opintosuoritus ")
        .expect("the sample has achievements");
    let end = sample.rfind("</Opintosuoritus>").expect("closed") + "</Opintosuoritus>".len();
    let (head, courses, tail) = (&sample[..start], &sample[start..end], &sample[end..]);
    let mut out = String::with_capacity(target + courses.len());
    out.push_str(head);
    out.push_str(courses);
    let mut i = 0u64;
    while out.len() + tail.len() < target {
        out.push_str("\n\t");
        out.push_str(&courses.replace("avain=\"K", &format!("avain=\"R{i}K")));
        i += 1;
    }
    out.push_str(tail);
    out.into_bytes()
}

struct Case<'a> {
    schemas: &'a Schemas,
    subject: &'a StudentId,
    limits: &'a Limits,
    json: &'a JsonLimits,
    context: &'a WriteContext,
}

impl Case<'_> {
    fn prepare(&self, source: &[u8], from: Format, to: Format) -> pipeline::Prepared {
        pipeline::prepare(
            source,
            self.schemas,
            Task {
                from,
                to,
                subject: self.subject,
                scope: Scope::all(),
                limits: self.limits,
                json_limits: self.json,
                context: self.context,
                signatures: Signatures::default(),
            },
        )
        .unwrap_or_else(|e| panic!("{from} → {to}: {e}"))
    }

    /// Prints one row: prepare against the two validations, CPU and heap.
    fn row(&self, source: &[u8], from: Format, to: Format, trials: usize) -> Vec<u8> {
        let repeat = (2_000_000 / source.len()).clamp(1, 400);
        let out = self.prepare(source, from, to).document;
        let (from_schema, to_schema) = (
            self.schemas.get(from).expect("schema"),
            self.schemas.get(to).expect("schema"),
        );
        let (floor, floor_heap) = measure(trials, repeat, || {
            from_schema.validate(source, self.limits).expect("valid");
            to_schema.validate(&out, self.limits).expect("valid");
        });
        let (parse, parse_heap) = measure(trials, repeat, || {
            siirto_xsd::dom::parse(source, self.limits).expect("parses")
        });
        let (cpu, heap) = measure(trials, repeat, || self.prepare(source, from, to));
        let kb = source.len() as f64 / 1024.0;
        println!(
            "{:>9.1} KB  {:<22} prepare {:>8.3} ms  two validations {:>8.3} ms  ratio {:>5.2}×  \
             dom::parse {:>7.3} ms  | heap: prepare {:>7.2} MiB = {:>5.1}× the record, \
             validations {:>6.2} MiB, dom::parse {:>6.2} MiB ({:.1}×)",
            kb,
            format!("{from} → {to}"),
            cpu * 1e3,
            floor * 1e3,
            cpu / floor,
            parse * 1e3,
            mib(heap),
            heap as f64 / source.len() as f64,
            mib(floor_heap),
            mib(parse_heap),
            parse_heap as f64 / source.len() as f64,
        );
        out
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let Some(corpus) = corpus() else {
        println!("SKIPPED: pipeline bench needs the corpus (set SIIRTO_CORPUS)");
        return;
    };
    let quick = std::env::var_os("SIIRTO_BENCH_QUICK").is_some();
    let sample = std::fs::read_to_string(corpus.join("virta/samples/Virta.xml")).expect("sample");
    let paths = SchemaPaths {
        siirto_v1: None,
        virta: Some(corpus.join("virta/xsd/Virta.xsd")),
        elmo: Some(corpus.join("elmo/schema.xsd")),
    };
    let schemas = Schemas::load(&paths, [Format::Virta, Format::SiirtoV1, Format::Elmo])
        .expect("schemas load");
    let subject = StudentId::parse("010190-020A").expect("the sample's student");
    let limits = Limits {
        max_bytes: 64 << 20,
        max_elements: 4_000_000,
        ..Limits::default()
    };
    let json = JsonLimits::default();
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("virta");
    let case = Case {
        schemas: &schemas,
        subject: &subject,
        limits: &limits,
        json: &json,
        context: &context,
    };
    let sizes: &[usize] = if quick {
        &[10 << 10, 1 << 20]
    } else {
        &[10 << 10, 64 << 10, 1 << 20, 4 << 20]
    };
    println!(
        "pipeline::prepare against its two schema validations (CPU of this thread, best of {} runs)",
        if quick { 3 } else { 5 }
    );
    for &size in sizes {
        let trials = if quick { 3 } else { 5 };
        let virta = virta_record(&sample, size);
        let v1 = case.row(&virta, Format::Virta, Format::SiirtoV1, trials);
        case.row(&virta, Format::Virta, Format::Elmo, trials);
        case.row(&v1, Format::SiirtoV1, Format::SiirtoV1, trials);
    }
}
