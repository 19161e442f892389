//! Command-line grammar of the `siirto` binary, on clap (derive): words in, a [`Cli`] out.
//!
//! Owns: the grammar of CONTRACT.md's command line and the `dev`, `completions` and `man`
//! commands, every `--help` text, and the version line (`siirto --version`: the package version
//! and the git revision, from `siirto-buildinfo`). It reads no files and runs nothing;
//! `main.rs` carries the command out. The shell completions and the man page are generated
//! from this same grammar ([`completions`], [`man_page`]).
//!
//! Exit codes: a command line clap refuses exits 2 (unusable input), `--help` and `--version`
//! exit 0; the commands' own codes are main.rs's.

use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use siirto_core::formats::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure: an invalid document, a broken audit log, a proof that does not prove
  2  unusable input: bad arguments, an unreadable configuration or file
";

/// A parsed command line.
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(
    name = "siirto",
    version = siirto_buildinfo::LONG_VERSION,
    about = "Student-authorized record transfers between Finnish municipalities and registers",
    long_about = "Siirto is a mutual-TLS gateway that moves a student's records between \
Finnish municipalities and national registers on the student's signed authorization (a JWS), \
with a tamper-evident audit trail.\n\nStart with `siirto demo` (a whole transfer on this \
machine), then `siirto pki init DIR` and `siirto serve --config DIR/siirto.toml`.",
    after_help = EXIT_CODES,
    args_override_self = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `siirto COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the gateway (the mTLS API and the plain-HTTP admin listener)
    ///
    /// Reads and checks the configuration (every problem at once, naming the file and key),
    /// opens or upgrades the database, and serves until SIGTERM or Ctrl-C, which stop
    /// accepting connections and let in-flight work finish. SIGHUP re-reads the issuers' JWKS.
    Serve(ConfigFile),
    /// A whole transfer on this machine, printed step by step
    ///
    /// Fresh development certificates, the gateway with mutual TLS on 127.0.0.1, a source
    /// (Turku) and a destination (Espoo) as real TLS servers, a SQLite store; a 12-year-old
    /// pupil's guardian reads the consent text and agrees, an e-service signs the authorization
    /// over its hash; then what Espoo received, the receipt, the pupil's own page saved as
    /// HTML, and the verified audit trail.
    Demo {
        /// Keep the certificates, configuration and database in DIR instead of a temporary
        /// directory
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Save the pupil's page here [default: DIR/student-page.html with --keep, else
        /// siirto-demo-student-page.html in the temporary directory]
        #[arg(long, value_name = "FILE")]
        page: Option<PathBuf>,
    },
    /// Development certificates and configuration (never for production)
    #[command(subcommand)]
    Pki(Pki),
    /// Validate an XML document against a format's schema or an XSD file (a KOSKI JSON document
    /// with --format koski: read into KOSKI's typed model under [limits.json])
    ///
    /// Exit 0 valid; 1 invalid (the failure's code, e.g. xml_schema_invalid, and each error
    /// with line, column and element path, on stdout); 2 unusable. The limits are the
    /// configuration's [limits.xml] with --config, the documented defaults with --schema.
    Validate(Validate),
    /// Convert a record offline: the document on stdout, the conversion report on stderr
    Convert(Convert),
    /// Sign a document offline as the gateway signs what it delivers: the signed document on
    /// stdout
    ///
    /// An enveloped XML Signature (Canonical XML 1.0, SHA-256, rsa-sha256 or ecdsa-sha256 by
    /// the key type) as the last child of the root, with the configuration's [documents]
    /// signing_cert and signing_key. Exit 0 signed; 1 the document cannot be signed (not
    /// well-formed, not UTF-8, already signed); 2 unusable (no [documents] key, unreadable file).
    Sign(Sign),
    /// Verify a document's enveloped XML Signature offline
    ///
    /// With --cert, the signature must verify with one of these certificates' keys (as a
    /// source's elmo_signers); without, with the certificate in the document itself, which
    /// proves the document is unchanged but not who signed it. Exit 0 valid; 1 not (the reason:
    /// signature_missing, digest_mismatch, signature_invalid, unknown_signer, weak_algorithm,
    /// unreadable); 2 unusable (a file cannot be read).
    VerifySignature(VerifySignature),
    /// Verify, export and prove the audit trail
    #[command(subcommand)]
    Audit(Audit),
    /// Verify the signed answer of a check without transfer
    #[command(subcommand)]
    Attestation(Attestation),
    /// Create or upgrade the database schema (`serve` also does it)
    Migrate(ConfigFile),
    /// Delete finished transfers past [retention] transfers (the gateway also does it daily)
    ///
    /// Deletes delivered, failed and cancelled transfers that ended longer ago than
    /// `[retention] transfers` (default 2 years), with their timelines, audited as
    /// `retention.purged` (actor `cli`); audit entries are kept. With --dry-run, only says how
    /// many and from when.
    Retention {
        #[command(flatten)]
        config: ConfigFile,
        /// Say what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Act on transfers in the database of a configuration (as an operator, on the gateway's host)
    #[command(subcommand)]
    Transfers(Transfers),
    /// Drive a transfer by hand against a `siirto pki init` directory (development only)
    #[command(subcommand)]
    Dev(Dev),
    /// Print a shell completion script
    ///
    /// bash: `siirto completions bash > ~/.local/share/bash-completion/completions/siirto`;
    /// zsh: `siirto completions zsh > ~/.zfunc/_siirto` (with ~/.zfunc on $fpath);
    /// fish: `siirto completions fish > ~/.config/fish/completions/siirto.fish`.
    Completions {
        /// The shell to complete for
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory
    ///
    /// `siirto man | man -l -` reads it at once; `siirto man --out DIR` writes siirto.1,
    /// siirto-serve.1, siirto-pki-init.1, … for MANPATH.
    Man {
        /// Write siirto.1 and a page for every subcommand into DIR instead of printing siirto.1
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `--config FILE`, the gateway's configuration.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct ConfigFile {
    /// The configuration file (TOML); SIIRTO__SECTION__KEY variables override its values
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `siirto pki COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Pki {
    /// Write a development CA, certificates, keys and a ready DIR/siirto.toml
    ///
    /// One CA signs everything and the keys lie in files: never for production. The gateway
    /// listens on 127.0.0.1:8443 (API) and 127.0.0.1:9090 (admin), the participants'
    /// endpoints from 127.0.0.1:9443 on; --free-ports picks ports free now instead (see the
    /// printed summary or DIR/siirto.toml). Refuses a DIR that already has a siirto.toml.
    Init(PkiInit),
}

/// `siirto pki init`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct PkiInit {
    /// The directory to write (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The gateway's API port (mutual TLS)
    #[arg(long, value_name = "N", default_value_t = 8443)]
    pub api_port: u16,
    /// The gateway's admin port (plain HTTP: /healthz, /readyz, /metrics)
    #[arg(long, value_name = "N", default_value_t = 9090)]
    pub admin_port: u16,
    /// Pick ports free on 127.0.0.1 now for the gateway and every participant's endpoint
    /// (another program may still take one before they are used)
    #[arg(long, conflicts_with_all = ["api_port", "admin_port"])]
    pub free_ports: bool,
}

