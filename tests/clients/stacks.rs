//! The eight SOAP client stacks of the matrix: for each, how to tell it is
//! installed, its version, what it builds from the facade's `?wsdl` before
//! it can call (wsimport and javac, Mono's `wsdl` and `mcs`, wsdl2h,
//! soapcpp2 and g++), the command that runs its client program against one
//! service, and what it cannot do (a SOAP version it does not speak, a
//! request it cannot write).

use crate::common::app as support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{command_works, repo_root, run_with_timeout, try_run_with_timeout};

use crate::real_clients::ExampleOp;

/// Deadline for one code-generation or compile step.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stack {
    Zeep,
    Suds,
    Php,
    Jaxws,
    NodeSoap,
    SoapLite,
    Dotnet,
    Gsoap,
}

/// What a stack built from the WSDL, for its runs.
#[derive(Debug)]
pub(crate) enum Built {
    /// A script-style client: nothing to build.
    Script,
    /// wsimport's classes compiled by javac, one package per service.
    Jaxws {
        run_classpath: String,
        classes: PathBuf,
        packages: BTreeMap<String, String>,
    },
    /// The wsdl-generated proxies and the client, compiled by mcs.
    Dotnet { exe: PathBuf },
    /// A C++ client per service under this folder (gsoap_client.py build).
    Gsoap { workdir: PathBuf },
}

