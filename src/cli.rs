//! Command-line parsing for the `siirto` binary: words in, a [`Command`] out.
//!
//! Owns: the grammar of CONTRACT.md's command line and its usage text. It reads no files and
//! runs nothing; `main.rs` carries the command out.

use std::path::PathBuf;

use siirto_core::formats::Format;

pub const USAGE: &str = "\
siirto — student-authorized record transfers between Finnish municipalities and registers

USAGE:
  siirto serve --config FILE
  siirto demo [--keep DIR]
  siirto pki init DIR [--api-port N] [--admin-port N]
  siirto validate (--format F --config FILE | --schema XSD) FILE
  siirto convert --config FILE --from F --to G [--scope S] [--subject ID] FILE
  siirto audit verify --config FILE
  siirto audit export --config FILE [--since RFC3339]
  siirto audit verify-proof --checkpoint FILE --public-key FILE --proof FILE
                            [--old-checkpoint FILE]
  siirto migrate --config FILE

Formats: siirto-v1, virta, elmo. Exit codes: 0 success, 1 failure (invalid document, broken
audit log), 2 unusable input (bad arguments, unreadable configuration or files).
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve {
        config: PathBuf,
    },
    Demo {
        keep: Option<PathBuf>,
    },
    PkiInit {
        dir: PathBuf,
        api_port: u16,
        admin_port: u16,
    },
    Validate {
        schema: SchemaSource,
        file: PathBuf,
    },
    Convert {
        config: PathBuf,
        from: Format,
        to: Format,
        scope: Option<String>,
        subject: Option<String>,
        file: PathBuf,
    },
    AuditVerify {
        config: PathBuf,
    },
    AuditExport {
        config: PathBuf,
        since: Option<String>,
    },
    AuditVerifyProof {
        checkpoint: PathBuf,
        public_key: PathBuf,
        proof: PathBuf,
        /// An older checkpoint that vouches for a consistency proof's `from` root.
        old_checkpoint: Option<PathBuf>,
    },
    Migrate {
        config: PathBuf,
    },
    Help,
}

/// Where `validate` takes its schema from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    Format { format: Format, config: PathBuf },
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("no command given")]
    NoCommand,
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("`{command}`: unknown option `{option}`")]
    UnknownOption { command: String, option: String },
    #[error("`{command}`: option `{option}` needs a value")]
    MissingValue { command: String, option: String },
    #[error("`{command}`: missing {what}")]
    Missing { command: String, what: String },
    #[error("`{command}`: unexpected argument `{arg}`")]
    Unexpected { command: String, arg: String },
    #[error("unknown format `{0}` (expected siirto-v1, virta or elmo)")]
    UnknownFormat(String),
    #[error("`{option}` must be a port number, not `{value}`")]
    Port { option: String, value: String },
}

struct Parsed {
    command: String,
    options: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Parsed {
    fn new(command: &str, words: &[String], allowed: &[&str]) -> Result<Parsed, CliError> {
        let mut options = Vec::new();
        let mut positional = Vec::new();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            if let Some(name) = w.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (name, None),
                };
                if !allowed.contains(&name) {
                    return Err(CliError::UnknownOption {
                        command: command.into(),
                        option: format!("--{name}"),
                    });
                }
                let value = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| CliError::MissingValue {
                        command: command.into(),
                        option: format!("--{name}"),
                    })?,
                };
                options.push((name.to_owned(), value));
            } else {
                positional.push(w.clone());
            }
        }
        Ok(Parsed {
            command: command.into(),
            options,
            positional,
        })
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, CliError> {
        self.opt(name).ok_or_else(|| CliError::Missing {
            command: self.command.clone(),
            what: format!("--{name}"),
        })
    }

    fn format(&self, name: &str) -> Result<Format, CliError> {
        let v = self.required(name)?;
        Format::parse(v).ok_or_else(|| CliError::UnknownFormat(v.into()))
    }

    fn port(&self, name: &str, default: u16) -> Result<u16, CliError> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| CliError::Port {
                option: format!("--{name}"),
                value: v.into(),
            }),
        }
    }

    /// Exactly one positional argument.
    fn one(&self, what: &str) -> Result<PathBuf, CliError> {
        match self.positional.as_slice() {
            [one] => Ok(PathBuf::from(one)),
            [] => Err(CliError::Missing {
                command: self.command.clone(),
                what: what.into(),
            }),
            [_, extra, ..] => Err(CliError::Unexpected {
                command: self.command.clone(),
                arg: extra.clone(),
            }),
        }
    }

    fn none(&self) -> Result<(), CliError> {
        match self.positional.first() {
            None => Ok(()),
            Some(arg) => Err(CliError::Unexpected {
                command: self.command.clone(),
                arg: arg.clone(),
            }),
        }
    }
}