/// `siirto validate`.
#[derive(Debug, Args, PartialEq, Eq)]
#[command(group(ArgGroup::new("schema_source").required(true).args(["format", "schema"])))]
pub struct Validate {
    /// The document's format; its schema comes from the configuration's [schemas]
    #[arg(long, value_name = "F", value_parser = FormatParser, requires = "config")]
    pub format: Option<Format>,
    /// The configuration (with --format): its [schemas] and [limits.xml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An XSD file to validate against, with the default limits
    #[arg(long, value_name = "XSD")]
    pub schema: Option<PathBuf>,
    /// The XML document
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Where `validate` takes its schema from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    Format { format: Format, config: PathBuf },
    File(PathBuf),
}

impl Validate {
    /// The schema source the arguments name; clap has checked that exactly one of --format and
    /// --schema is given, and --config with --format.
    pub fn source(&self) -> Option<SchemaSource> {
        match (&self.format, &self.config, &self.schema) {
            (Some(format), Some(config), None) => Some(SchemaSource::Format {
                format: *format,
                config: config.clone(),
            }),
            (None, _, Some(schema)) => Some(SchemaSource::File(schema.clone())),
            _ => None,
        }
    }
}

/// `siirto convert`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct Convert {
    /// The configuration: schemas and [limits]
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The format of FILE
    #[arg(long, value_name = "F", value_parser = FormatParser)]
    pub from: Format,
    /// The format to write
    #[arg(long, value_name = "G", value_parser = FormatParser)]
    pub to: Format,
    /// Keep only these categories (space-separated, e.g. "identity achievements")
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,
    /// The student to take (needed when a VIRTA file holds several)
    #[arg(long, value_name = "ID")]
    pub subject: Option<String>,
    /// The document to convert
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `siirto sign`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct Sign {
    /// The configuration: [documents] and [limits.xml]
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The document to sign (UTF-8 XML)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `siirto verify-signature`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct VerifySignature {
    /// A PEM file of signer certificates whose keys are accepted (repeatable)
    #[arg(long, value_name = "PEM")]
    pub cert: Vec<PathBuf>,
    /// Accept SHA-1 digests and rsa-sha1 (older EMREX signers), as a source's allow_sha1
    #[arg(long)]
    pub allow_sha1: bool,
    /// The signed document
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// How `siirto transfers list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Csv,
    Jsonl,
}

/// `siirto transfers COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Transfers {
    /// List transfers, newest first, as the operator page's transfers view filters them
    ///
    /// One line per transfer (id, status and reason, route, purpose, accepted in Helsinki time,
    /// attempts, the next attempt and last error of an unfinished one), or CSV or JSON lines
    /// with --format. With --subject, the transfers about one person: the identifier is turned
    /// into its keyed pseudonym with the configured pseudonym key and goes nowhere else; the
    /// lookup is audited as `operator.subject_lookup` (actor `cli`) with --reason, which it
    /// requires. Exit 0, or 2 when the options or the database are unusable.
    List {
        #[command(flatten)]
        config: ConfigFile,
        /// Only transfers about this person: a henkilötunnus or learner number; `-` reads it
        /// from standard input (keeping it out of the shell history and the process list)
        #[arg(long, value_name = "ID")]
        subject: Option<String>,
        /// Why the person is looked up (required with --subject; kept in the audit log)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Only transfers in this status (accepted, fetching, …, delivered, failed, cancelled)
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Only transfers from this source
        #[arg(long, value_name = "PARTICIPANT")]
        src: Option<String>,
        /// Only transfers to this destination
        #[arg(long, value_name = "PARTICIPANT")]
        dst: Option<String>,
        /// Only transfers accepted at or after this time (RFC 3339, or a date: that day in Helsinki)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only transfers accepted before this time (RFC 3339, or a date: to the end of that day)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// text (default), csv or jsonl
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        format: ListFormat,
    },
    /// Show one transfer: its state, every step and its audit entries, as JSON
    Show {
        #[command(flatten)]
        config: ConfigFile,
        /// The transfer's id
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Retry every failed transfer with a reason, as POST /v1/transfers/retry does
    ///
    /// Each one starts over from its source, audited as `transfer.retried` (actor `cli`); a
    /// running gateway on the same database picks them up. Exit 0 with what was retried (and
    /// whether more remain), 2 when the options or the database are unusable.
    Retry {
        #[command(flatten)]
        config: ConfigFile,
        /// The failure reason, e.g. delivery_attempts_exhausted or source_unavailable
        #[arg(long, value_name = "REASON")]
        reason: String,
        /// Only transfers from this source
        #[arg(long, value_name = "PARTICIPANT")]
        src: Option<String>,
        /// Only transfers to this destination
        #[arg(long, value_name = "PARTICIPANT")]
        dst: Option<String>,
        /// At most this many (oldest failures first; 1 to 10000, default 1000)
        #[arg(long, value_name = "N")]
        limit: Option<String>,
    },
}

/// `siirto audit COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Audit {
    /// Recompute the hash chain, the Merkle tree and every checkpoint
    ///
    /// Exit 0 only when all verify; otherwise name the first bad entry and exit 1.
    Verify(ConfigFile),
    /// The audit trail as JSON lines on stdout
    Export {
        #[command(flatten)]
        config: ConfigFile,
        /// Only entries at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z)
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
    },
    /// Check an inclusion or consistency proof offline against a signed checkpoint
    ///
    /// Exit 0 proven, 1 not, 2 unusable (docs/audit.md).
    VerifyProof {
        /// The signed checkpoint (note) the proof is checked against
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// The gateway's audit public key (PEM or JWKS)
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The proof (JSON, from GET /v1/audit/proof)
        #[arg(long, value_name = "FILE")]
        proof: PathBuf,
        /// An older checkpoint that vouches for a consistency proof's `from` root
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<PathBuf>,
        /// A witness's verifier key (`name+id+base64`, or a file holding one); repeatable
        #[arg(long, value_name = "KEY")]
        witness_key: Vec<String>,
        /// Prove only when at least N of the given witnesses cosigned the checkpoint
        /// (default: all of them)
        #[arg(long, value_name = "N")]
        quorum: Option<usize>,
    },
}