impl Stack {
    /// In the order they are started: the slow builders first.
    pub(crate) const ALL: [Stack; 8] = [
        Stack::Jaxws,
        Stack::Dotnet,
        Stack::Gsoap,
        Stack::Zeep,
        Stack::Php,
        Stack::NodeSoap,
        Stack::Suds,
        Stack::SoapLite,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Stack::Zeep => "zeep",
            Stack::Suds => "suds",
            Stack::Php => "PHP SoapClient",
            Stack::Jaxws => "JAX-WS (wsimport)",
            Stack::NodeSoap => "node soap",
            Stack::SoapLite => "Perl SOAP::Lite",
            Stack::Dotnet => ".NET (Mono wsdl)",
            Stack::Gsoap => "gSOAP",
        }
    }

    /// The word `SOAPGATE_CLIENT_STACKS` names the stack by.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Stack::Zeep => "zeep",
            Stack::Suds => "suds",
            Stack::Php => "php",
            Stack::Jaxws => "jaxws",
            Stack::NodeSoap => "node",
            Stack::SoapLite => "perl",
            Stack::Dotnet => "dotnet",
            Stack::Gsoap => "gsoap",
        }
    }

    /// Why the stack does not speak SOAP 1.2, if it does not.
    pub(crate) fn no_soap12(self) -> Option<&'static str> {
        match self {
            Stack::Suds => Some(
                "suds speaks SOAP 1.1 only: it reads a soap12 binding as a 1.1 one and would send a 1.1 envelope through it",
            ),
            _ => None,
        }
    }

    /// Async operations are polled through `soapgate serve --emulator` too,
    /// with the client built against the in-process facade.
    pub(crate) fn polls_through_binary(self) -> bool {
        matches!(self, Stack::Zeep | Stack::Jaxws | Stack::Dotnet)
    }

    /// A sample request this stack cannot write as the contract says, and
    /// why: the facade refuses it (INVALID_REQUEST), which the run checks
    /// instead of a response, so the limit is noticed when it goes away.
    pub(crate) fn limit(self, op: &ExampleOp) -> Option<&'static str> {
        match self {
            // node soap 1.13.0, rpc style: a list's items are written with
            // the operation's namespace prefix (`<tns:attribute>`), whatever
            // the schema says; a `:name` key, its documented way to drop a
            // prefix, is lost on the way to the list.
            Stack::NodeSoap if op.style == "rpc" && repeated_inside_part(&op.sample) => Some(
                "node soap writes a repeated element inside an rpc/literal part qualified with the operation's namespace (<tns:attribute>), which the schema leaves unqualified",
            ),
            _ => None,
        }
    }

    /// Where node soap is installed (`.ci/run` puts it in `.ci/nodesoap`).
    fn node_soap_dir() -> PathBuf {
        std::env::var_os("SOAPGATE_NODE_SOAP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".ci/nodesoap"))
    }

    /// `Err(what is missing)` when the stack is not installed.
    pub(crate) fn probe(self) -> Result<(), String> {
        let need = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        match self {
            Stack::Zeep => need(
                command_works("python3", &["-c", "import zeep, lxml"]),
                "python3 with zeep (pip install zeep)",
            ),
            Stack::Suds => need(
                command_works("python3", &["-c", "import suds.client, lxml"]),
                "python3 with suds and lxml (pip install suds-community lxml)",
            ),
            Stack::Php => need(
                command_works(
                    "php",
                    &[
                        "-r",
                        r#"exit(class_exists("SoapClient") && class_exists("DOMDocument") ? 0 : 1);"#,
                    ],
                ),
                "php with the soap and dom extensions (php-cli php-soap php-xml)",
            ),
            Stack::Jaxws => {
                for tool in ["wsimport", "javac", "java"] {
                    need(
                        command_works(tool, &["-version"]),
                        &format!("{tool} (apt-get install jaxws libjaxws-java default-jdk)"),
                    )?;
                }
                need(
                    jaxws_classpath().is_some(),
                    "/usr/share/java/jaxws-rt.jar (apt-get install libjaxws-java)",
                )
            }
            Stack::NodeSoap => {
                let dir = Stack::node_soap_dir();
                let probe = format!(
                    "require({:?}); require({:?})",
                    dir.join("node_modules/soap").display().to_string(),
                    dir.join("node_modules/sax").display().to_string()
                );
                need(
                    command_works("node", &["-e", &probe]),
                    &format!(
                        "node with npm's soap in {} (npm install --prefix {} soap)",
                        dir.display(),
                        dir.display()
                    ),
                )
            }
            Stack::SoapLite => need(
                command_works(
                    "perl",
                    &[
                        "-MSOAP::Lite",
                        "-MJSON::PP",
                        "-MXML::Parser",
                        "-MLWP::UserAgent",
                        "-e",
                        "1",
                    ],
                ),
                "perl with SOAP::Lite (apt-get install libsoap-lite-perl)",
            ),
            Stack::Dotnet => {
                need(
                    command_works("mono", &["--version"]) && command_works("mcs", &["--version"]),
                    "mono and mcs (apt-get install mono-devel)",
                )?;
                // `wsdl` prints its usage and exits 2 without arguments.
                need(
                    try_run_with_timeout(
                        Command::new("wsdl").arg("-help"),
                        Duration::from_secs(30),
                    )
                    .is_ok(),
                    "Mono's wsdl tool (apt-get install mono-devel)",
                )
            }
            Stack::Gsoap => {
                need(
                    command_works("wsdl2h", &["-V"]) && command_works("soapcpp2", &["-V"]),
                    "wsdl2h and soapcpp2 (apt-get install gsoap)",
                )?;
                need(
                    Path::new("/usr/include/stdsoap2.h").is_file(),
                    "/usr/include/stdsoap2.h and libgsoap++ (apt-get install libgsoap-dev)",
                )?;
                need(
                    command_works("g++", &["--version"]),
                    "g++ (apt-get install g++)",
                )?;
                need(
                    command_works("python3", &["-c", "import lxml"]),
                    "python3 with lxml, which drives the gSOAP client",
                )
            }
        }
    }

    /// The stack's version, for the table (best effort).
    pub(crate) fn version(self) -> String {
        let first_line = |program: &str, args: &[&str]| -> String {
            try_run_with_timeout(Command::new(program).args(args), Duration::from_secs(30))
                .ok()
                .map(|o| format!("{}{}", o.stdout, o.stderr))
                .and_then(|t| t.lines().find(|l| !l.trim().is_empty()).map(str::to_string))
                .unwrap_or_else(|| "?".into())
        };
        match self {
            Stack::Zeep => first_line("python3", &["-c", "import zeep; print(zeep.__version__)"]),
            Stack::Suds => first_line("python3", &["-c", "import suds; print(suds.__version__)"]),
            Stack::Php => first_line("php", &["-r", "echo PHP_VERSION;"]),
            Stack::Jaxws => first_line("wsimport", &["-version"])
                .trim_start_matches("wsimport version \"")
                .trim_end_matches('"')
                .to_string(),
            Stack::NodeSoap => first_line(
                "node",
                &[
                    "-p",
                    &format!(
                        "require({:?}).version",
                        Stack::node_soap_dir()
                            .join("node_modules/soap/package.json")
                            .display()
                            .to_string()
                    ),
                ],
            ),
            Stack::SoapLite => first_line(
                "perl",
                &["-MSOAP::Lite", "-e", "print $SOAP::Lite::VERSION"],
            ),
            Stack::Dotnet => first_line("mono", &["--version"])
                .split(" (")
                .next()
                .unwrap_or("?")
                .trim_start_matches("Mono JIT compiler version ")
                .to_string(),
            Stack::Gsoap => first_line("soapcpp2", &["-V"]),
        }
    }

    /// Generate and compile what the stack needs from the facade at
    /// `base_url`, in `dir`. The log of each step is printed.
    pub(crate) fn build(
        self,
        base_url: &str,
        services: &[String],
        dir: &Path,
    ) -> Result<Built, String> {
        match self {
            Stack::Jaxws => build_jaxws(base_url, services, dir),
            Stack::Dotnet => build_dotnet(base_url, services, dir),
            Stack::Gsoap => {
                let workdir = dir.join("gsoap");
                std::fs::create_dir_all(&workdir).map_err(|e| e.to_string())?;
                let out = run_with_timeout(
                    Command::new("python3")
                        .arg(repo_root().join("tests/clients/gsoap_client.py"))
                        .arg("build")
                        .arg(&workdir)
                        .arg(base_url)
                        .args(services),
                    BUILD_TIMEOUT,
                );
                println!("=== gSOAP build\n{}", out.stdout.trim_end());
                if out.success() {
                    Ok(Built::Gsoap { workdir })
                } else {
                    Err(format!("the gSOAP client does not build:\n{out}"))
                }
            }
            _ => Ok(Built::Script),
        }
    }

    /// The command that runs the stack's client against one service of the
    /// facade at `base_url`, with the operations of `manifest`.
    /// `generated_base` is the facade the client was built against.
    pub(crate) fn command(
        self,
        built: &Built,
        base_url: &str,
        manifest: &Path,
        service: &str,
        generated_base: &str,
    ) -> Command {
        let script = |name: &str| repo_root().join("tests/clients").join(name);
        let mut cmd;
        match (self, built) {
            (Stack::Zeep, _) => {
                cmd = Command::new("python3");
                cmd.arg(script("zeep_client.py"));
            }
            (Stack::Suds, _) => {
                cmd = Command::new("python3");
                cmd.arg(script("suds_client.py"));
            }
            (Stack::Php, _) => {
                cmd = Command::new("php");
                cmd.arg(script("php_client.php"));
            }
            (Stack::SoapLite, _) => {
                cmd = Command::new("perl");
                cmd.arg(script("perl_client.pl"));
            }
            (Stack::NodeSoap, _) => {
                cmd = Command::new("node");
                cmd.arg(script("node_client.js"))
                    .arg(Stack::node_soap_dir());
            }
            (
                Stack::Jaxws,
                Built::Jaxws {
                    run_classpath,
                    classes,
                    packages,
                },
            ) => {
                cmd = Command::new("java");
                cmd.args(["-cp", run_classpath, "SoapgateJaxwsClient"])
                    .arg(base_url)
                    .arg(manifest)
                    .arg(service)
                    .arg(packages.get(service).map_or("", String::as_str))
                    .arg(classes);
                return cmd;
            }
            (Stack::Dotnet, Built::Dotnet { exe }) => {
                cmd = Command::new("mono");
                cmd.arg(exe)
                    .arg(base_url)
                    .arg(manifest)
                    .arg(service)
                    .arg(generated_base);
                return cmd;
            }
            (Stack::Gsoap, Built::Gsoap { workdir }) => {
                cmd = Command::new("python3");
                cmd.arg(script("gsoap_client.py"))
                    .arg("run")
                    .arg(workdir)
                    .arg(base_url)
                    .arg(manifest)
                    .arg(service);
                return cmd;
            }
            (stack, built) => panic!("{stack:?} cannot run with {built:?}"),
        }
        cmd.arg(base_url).arg(manifest).arg(service);
        cmd
    }
}

