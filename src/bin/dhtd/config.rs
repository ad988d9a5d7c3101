//! Where `dhtd`'s settings come from, in order of precedence: a flag, a
//! `DHT_` environment variable (or one of the platform's older names in
//! [`ENV_ALIASES`]), the TOML file named by `--config`, the default.
//!
//! clap handles flags, `DHT_` variables and defaults itself and says which
//! one gave each value. The file and the aliases are merged by parsing
//! twice: every option still at its default after the first parse gets the
//! alias's or file's value as a flag in front of the real arguments, and the
//! second parse checks it with the same parsers as any flag, so a bad value
//! in the file fails the same way, naming the key. Nothing here names a
//! particular option: it walks clap's description of [`RunArgs`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command as ClapCommand, CommandFactory, FromArgMatches};

use crate::options::{LimitArgs, RunArgs, ENV_ALIASES, NOT_IN_FILE};
use crate::Cli;

/// Where an effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    Default,
    /// The `--config` file.
    File,
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag.
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// One option's effective value.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The TOML key (the argument's id).
    pub key: String,
    /// The value as text (lists comma-joined); `None` when unset.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// The parsed command line with every layer applied.
pub struct Loaded {
    /// What clap built from it.
    pub cli: Cli,
    /// Every run option's value and source, in declaration order.
    pub settings: Vec<Setting>,
}

/// The run options' arguments as clap describes them.
fn run_command() -> ClapCommand {
    RunArgs::augment_args(ClapCommand::new("dhtd"))
}

/// Parses `argv`, applying aliases and the config file. Help and version
/// requests and clap's usage errors come back as `Err(clap::Error)`.
pub fn load(argv: Vec<OsString>) -> Result<Loaded, LoadError> {
    let first = Cli::command().try_get_matches_from(&argv)?;
    let (sub, run_matches) = match first.subcommand() {
        Some(("demo", _)) => {
            let cli = Cli::from_arg_matches(&first)?;
            return Ok(Loaded { cli, settings: Vec::new() });
        }
        Some((name, m)) => (Some(name.to_owned()), m.clone()),
        None => (None, first.clone()),
    };
    let file = match run_matches.get_one::<std::path::PathBuf>("config") {
        Some(path) => read_file(path)?,
        None => BTreeMap::new(),
    };
    let (injected, sources) = layer(&run_matches, &file)?;
    let skip = if sub.is_some() { 2 } else { 1 };
    let mut final_argv: Vec<OsString> = argv.iter().take(1).cloned().collect();
    final_argv.extend(sub.map(OsString::from));
    final_argv.extend(injected);
    final_argv.extend(argv.iter().skip(skip).cloned());
    // The real arguments parsed once already, so a failure here is a value
    // from the file or an alias variable.
    let matches = Cli::command()
        .try_get_matches_from(&final_argv)
        .map_err(|e| LoadError::Bad(format!("in the config file or an alias variable: {}", first_line(&e))))?;
    let cli = Cli::from_arg_matches(&matches)?;
    let effective = matches.subcommand().map_or(&matches, |(_, m)| m);
    let settings =
        sources.into_iter().map(|(key, source)| Setting { value: raw_value(effective, &key), key, source }).collect();
    Ok(Loaded { cli, settings })
}

/// clap's message without its usage hint, e.g. `invalid value 'x' for '--flag <F>': why`.
pub fn first_line(e: &clap::Error) -> String {
    e.render().to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned()
}

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// clap's own answer: help, version or a usage error (it prints itself).
    Clap(clap::Error),
    /// The file or an alias is unusable: one line saying which.
    Bad(String),
}

impl From<clap::Error> for LoadError {
    fn from(e: clap::Error) -> Self {
        LoadError::Clap(e)
    }
}

/// Reads the TOML file into key -> values (lists become several values).
fn read_file(path: &Path) -> Result<BTreeMap<String, Vec<String>>, LoadError> {
    let bad = |m: String| LoadError::Bad(format!("config file {}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| bad(e.message().lines().collect::<Vec<_>>().join("; ")))?;
    let known: Vec<String> = run_command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect();
    let limit_keys: Vec<String> =
        LimitArgs::augment_args(ClapCommand::new("limits")).get_arguments().map(|a| a.get_id().to_string()).collect();
    let mut out = BTreeMap::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(limits) if key == "limits" => {
                for (key, value) in limits {
                    if !limit_keys.contains(&key) {
                        return Err(bad(format!("unknown key `{key}` in [limits] (known: {})", limit_keys.join(", "))));
                    }
                    insert_value(&mut out, key, value).map_err(bad)?;
                }
            }
            value if known.contains(&key) => insert_value(&mut out, key, value).map_err(bad)?,
            _ => return Err(bad(format!("unknown key `{key}` (known: {})", known.join(", ")))),
        }
    }
    Ok(out)
}