/// `siirto attestation COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Attestation {
    /// Check an attestation (the `attestation` of POST /v1/checks) offline against the
    /// gateway's audit public key
    ///
    /// FILE holds the JWS, or the whole JSON answer of POST /v1/checks. Exit 0 valid, 1 not,
    /// 2 unusable (a file that cannot be read, a key file that holds no key).
    Verify {
        /// The attestation (a JWS, or the JSON answer holding it)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The gateway's audit public key (PEM or JWKS, e.g. GET /v1/audit/jwks.json)
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

/// `siirto dev COMMAND`.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Dev {
    /// Sign a student's authorization (or transparency token) as the development e-service
    ///
    /// Prints the compact JWS on stdout, for `POST /v1/transfers` with body
    /// {"authorization": "<JWS>"}. The key is the development issuer's (DIR/certs/issuer.key),
    /// the kid the first of the issuer's JWKS, aud the configuration's gateway.id; iat is now.
    Sign(Box<DevSign>),
    /// Serve the directory's sources and destinations with sample records, until Ctrl-C
    ///
    /// Every source and destination of the configuration listens on its base_url with its
    /// development server certificate (DIR/certs/participants/ID-server.pem) and asks for the
    /// gateway's client certificate. Sources serve the demo's record of student 150608A123J
    /// (examples/records/150608A123J.xml), or the STUDENT-ID.xml files of --records. Prints
    /// what it serves, then `ready`; on SIGTERM or Ctrl-C, what the destinations received.
    Peers {
        #[command(flatten)]
        config: ConfigFile,
        /// Serve the STUDENT-ID.xml files of DIR from every source instead of the demo's record
        #[arg(long, value_name = "DIR")]
        records: Option<PathBuf>,
    },
}

