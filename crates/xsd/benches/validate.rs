//! `cargo bench --bench validate`: the XML Schema engine against libxml2 on VIRTA data.
//!
//! Measures, on the corpus's largest VIRTA sample and on a generated VIRTA document of at
//! least 50 MB: the engine's streaming validation, a bare quick-xml parse of the same bytes
//! (the floor), and `xmllint --noout --schema` (plus `--stream`, and libxml2's bare parse).
//! Each measurement runs in a child process so its peak memory (`VmHWM`, or GNU time's
//! maximum RSS for xmllint) is its own. Prints MB/s, ratios and peak memory; see
//! BENCHMARKS.md for recorded figures.
//!
//! The generated document is deterministic (fixed seed) and built from the real VIRTA code
//! lists in `koodistot.xsd`, so enumeration lookups see realistic keys.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use siirto_xsd::Limits;
use siirto_xsd::schema::Schema;

const CHILD_ENV: &str = "SIIRTO_BENCH_CHILD";

fn corpus_dir() -> PathBuf {
    match std::env::var_os("SIIRTO_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    }
}

fn bench_limits() -> Limits {
    Limits {
        max_bytes: usize::MAX,
        max_elements: usize::MAX,
        ..Limits::default()
    }
}

/// CPU time this process has spent running, in seconds (`/proc/self/schedstat`): unlike
/// wall time it does not grow when other processes compete for the CPU.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Elapsed CPU time since `start` (falls back to wall time without schedstat).
struct Timer {
    cpu: f64,
    wall: Instant,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            cpu: cpu_seconds(),
            wall: Instant::now(),
        }
    }
    fn seconds(&self) -> f64 {
        let cpu = cpu_seconds() - self.cpu;
        if cpu > 0.0 {
            cpu
        } else {
            self.wall.elapsed().as_secs_f64()
        }
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs one measurement in this (child) process and prints `seconds peak_kib`.
fn child(mode: &str, file: &Path, repeat: usize) {
    let schema_path = corpus_dir().join("virta/xsd/Virta.xsd");
    match mode {
        "engine" => {
            let schema = Schema::load(&schema_path).expect("schema loads");
            let start = Timer::start();
            for _ in 0..repeat {
                let f = std::fs::File::open(file).expect("open");
                let r =
                    schema.validate_reader(BufReader::with_capacity(64 * 1024, f), &bench_limits());
                if let Err(e) = r {
                    eprintln!("engine: {e}");
                    std::process::exit(3);
                }
            }
            println!("{} {}", start.seconds(), vm_hwm_kib());
        }
        "engine-slice" => {
            let schema = Schema::load(&schema_path).expect("schema loads");
            let bytes = std::fs::read(file).expect("read");
            let start = Timer::start();
            for _ in 0..repeat {
                if let Err(e) = schema.validate(&bytes, &bench_limits()) {
                    eprintln!("engine: {e}");
                    std::process::exit(3);
                }
            }
            println!("{} {}", start.seconds(), vm_hwm_kib());
        }
        "schema-load" => {
            let start = Timer::start();
            for _ in 0..repeat {
                Schema::load(&schema_path).expect("schema loads");
            }
            println!("{} {}", start.seconds(), vm_hwm_kib());
        }
        "parse" => {
            let start = Timer::start();
            let mut events = 0u64;
            for _ in 0..repeat {
                let f = std::fs::File::open(file).expect("open");
                let mut reader =
                    quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, f));
                let mut buf = Vec::with_capacity(4096);
                loop {
                    buf.clear();
                    match reader.read_event_into(&mut buf) {
                        Ok(quick_xml::events::Event::Eof) => break,
                        Ok(_) => events += 1,
                        Err(e) => {
                            eprintln!("parse: {e}");
                            std::process::exit(3);
                        }
                    }
                }
            }
            std::hint::black_box(events);
            println!("{} {}", start.seconds(), vm_hwm_kib());
        }
        "parse-slice" => {
            let bytes = std::fs::read(file).expect("read");
            let start = Timer::start();
            let mut events = 0u64;
            for _ in 0..repeat {
                let mut reader = quick_xml::Reader::from_reader(bytes.as_slice());
                loop {
                    match reader.read_event() {
                        Ok(quick_xml::events::Event::Eof) => break,
                        Ok(_) => events += 1,
                        Err(e) => {
                            eprintln!("parse: {e}");
                            std::process::exit(3);
                        }
                    }
                }
            }
            std::hint::black_box(events);
            println!("{} {}", start.seconds(), vm_hwm_kib());
        }
        other => panic!("unknown mode {other}"),
    }
}