/// Parses the words after the program name.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let (first, rest) = args.split_first().ok_or(CliError::NoCommand)?;
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "serve" => {
            let p = Parsed::new("serve", rest, &["config"])?;
            p.none()?;
            Ok(Command::Serve {
                config: p.required("config")?.into(),
            })
        }
        "migrate" => {
            let p = Parsed::new("migrate", rest, &["config"])?;
            p.none()?;
            Ok(Command::Migrate {
                config: p.required("config")?.into(),
            })
        }
        "demo" => {
            let p = Parsed::new("demo", rest, &["keep"])?;
            p.none()?;
            Ok(Command::Demo {
                keep: p.opt("keep").map(PathBuf::from),
            })
        }
        "pki" => {
            let (sub, rest) = rest.split_first().ok_or(CliError::Missing {
                command: "pki".into(),
                what: "`init`".into(),
            })?;
            if sub != "init" {
                return Err(CliError::UnknownCommand(format!("pki {sub}")));
            }
            let p = Parsed::new("pki init", rest, &["api-port", "admin-port"])?;
            Ok(Command::PkiInit {
                dir: p.one("DIR")?,
                api_port: p.port("api-port", 8443)?,
                admin_port: p.port("admin-port", 9090)?,
            })
        }
        "validate" => {
            let p = Parsed::new("validate", rest, &["format", "config", "schema"])?;
            let file = p.one("FILE")?;
            let schema = match (p.opt("schema"), p.opt("format")) {
                (Some(xsd), None) => SchemaSource::File(xsd.into()),
                (None, Some(_)) => SchemaSource::Format {
                    format: p.format("format")?,
                    config: p.required("config")?.into(),
                },
                _ => {
                    return Err(CliError::Missing {
                        command: "validate".into(),
                        what: "either --schema XSD or --format F --config FILE".into(),
                    });
                }
            };
            Ok(Command::Validate { schema, file })
        }
        "convert" => {
            let p = Parsed::new(
                "convert",
                rest,
                &["config", "from", "to", "scope", "subject"],
            )?;
            Ok(Command::Convert {
                config: p.required("config")?.into(),
                from: p.format("from")?,
                to: p.format("to")?,
                scope: p.opt("scope").map(str::to_owned),
                subject: p.opt("subject").map(str::to_owned),
                file: p.one("FILE")?,
            })
        }
        "audit" => {
            let (sub, rest) = rest.split_first().ok_or(CliError::Missing {
                command: "audit".into(),
                what: "`verify`, `export` or `verify-proof`".into(),
            })?;
            match sub.as_str() {
                "verify" => {
                    let p = Parsed::new("audit verify", rest, &["config"])?;
                    p.none()?;
                    Ok(Command::AuditVerify {
                        config: p.required("config")?.into(),
                    })
                }
                "export" => {
                    let p = Parsed::new("audit export", rest, &["config", "since"])?;
                    p.none()?;
                    Ok(Command::AuditExport {
                        config: p.required("config")?.into(),
                        since: p.opt("since").map(str::to_owned),
                    })
                }
                "verify-proof" => {
                    let p = Parsed::new(
                        "audit verify-proof",
                        rest,
                        &["checkpoint", "public-key", "proof", "old-checkpoint"],
                    )?;
                    p.none()?;
                    Ok(Command::AuditVerifyProof {
                        checkpoint: p.required("checkpoint")?.into(),
                        public_key: p.required("public-key")?.into(),
                        proof: p.required("proof")?.into(),
                        old_checkpoint: p.opt("old-checkpoint").map(PathBuf::from),
                    })
                }
                other => Err(CliError::UnknownCommand(format!("audit {other}"))),
            }
        }
        other => Err(CliError::UnknownCommand(other.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_contract_commands() {
        assert_eq!(
            parse(&words("serve --config /etc/siirto.toml")),
            Ok(Command::Serve {
                config: "/etc/siirto.toml".into()
            })
        );
        assert_eq!(
            parse(&words("validate --format virta --config c.toml doc.xml")),
            Ok(Command::Validate {
                schema: SchemaSource::Format {
                    format: Format::Virta,
                    config: "c.toml".into()
                },
                file: "doc.xml".into()
            })
        );
        assert_eq!(
            parse(&words("validate --schema x.xsd doc.xml")),
            Ok(Command::Validate {
                schema: SchemaSource::File("x.xsd".into()),
                file: "doc.xml".into()
            })
        );
        assert_eq!(
            parse(&words(
                "convert --config c --from virta --to=elmo --scope identity f.xml"
            )),
            Ok(Command::Convert {
                config: "c".into(),
                from: Format::Virta,
                to: Format::Elmo,
                scope: Some("identity".into()),
                subject: None,
                file: "f.xml".into()
            })
        );
        assert_eq!(
            parse(&words(
                "audit export --config c --since 2026-01-01T00:00:00Z"
            )),
            Ok(Command::AuditExport {
                config: "c".into(),
                since: Some("2026-01-01T00:00:00Z".into())
            })
        );
        assert_eq!(
            parse(&words("pki init certs --api-port 8443")),
            Ok(Command::PkiInit {
                dir: "certs".into(),
                api_port: 8443,
                admin_port: 9090
            })
        );
        assert_eq!(parse(&words("demo")), Ok(Command::Demo { keep: None }));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(parse(&[]), Err(CliError::NoCommand));
        assert_eq!(
            parse(&words("fly")),
            Err(CliError::UnknownCommand("fly".into()))
        );
        assert!(matches!(
            parse(&words("serve")),
            Err(CliError::Missing { .. })
        ));
        assert!(matches!(
            parse(&words("serve --conf x")),
            Err(CliError::UnknownOption { .. })
        ));
        assert!(matches!(
            parse(&words("serve --config")),
            Err(CliError::MissingValue { .. })
        ));
        assert_eq!(
            parse(&words("validate --format xml --config c f")),
            Err(CliError::UnknownFormat("xml".into()))
        );
        assert!(matches!(
            parse(&words("validate --schema s a b")),
            Err(CliError::Unexpected { .. })
        ));
        assert!(matches!(
            parse(&words("pki init d --api-port x")),
            Err(CliError::Port { .. })
        ));
    }
}