/// The `typ` of a token `siirto dev sign` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenTyp {
    /// A transfer authorization (siirto-authz+jwt)
    Authz,
    /// A transparency token (siirto-transparency+jwt): the student reads their own transfers
    Transparency,
}

/// `siirto dev sign`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct DevSign {
    /// The development configuration (`siirto pki init DIR` wrote DIR/siirto.toml)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// What the token is for
    #[arg(long, value_enum, value_name = "TYP", default_value_t = TokenTyp::Authz)]
    pub typ: TokenTyp,
    /// The issuer (iss); its JWKS in the configuration gives the kid
    #[arg(long, value_name = "ISS", default_value = siirto_devkit::pki::DEV_ISSUER_ID)]
    pub iss: String,
    /// The audience (aud) [default: the configuration's gateway.id]
    #[arg(long, value_name = "AUD")]
    pub aud: Option<String>,
    /// The student (sub): a henkilötunnus or a learner OID
    #[arg(long, value_name = "ID")]
    pub sub: String,
    /// The source participant (src; authz only)
    #[arg(long, value_name = "PARTICIPANT")]
    pub src: Option<String>,
    /// The destination participant (dst; authz only)
    #[arg(long, value_name = "PARTICIPANT")]
    pub dst: Option<String>,
    /// The categories shared (authz only) [default: "identity enrolment achievements"]
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,
    /// Why (authz only) [default: school-change]
    #[arg(long, value_name = "P")]
    pub purpose: Option<String>,
    /// Seconds from iat to exp (a negative or too long one makes a token the gateway refuses)
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = siirto_devkit::dev::DEFAULT_LIFETIME_SECS,
        allow_negative_numbers = true
    )]
    pub lifetime: i64,
    /// The key id (kid) [default: the first key of the issuer's JWKS]
    #[arg(long, value_name = "KID")]
    pub kid: Option<String>,
    /// The private key to sign with (PKCS#8 PEM) [default: DIR/certs/issuer.key]
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The token id (jti) [default: a random UUID]
    #[arg(long, value_name = "JTI")]
    pub jti: Option<String>,
    /// The legal basis (authz only) [default: consent]
    #[arg(long, value_enum, value_name = "BASIS")]
    pub basis: Option<BasisArg>,
    /// A guardian consenting for a minor (authz only): their henkilötunnus, signed as
    /// act = {"sub": ID, "role": "guardian"}
    #[arg(long, value_name = "ID")]
    pub guardian: Option<String>,
    /// The student's birth date YYYY-MM-DD, for a learner OID (authz only)
    #[arg(long, value_name = "DATE")]
    pub birthdate: Option<String>,
    /// The language of the consent text whose SHA-256 is signed (consent_sha256, consent_lang;
    /// authz only) [default: fi for consent, none for statutory]
    #[arg(long, value_enum, value_name = "LANG")]
    pub consent_lang: Option<LangArg>,
}