struct Measurement {
    seconds: f64,
    peak_kib: u64,
}

/// The best of several child runs: the machine is shared, so the minimum is the most
/// faithful figure for the code itself.
fn run_child(mode: &str, file: &Path, repeat: usize) -> Measurement {
    let trials: usize = std::env::var("SIIRTO_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut best: Option<Measurement> = None;
    for _ in 0..trials.max(1) {
        let m = run_child_once(mode, file, repeat);
        best = Some(match best {
            Some(b) if b.seconds <= m.seconds => Measurement {
                seconds: b.seconds,
                peak_kib: b.peak_kib.max(m.peak_kib),
            },
            Some(b) => Measurement {
                seconds: m.seconds,
                peak_kib: b.peak_kib.max(m.peak_kib),
            },
            None => m,
        });
    }
    best.expect("at least one trial")
}

fn run_child_once(mode: &str, file: &Path, repeat: usize) -> Measurement {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(CHILD_ENV, mode)
        .env("SIIRTO_BENCH_FILE", file)
        .env("SIIRTO_BENCH_REPEAT", repeat.to_string())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut it = stdout.split_whitespace();
    let seconds: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        panic!(
            "child {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let peak_kib = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Measurement { seconds, peak_kib }
}

/// Runs xmllint under GNU time; returns CPU seconds (user + system), peak RSS and whether
/// it validated.
fn run_xmllint(args: &[&str], files: &[&Path]) -> Option<(Measurement, bool)> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("BENCH %U %S %M")
        .arg("xmllint")
        .args(args);
    for f in files {
        cmd.arg(f);
    }
    let out = cmd.output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().rev().find(|l| l.starts_with("BENCH "))?;
    let mut f = line.split_whitespace().skip(1);
    let user: f64 = f.next()?.parse().ok()?;
    let system: f64 = f.next()?.parse().ok()?;
    let peak_kib: u64 = f.next()?.parse().ok()?;
    let wall = user + system;
    let ok = !stderr.contains("fails to validate") && !stderr.contains("parser error");
    Some((
        Measurement {
            seconds: wall,
            peak_kib,
        },
        ok,
    ))
}

// ---------------------------------------------------------------------------------------
// The generated document

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &'a [String]) -> &'a str {
        &v[self.below(v.len())]
    }
}

/// The enumeration values of a simple type in koodistot.xsd.
fn code_list(koodistot: &str, type_name: &str) -> Vec<String> {
    let start = koodistot
        .find(&format!("<xs:simpleType name=\"{type_name}\""))
        .unwrap_or_else(|| panic!("{type_name} not in koodistot.xsd"));
    let end = start
        + koodistot[start..]
            .find("</xs:simpleType>")
            .expect("end of type");
    let body = &koodistot[start..end];
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("<xs:enumeration value=\"") {
        rest = &rest[i + "<xs:enumeration value=\"".len()..];
        let j = rest.find('"').expect("closing quote");
        let v = &rest[..j];
        if !v.contains('&') && !v.contains('<') {
            out.push(v.to_owned());
        }
        rest = &rest[j..];
    }
    assert!(!out.is_empty(), "{type_name} has no values");
    out
}