/// Adds one key's values; a key given twice (at the top and in `[limits]`) is an error.
fn insert_value(out: &mut BTreeMap<String, Vec<String>>, key: String, value: toml::Value) -> Result<(), String> {
    let values = match value {
        toml::Value::Array(items) => items.into_iter().map(scalar).collect::<Option<Vec<_>>>(),
        v => scalar(v).map(|s| vec![s]),
    };
    let values = values.ok_or_else(|| format!("`{key}`: expected a string, number or boolean"))?;
    if out.contains_key(&key) {
        return Err(format!("`{key}` is set twice (at the top and in [limits])"));
    }
    out.insert(key, values);
    Ok(())
}

fn scalar(v: toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Flags to put in front of the real arguments, and every option's source.
type Layers = (Vec<OsString>, Vec<(String, Source)>);

/// The flags to put in front of the real arguments, and every option's source.
fn layer(first: &ArgMatches, file: &BTreeMap<String, Vec<String>>) -> Result<Layers, LoadError> {
    let mut injected = Vec::new();
    let mut sources = Vec::new();
    for arg in run_command().get_arguments() {
        let id = arg.get_id().to_string();
        let Some(long) = arg.get_long() else { continue };
        let flag = !arg.get_action().takes_values();
        let source = match first.value_source(&id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => {
                Source::Env(arg.get_env().map_or(String::new(), |e| e.to_string_lossy().into_owned()))
            }
            _ => match (alias_value(&id), file.get(&id)) {
                (Some((name, value)), _) => {
                    push_flag(&mut injected, long, flag, std::slice::from_ref(&value), &name)?;
                    Source::Env(name)
                }
                (None, Some(values)) => {
                    push_flag(&mut injected, long, flag, values, &id)?;
                    Source::File
                }
                (None, None) => Source::Default,
            },
        };
        sources.push((id, source));
    }
    Ok((injected, sources))
}

/// The alias variable set for `id`, if any: (its name, its value).
fn alias_value(id: &str) -> Option<(String, String)> {
    ENV_ALIASES
        .iter()
        .filter(|(arg, _)| *arg == id)
        .find_map(|(_, name)| std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| ((*name).to_owned(), v)))
}

fn push_flag(out: &mut Vec<OsString>, long: &str, flag: bool, values: &[String], from: &str) -> Result<(), LoadError> {
    if flag {
        let on = match values.first().map(|v| v.to_ascii_lowercase()) {
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => false,
            _ => return Err(LoadError::Bad(format!("{from}: expected true or false"))),
        };
        if on {
            out.push(format!("--{long}").into());
        }
        return Ok(());
    }
    for v in values {
        out.push(format!("--{long}={v}").into());
    }
    Ok(())
}

fn raw_value(m: &ArgMatches, id: &str) -> Option<String> {
    let raw = m.get_raw(id)?;
    let parts: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// `dhtd config`: one line per option, `key  value  source`.
pub fn render(settings: &[Setting]) -> String {
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let vwidth = settings.iter().map(|s| s.value.as_deref().map_or(7, str::len)).max().unwrap_or(0);
    let mut out = String::new();
    for s in settings {
        let value = s.value.as_deref().unwrap_or("(unset)");
        let _ = writeln!(out, "{:width$}  {value:vwidth$}  {}", s.key, s.source);
    }
    out
}

/// The startup line: every set option, marked with its source when not a default.
pub fn summary(settings: &[Setting]) -> String {
    let parts: Vec<String> = settings
        .iter()
        .filter_map(|s| {
            let value = s.value.as_ref()?;
            Some(match &s.source {
                Source::Default => format!("{}={value}", s.key),
                other => format!("{}={value} ({other})", s.key),
            })
        })
        .collect();
    parts.join(" ")
}