/// The JAX-WS RI runtime classpath: `SOAPGATE_JAXWS_CLASSPATH`, or the
/// Debian jars (jaxws-rt.jar names its own dependencies in its manifest;
/// javax.activation is needed beside it on Java 11+).
pub(crate) fn jaxws_classpath() -> Option<String> {
    if let Ok(cp) = std::env::var("SOAPGATE_JAXWS_CLASSPATH") {
        return Some(cp);
    }
    let rt = Path::new("/usr/share/java/jaxws-rt.jar");
    if !rt.is_file() {
        return None;
    }
    let mut cp = vec![rt.display().to_string()];
    let activation = Path::new("/usr/share/java/javax.activation.jar");
    if activation.is_file() {
        cp.push(activation.display().to_string());
    }
    Some(cp.join(":"))
}

/// wsimport every service into a package of its own, then compile the
/// generated sources and the client in one javac run.
fn build_jaxws(base_url: &str, services: &[String], dir: &Path) -> Result<Built, String> {
    let classpath = jaxws_classpath().ok_or("no JAX-WS runtime classpath")?;
    let gen_dir = dir.join("jaxws-gen");
    let classes = dir.join("jaxws-classes");
    for d in [&gen_dir, &classes] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let mut packages = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let package = format!("soapgate.clients.gen.s{i}");
        let out = run_with_timeout(
            Command::new("wsimport")
                .args(["-keep", "-Xnocompile", "-extension", "-d"])
                .arg(&gen_dir)
                .arg("-p")
                .arg(&package)
                .arg(format!("{base_url}/soap/{service}?wsdl")),
            BUILD_TIMEOUT,
        );
        println!("=== wsimport / {service}\n{}", out.stdout.trim_end());
        let errors = out.stdout.contains("[ERROR]") || out.stderr.contains("[ERROR]");
        if !out.success() || errors {
            problems.push(format!("wsimport failed for {service}:\n{out}"));
        } else {
            packages.insert(service.clone(), package);
        }
    }
    let mut sources = vec![repo_root().join("tests/clients/java/SoapgateJaxwsClient.java")];
    collect_files(&gen_dir, "java", &mut sources);
    let out = run_with_timeout(
        Command::new("javac")
            .args(["-nowarn", "-encoding", "UTF-8", "-cp", &classpath, "-d"])
            .arg(&classes)
            .args(&sources),
        BUILD_TIMEOUT,
    );
    if !out.success() {
        problems.push(format!("javac failed:\n{out}"));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n\n"));
    }
    Ok(Built::Jaxws {
        run_classpath: format!("{}:{classpath}", classes.display()),
        classes,
        packages,
    })
}