/// `--basis` of `siirto dev sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// The student (or their guardian) agreed
    Consent,
    /// A law lets the destination receive it (within its statutory_scopes and statutory_purposes)
    Statutory,
}

/// A language of the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    Fi,
    Sv,
    En,
}

impl DevSign {
    /// The devkit's request for these arguments.
    pub fn request(self) -> siirto_devkit::dev::SignRequest {
        use siirto_devkit::dev::{SignRequest, TokenKind};
        SignRequest {
            config: self.config,
            kind: match self.typ {
                TokenTyp::Authz => TokenKind::Authorization,
                TokenTyp::Transparency => TokenKind::Transparency,
            },
            issuer: self.iss,
            audience: self.aud,
            subject: self.sub,
            source: self.src,
            destination: self.dst,
            scope: self.scope,
            purpose: self.purpose,
            lifetime_secs: self.lifetime,
            kid: self.kid,
            key: self.key,
            jti: self.jti,
            basis: self.basis.map(|b| {
                match b {
                    BasisArg::Consent => "consent",
                    BasisArg::Statutory => "statutory",
                }
                .to_owned()
            }),
            guardian: self.guardian,
            birthdate: self.birthdate,
            consent_lang: self.consent_lang.map(|l| match l {
                LangArg::Fi => siirto_core::lang::Lang::Fi,
                LangArg::Sv => siirto_core::lang::Lang::Sv,
                LangArg::En => siirto_core::lang::Lang::En,
            }),
        }
    }
}

/// Parses a record format, offering the three names to `--help` and the completions.
#[derive(Debug, Clone, Copy)]
struct FormatParser;

impl TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Format, clap::Error> {
        let text = value.to_string_lossy();
        Format::parse(&text).ok_or_else(|| {
            let mut e = clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd);
            use clap::error::{ContextKind, ContextValue};
            if let Some(arg) = arg {
                e.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            e.insert(
                ContextKind::InvalidValue,
                ContextValue::String(text.into_owned()),
            );
            e.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(Format::ALL.map(|f| f.as_str().to_owned()).to_vec()),
            );
            e
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Format::ALL
                .into_iter()
                .map(|f| PossibleValue::new(f.as_str())),
        ))
    }
}