fn generate(path: &Path, min_bytes: u64) {
    let koodistot = std::fs::read_to_string(corpus_dir().join("virta/xsd/koodistot.xsd"))
        .expect("read koodistot.xsd");
    // Drop comments: the file keeps old, commented-out definitions.
    let mut uncommented = String::with_capacity(koodistot.len());
    let mut rest = koodistot.trim_start_matches('\u{feff}');
    while let Some(i) = rest.find("<!--") {
        uncommented.push_str(&rest[..i]);
        rest = rest[i..].find("-->").map_or("", |j| &rest[i + j + 3..]);
    }
    uncommented.push_str(rest);
    let koodistot = uncommented.as_str();
    let orgs = code_list(koodistot, "OrganisaatioKoodiTyyppi");
    let koulutus = code_list(koodistot, "KoulutuskoodiKoodiTyyppi");
    let kunnat = code_list(koodistot, "KuntaKoodiTyyppi");
    let kielet = code_list(koodistot, "KieliKoodiTyyppi");
    let maat = code_list(koodistot, "MaatunnusKoodiTyyppi");
    let patevyys = code_list(koodistot, "PatevyysKoodiTyyppi");
    let rooli = code_list(koodistot, "OrganisaatioRooliKoodiTyyppi");
    let oo_tila = code_list(koodistot, "OpiskeluoikeusTilaKoodiTyyppi");
    let oo_tyyppi = code_list(koodistot, "OpiskeluoikeusTyyppiKoodiTyyppi");
    let li_tila = code_list(koodistot, "LukukausiIlmoittautuminenTilaKoodiTyyppi");
    let laji = code_list(koodistot, "OpintosuoritusLajiKoodiTyyppi");
    let ala = code_list(koodistot, "KoulutusalaKoodiTyyppi");
    let suunta = code_list(koodistot, "LiikkuvuusSuuntaKoodiTyyppi");
    let viisi = code_list(koodistot, "ArvosanaViisiportainenKoodiTyyppi");
    let tutkielma = code_list(koodistot, "ArvosanaTutkielmaKoodiTyyppi");
    let rahoitus = code_list(koodistot, "RahoituslahdeKoodiTyyppi");
    let mut rng = Rng(0x5EED_0F51_1270);
    let file = std::fs::File::create(path).expect("create bench file");
    let mut w = std::io::BufWriter::new(file);
    let mut written: u64 = 0;
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Virta xmlns=\"urn:mace:funet.fi:virta/2015/09/01\">\n");
    let mut student = 0u64;
    while written + out.len() as u64 <= min_bytes {
        student += 1;
        let key = format!("S{student:08}");
        let year = 1990 + rng.below(30);
        out.push_str(&format!("\t<Opiskelija avain=\"{key}\">\n"));
        out.push_str(&format!(
            "\t\t<Sukunimi>Sukunimi{}</Sukunimi>\n\t\t<Etunimet>Etunimi {}</Etunimet>\n\t\t<Sukupuoli>{}</Sukupuoli>\n\t\t<Kansalaisuus>{}</Kansalaisuus>\n\t\t<Aidinkieli>{}</Aidinkieli>\n\t\t<Asuinkunta>{}</Asuinkunta>\n\t\t<KirjoihintuloPvm>{year}-08-{:02}</KirjoihintuloPvm>\n",
            rng.below(100_000),
            rng.below(100_000),
            [1, 2, 9][rng.below(3)],
            rng.pick(&maat),
            rng.pick(&kielet),
            rng.pick(&kunnat),
            1 + rng.below(28)
        ));
        let myontaja = rng.pick(&orgs).to_owned();
        out.push_str("\t\t<Opiskeluoikeudet>\n");
        for o in 0..1 + rng.below(2) {
            out.push_str(&format!(
                "\t\t\t<Opiskeluoikeus avain=\"{key}-O{o}\" opiskelijaAvain=\"{key}\">\n\t\t\t\t<AlkuPvm>{year}-08-01</AlkuPvm>\n\t\t\t\t<Tila>\n\t\t\t\t\t<AlkuPvm>{year}-08-01</AlkuPvm>\n\t\t\t\t\t<Koodi>{}</Koodi>\n\t\t\t\t</Tila>\n\t\t\t\t<Tyyppi>{}</Tyyppi>\n\t\t\t\t<Myontaja>{myontaja}</Myontaja>\n\t\t\t\t<Jakso koulutusmoduulitunniste=\"KM{o}\">\n\t\t\t\t\t<AlkuPvm>{year}-08-01</AlkuPvm>\n\t\t\t\t\t<Koulutuskoodi>{}</Koulutuskoodi>\n\t\t\t\t\t<Koulutuskunta>{}</Koulutuskunta>\n\t\t\t\t\t<Koulutuskieli>{}</Koulutuskieli>\n\t\t\t\t\t<Rahoituslahde>{}</Rahoituslahde>\n\t\t\t\t</Jakso>\n\t\t\t\t<Laajuus>\n\t\t\t\t\t<Opintopiste>{}</Opintopiste>\n\t\t\t\t</Laajuus>\n\t\t\t</Opiskeluoikeus>\n",
                rng.pick(&oo_tila),
                rng.pick(&oo_tyyppi),
                rng.pick(&koulutus),
                rng.pick(&kunnat),
                rng.pick(&kielet),
                rng.pick(&rahoitus),
                [180, 240, 300, 360][rng.below(4)]
            ));
        }
        out.push_str("\t\t</Opiskeluoikeudet>\n\t\t<LukukausiIlmoittautumiset>\n");
        for l in 0..2 + rng.below(6) {
            let y = year + l / 2;
            let (a, b) = if l % 2 == 0 {
                ("08-01", "12-31")
            } else {
                ("01-01", "07-31")
            };
            out.push_str(&format!(
                "\t\t\t<LukukausiIlmoittautuminen opiskelijaAvain=\"{key}\" opiskeluoikeusAvain=\"{key}-O0\">\n\t\t\t\t<Myontaja>{myontaja}</Myontaja>\n\t\t\t\t<Tila>{}</Tila>\n\t\t\t\t<IlmoittautumisPvm>{y}-07-{:02}</IlmoittautumisPvm>\n\t\t\t\t<AlkuPvm>{y}-{a}</AlkuPvm>\n\t\t\t\t<LoppuPvm>{y}-{b}</LoppuPvm>\n\t\t\t</LukukausiIlmoittautuminen>\n",
                rng.pick(&li_tila),
                1 + rng.below(28)
            ));
        }
        out.push_str("\t\t</LukukausiIlmoittautumiset>\n\t\t<Opintosuoritukset>\n");
        for s in 0..8 + rng.below(20) {
            let grade = match rng.below(3) {
                0 => format!("<Viisiportainen>{}</Viisiportainen>", rng.pick(&viisi)),
                1 => "<Hyvaksytty>HYV</Hyvaksytty>".to_owned(),
                _ => format!("<Tutkielma>{}</Tutkielma>", rng.pick(&tutkielma)),
            };
            out.push_str(&format!(
                "\t\t\t<Opintosuoritus avain=\"{key}-K{s}\" opiskelijaAvain=\"{key}\" koulutusmoduulitunniste=\"KURSSI-{}\" opiskeluoikeusAvain=\"{key}-O0\">\n\t\t\t\t<SuoritusPvm>{}-{:02}-{:02}</SuoritusPvm>\n\t\t\t\t<Laajuus>\n\t\t\t\t\t<Opintopiste>{}</Opintopiste>\n\t\t\t\t</Laajuus>\n\t\t\t\t<Arvosana>\n\t\t\t\t\t{grade}\n\t\t\t\t</Arvosana>\n\t\t\t\t<Myontaja>{myontaja}</Myontaja>\n\t\t\t\t<Organisaatio>\n\t\t\t\t\t<Rooli>{}</Rooli>\n\t\t\t\t\t<Koodi>{}</Koodi>\n\t\t\t\t\t<Osuus>{}</Osuus>\n\t\t\t\t</Organisaatio>\n\t\t\t\t<Laji>{}</Laji>\n\t\t\t\t<Nimi kieli=\"fi\">Opintojakso {}</Nimi>\n\t\t\t\t<Nimi kieli=\"en\">Course {}</Nimi>\n\t\t\t\t<Kieli>{}</Kieli>\n\t\t\t\t<Koulutusala>\n\t\t\t\t\t<Koodi versio=\"ohjausala\">{}</Koodi>\n\t\t\t\t</Koulutusala>\n{}\t\t\t</Opintosuoritus>\n",
                rng.below(10_000),
                year + rng.below(6),
                1 + rng.below(12),
                1 + rng.below(28),
                [1, 2, 3, 5, 10][rng.below(5)],
                rng.pick(&rooli),
                rng.pick(&orgs),
                ["1", "0.5", "0.25"][rng.below(3)],
                rng.pick(&laji),
                s,
                s,
                rng.pick(&kielet),
                rng.pick(&ala),
                if rng.below(10) == 0 {
                    format!("\t\t\t\t<Patevyys>{}</Patevyys>\n", rng.pick(&patevyys))
                } else {
                    String::new()
                }
            ));
        }
        out.push_str("\t\t</Opintosuoritukset>\n");
        if rng.below(4) == 0 {
            out.push_str(&format!(
                "\t\t<Liikkuvuusjaksot>\n\t\t\t<Liikkuvuusjakso avain=\"{key}-L\" opiskelijaAvain=\"{key}\">\n\t\t\t\t<Myontaja>{myontaja}</Myontaja>\n\t\t\t\t<AlkuPvm>{year}-01-15</AlkuPvm>\n\t\t\t\t<LoppuPvm>{year}-05-31</LoppuPvm>\n\t\t\t\t<Suunta>{}</Suunta>\n\t\t\t\t<Maa>{}</Maa>\n\t\t\t</Liikkuvuusjakso>\n\t\t</Liikkuvuusjaksot>\n",
                rng.pick(&suunta),
                rng.pick(&maat)
            ));
        }
        out.push_str("\t</Opiskelija>\n");
        if out.len() > 60 * 1024 {
            w.write_all(out.as_bytes()).expect("write");
            written += out.len() as u64;
            out.clear();
        }
    }
    out.push_str("</Virta>\n");
    w.write_all(out.as_bytes()).expect("write");
    w.flush().expect("flush");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let file = PathBuf::from(std::env::var_os("SIIRTO_BENCH_FILE").expect("file"));
        let repeat: usize = std::env::var("SIIRTO_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        child(&mode, &file, repeat);
        return;
    }
    // `cargo bench` passes `--bench`; anything else that looks like a filter is ignored.
    let corpus = corpus_dir();
    let schema = corpus.join("virta/xsd/Virta.xsd");
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&data_dir).expect("create target/bench-data");
    let big = data_dir.join("virta-generated.xml");
    let min_bytes: u64 = std::env::var("SIIRTO_BENCH_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(50)
        * 1_000_000;
    if std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) < min_bytes {
        eprintln!("generating {} ...", big.display());
        generate(&big, min_bytes);
    }
    // The largest VIRTA sample in the corpus that is valid against Virta.xsd.
    let sample = [
        "Virta.xml",
        "LukukausiIlmoittautumiset.xml",
        "lukukausiilmoittautumisen_muutos_keskenkauden_esim.xml",
    ]
    .iter()
    .map(|n| corpus.join("virta/samples").join(n))
    .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
    .expect("a sample");

    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let load = run_child("schema-load", &big, 5);
    println!(
        "schema load (Virta.xsd set, 600 kB of code lists): {:.1} ms each, peak {:.1} MiB",
        load.seconds * 1000.0 / 5.0,
        load.peak_kib as f64 / 1024.0
    );

    // SIIRTO_BENCH_QUICK=1: the generated document only, engine and floor only.
    let quick = std::env::var("SIIRTO_BENCH_QUICK").is_ok_and(|v| v == "1");
    let runs: Vec<(&str, &PathBuf, usize)> = if quick {
        vec![("generated document", &big, 2)]
    } else {
        vec![
            ("corpus sample", &sample, 2000usize),
            ("generated document", &big, 3),
        ]
    };
    for (label, file, repeat) in runs {
        let size = std::fs::metadata(file).expect("size").len();
        println!("\n== {label}: {} ({:.3} MB) ==", file.display(), mb(size));
        let total = mb(size) * repeat as f64;
        let engine = run_child("engine", file, repeat);
        let engine_slice = run_child("engine-slice", file, repeat);
        let parse = run_child("parse", file, repeat);
        let parse_slice = run_child("parse-slice", file, repeat);
        let e_rate = total / engine.seconds;
        let s_rate = total / engine_slice.seconds;
        let p_rate = total / parse.seconds;
        let ps_rate = total / parse_slice.seconds;
        println!(
            "engine, streaming (validate_reader): {:>8.1} MB/s   peak {:>6.1} MiB",
            e_rate,
            engine.peak_kib as f64 / 1024.0
        );
        println!(
            "engine, in memory (validate):        {:>8.1} MB/s   peak {:>6.1} MiB",
            s_rate,
            engine_slice.peak_kib as f64 / 1024.0
        );
        println!(
            "quick-xml bare parse (the floor):    {:>8.1} MB/s   peak {:>6.1} MiB",
            p_rate,
            parse.peak_kib as f64 / 1024.0
        );
        println!(
            "quick-xml bare parse, in memory:     {:>8.1} MB/s   peak {:>6.1} MiB",
            ps_rate,
            parse_slice.peak_kib as f64 / 1024.0
        );
        println!(
            "engine streaming / bare parse: {:.2}x slower",
            p_rate / e_rate
        );
        println!(
            "engine in memory / bare parse in memory: {:.2}x slower",
            ps_rate / s_rate
        );
        if quick {
            continue;
        }

        // libxml2: for the small sample the schema parse dominates one run, so time many
        // copies in one invocation and subtract a one-copy run.
        let schema_s = schema.to_str().expect("utf-8 path");
        let copies: Vec<&Path> =
            std::iter::repeat_n(file.as_path(), if repeat > 10 { 200 } else { 1 }).collect();
        match (
            run_xmllint(&["--noout", "--nonet", "--schema", schema_s], &copies),
            run_xmllint(
                &["--noout", "--nonet", "--schema", schema_s, "--stream"],
                &copies,
            ),
            run_xmllint(
                &["--noout", "--nonet", "--schema", schema_s],
                &[file.as_path()],
            ),
            run_xmllint(&["--noout", "--nonet"], &copies),
        ) {
            (Some((tree, ok1)), Some((stream, ok2)), Some((one, _)), Some((bare, _))) => {
                let n = copies.len() as f64;
                let (tree_s, stream_s) = if copies.len() > 1 {
                    (
                        (tree.seconds - one.seconds).max(1e-9) / (n - 1.0),
                        (stream.seconds - one.seconds).max(1e-9) / (n - 1.0),
                    )
                } else {
                    (tree.seconds, stream.seconds)
                };
                let x_rate = mb(size) / tree_s;
                let xs_rate = mb(size) / stream_s;
                println!(
                    "xmllint --schema:                    {:>8.1} MB/s   peak {:>6.1} MiB   ({})",
                    x_rate,
                    tree.peak_kib as f64 / 1024.0,
                    if ok1 { "validates" } else { "FAILS" }
                );
                println!(
                    "xmllint --stream --schema:           {:>8.1} MB/s   peak {:>6.1} MiB   ({})",
                    xs_rate,
                    stream.peak_kib as f64 / 1024.0,
                    if ok2 { "validates" } else { "FAILS" }
                );
                println!(
                    "xmllint bare parse:                  {:>8.1} MB/s",
                    mb(size) * n / bare.seconds
                );
                println!(
                    "engine streaming / xmllint --schema: {:.1}x faster (target >= 10x)",
                    e_rate / x_rate
                );
            }
            _ => println!("xmllint or /usr/bin/time not available: libxml2 not measured"),
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