/// Mono's `wsdl` for every service, once per SOAP protocol (a service
/// without a SOAP 1.2 binding gets an empty namespace), then one mcs run
/// over the proxies and the client.
fn build_dotnet(base_url: &str, services: &[String], dir: &Path) -> Result<Built, String> {
    let gen_dir = dir.join("dotnet-gen");
    std::fs::create_dir_all(&gen_dir).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    for service in services {
        for protocol in ["SOAP", "SOAP12"] {
            let file = gen_dir.join(format!("{service}.{protocol}.cs"));
            let out = run_with_timeout(
                Command::new("wsdl")
                    .arg("-nologo")
                    .arg(format!("-protocol:{protocol}"))
                    .arg(format!("-namespace:Gen.{service}.{protocol}"))
                    .arg(format!("-out:{}", file.display()))
                    .arg(format!("{base_url}/soap/{service}?wsdl")),
                BUILD_TIMEOUT,
            );
            println!(
                "=== wsdl -protocol:{protocol} / {service}\n{}",
                out.stdout.trim_end()
            );
            if !out.success() || !file.is_file() {
                problems.push(format!(
                    "wsdl -protocol:{protocol} failed for {service}:\n{out}"
                ));
            } else {
                sources.push(file);
            }
        }
    }
    let exe = dir.join("dotnet-client.exe");
    let out = run_with_timeout(
        Command::new("mcs")
            .args([
                "-nologo",
                "-nowarn:0618,0649",
                "-r:System.Web.Services",
                "-r:System.Xml",
            ])
            .arg(format!("-out:{}", exe.display()))
            .args(&sources)
            .arg(repo_root().join("tests/clients/dotnet/SoapgateDotnetClient.cs")),
        BUILD_TIMEOUT,
    );
    println!("=== mcs\n{}", out.stdout.trim_end());
    if !out.success() {
        problems.push(format!("mcs failed:\n{out}"));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n\n"));
    }
    Ok(Built::Dotnet { exe })
}

fn collect_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Does the sample's rpc wrapper hold a part with a repeated child element?
fn repeated_inside_part(sample: &Path) -> bool {
    use soapgate::xml::{self, Element, Limits, Node};
    let Ok(text) = std::fs::read_to_string(sample) else {
        return false;
    };
    let Ok(doc) = xml::read_str(&text, &Limits::default()) else {
        return false;
    };
    let elements = |e: &Element| -> Vec<Element> {
        e.children
            .iter()
            .filter_map(|n| match n {
                Node::Element(c) => Some(c.clone()),
                Node::Text(_) => None,
            })
            .collect()
    };
    // Envelope → Body → wrapper, or a bare wrapper.
    let mut wrapper = doc.root;
    if wrapper.name.local == "Envelope" {
        let Some(body) = elements(&wrapper)
            .into_iter()
            .find(|c| c.name.local == "Body")
        else {
            return false;
        };
        let Some(payload) = elements(&body).into_iter().next() else {
            return false;
        };
        wrapper = payload;
    }
    elements(&wrapper).iter().any(|part| {
        let children = elements(part);
        children
            .iter()
            .enumerate()
            .any(|(i, c)| children[..i].iter().any(|p| p.name == c.name))
    })
}