/// Parses the words after the program name.
pub fn parse<I, T>(words: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(
        std::iter::once(std::ffi::OsString::from("siirto"))
            .chain(words.into_iter().map(Into::into)),
    )
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "siirto", &mut out);
    out
}

/// The man page `siirto.1` (roff).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    // Built as `clap_mangen::generate_to` builds it for `write_man_pages` (without the `help`
    // command, which has no page), so the two agree.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    clap_mangen::Man::new(cli).render(&mut out)?;
    Ok(out)
}

/// Writes `siirto.1` and a page per subcommand (`siirto-pki-init.1`, …) into `dir`.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn command(s: &str) -> Command {
        parse(words(s))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .command
    }

    fn refused(s: &str) -> ErrorKind {
        match parse(words(s)) {
            Ok(cli) => panic!("{s} parsed as {cli:?}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn parses_the_contract_commands() {
        assert_eq!(
            command("serve --config /etc/siirto.toml"),
            Command::Serve(ConfigFile {
                config: "/etc/siirto.toml".into()
            })
        );
        assert_eq!(
            command("migrate --config c.toml"),
            Command::Migrate(ConfigFile {
                config: "c.toml".into()
            })
        );
        let Command::Validate(v) = command("validate --format virta --config c.toml doc.xml")
        else {
            panic!("not validate")
        };
        assert_eq!(
            (v.source(), v.file),
            (
                Some(SchemaSource::Format {
                    format: Format::Virta,
                    config: "c.toml".into()
                }),
                "doc.xml".into()
            )
        );
        let Command::Validate(v) = command("validate --schema x.xsd doc.xml") else {
            panic!("not validate")
        };
        assert_eq!(
            (v.source(), v.file),
            (Some(SchemaSource::File("x.xsd".into())), "doc.xml".into())
        );
        assert_eq!(
            command("convert --config c --from virta --to=elmo --scope identity f.xml"),
            Command::Convert(Convert {
                config: "c".into(),
                from: Format::Virta,
                to: Format::Elmo,
                scope: Some("identity".into()),
                subject: None,
                file: "f.xml".into()
            })
        );
        assert_eq!(
            command("audit export --config c --since 2026-01-01T00:00:00Z"),
            Command::Audit(Audit::Export {
                config: ConfigFile { config: "c".into() },
                since: Some("2026-01-01T00:00:00Z".into())
            })
        );
        assert_eq!(
            command("audit verify --config c"),
            Command::Audit(Audit::Verify(ConfigFile { config: "c".into() }))
        );
        assert_eq!(
            command("audit verify-proof --checkpoint a --public-key b --proof p"),
            Command::Audit(Audit::VerifyProof {
                checkpoint: "a".into(),
                public_key: "b".into(),
                proof: "p".into(),
                old_checkpoint: None,
                witness_key: Vec::new(),
                quorum: None
            })
        );
        assert_eq!(
            command("pki init certs --api-port 8443"),
            Command::Pki(Pki::Init(PkiInit {
                dir: "certs".into(),
                api_port: 8443,
                admin_port: 9090,
                free_ports: false
            }))
        );
        assert_eq!(
            command("demo"),
            Command::Demo {
                keep: None,
                page: None
            }
        );
        // The last of a repeated option wins, as before.
        assert_eq!(
            command("serve --config a --config b"),
            Command::Serve(ConfigFile { config: "b".into() })
        );
    }

    #[test]
    fn parses_the_dev_and_tool_commands() {
        assert_eq!(
            command("pki init d --free-ports"),
            Command::Pki(Pki::Init(PkiInit {
                dir: "d".into(),
                api_port: 8443,
                admin_port: 9090,
                free_ports: true
            }))
        );
        let Command::Dev(Dev::Sign(sign)) =
            command("dev sign --config c --sub 150608A123J --src turku --dst espoo")
        else {
            panic!("not dev sign")
        };
        let request = sign.request();
        assert_eq!(request.issuer, siirto_devkit::pki::DEV_ISSUER_ID);
        assert_eq!(request.kind, siirto_devkit::dev::TokenKind::Authorization);
        assert_eq!(
            (request.source.as_deref(), request.destination.as_deref()),
            (Some("turku"), Some("espoo"))
        );
        assert_eq!(request.lifetime_secs, 300);
        let Command::Dev(Dev::Sign(sign)) =
            command("dev sign --config c --sub x --typ transparency --lifetime -60 --kid k")
        else {
            panic!("not dev sign")
        };
        let request = sign.request();
        assert_eq!(request.kind, siirto_devkit::dev::TokenKind::Transparency);
        assert_eq!(
            (request.lifetime_secs, request.kid.as_deref()),
            (-60, Some("k"))
        );
        assert_eq!(
            command("dev peers --config c --records r"),
            Command::Dev(Dev::Peers {
                config: ConfigFile { config: "c".into() },
                records: Some("r".into())
            })
        );
        assert_eq!(
            command("completions zsh"),
            Command::Completions { shell: Shell::Zsh }
        );
        assert_eq!(command("man"), Command::Man { out: None });
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            refused(""),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(refused("fly"), ErrorKind::InvalidSubcommand);
        assert_eq!(refused("serve"), ErrorKind::MissingRequiredArgument);
        assert_eq!(refused("serve --conf x"), ErrorKind::UnknownArgument);
        assert_eq!(refused("serve --config"), ErrorKind::InvalidValue);
        assert_eq!(
            refused("validate --format xml --config c f"),
            ErrorKind::InvalidValue
        );
        let e = parse(words("validate --format xml --config c f")).expect_err("xml");
        assert!(e.to_string().contains("siirto-v1, virta, elmo"), "{e}");
        assert_eq!(
            refused("validate --schema s a b"),
            ErrorKind::UnknownArgument
        );
        assert_eq!(refused("validate f"), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refused("validate --format virta f"),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused("validate --schema s --format virta --config c f"),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            refused("pki init d --api-port x"),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused("pki init d --api-port 1 --free-ports"),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            refused("pki"),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(refused("audit fly"), ErrorKind::InvalidSubcommand);
        assert_eq!(
            refused("dev sign --config c"),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused("dev sign --config c --sub x --typ other"),
            ErrorKind::InvalidValue
        );
        assert_eq!(refused("completions tcsh"), ErrorKind::InvalidValue);
        // Help and version are answers, not errors: clap exits 0 for them.
        for (s, kind) in [
            ("--help", ErrorKind::DisplayHelp),
            ("help", ErrorKind::DisplayHelp),
            ("--version", ErrorKind::DisplayVersion),
        ] {
            let e = parse(words(s)).expect_err(s);
            assert_eq!((e.kind(), e.exit_code()), (kind, 0), "{s}");
        }
        assert_eq!(parse(words("fly")).expect_err("fly").exit_code(), 2);
    }

    #[test]
    fn the_grammar_is_consistent_and_every_command_and_option_says_what_it_is() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        fn walk(cmd: &clap::Command, path: &str) {
            if cmd.get_name() != "help" {
                assert!(cmd.get_about().is_some(), "{path}: no about text");
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id}: no help text");
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&cli, "siirto");
    }

    #[test]
    fn completions_and_the_man_page_cover_every_command() {
        let bash = String::from_utf8(completions(Shell::Bash)).expect("utf-8");
        let man = String::from_utf8(man_page().expect("man")).expect("utf-8");
        assert!(man.starts_with(".ie \\n(.g .ds Aq"), "{man}");
        assert!(man.contains(".TH siirto 1"), "{man}");
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(bash.contains(name), "bash completion lacks {name}");
            // roff writes a hyphen as `\-`.
            assert!(
                man.contains(name) || man.contains(&name.replace('-', "\\-")),
                "man page lacks {name}"
            );
        }
        assert!(bash.contains("--free-ports") && bash.contains("siirto-v1"));
    }
}
